"""The project's error hierarchy. Messages are written for clinicians: one line, naming the value."""

from __future__ import annotations

QUOTE_LIMIT = 80  # an error quotes at most this many characters of a value


def clipped(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text`, or its first `limit` characters and how long it was: an error never echoes a 100,000-character
    argument back."""
    return text if len(text) <= limit else f"{text[:limit]}\u2026 ({len(text):,} characters)"


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A value as an error message quotes it: `repr` of at most its first `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    return f"{text[:limit]!r}\u2026 ({len(text):,} characters)"


class EvidenceError(Exception):
    """Base of every error `evidence` reports to a user (the CLI turns it into `Error: ...`, exit 1)."""


class ConfigError(EvidenceError):
    """A setting (environment variable, config file) has a value we cannot use."""


class InvalidValue(EvidenceError):
    """A user-supplied value (year, PEDro score, design name...) is not acceptable."""


class InvalidIdentifier(InvalidValue):
    """A DOI, PMID or PMCID that is not well formed."""


class UnknownName(InvalidValue):
    """A name outside a controlled vocabulary; the message lists the valid names."""

    def __init__(self, kind: str, value: str, valid: tuple[str, ...] | list[str]) -> None:
        self.kind = kind
        self.value = value
        self.valid = tuple(valid)
        super().__init__(f"unknown {kind} {quoted(value)}; valid: {', '.join(self.valid)}")


class RecordNotFound(EvidenceError):
    """No study matches the given reference (id, citekey, DOI or PMID)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"no study matches {quoted(ref)} (try an id, citekey, DOI or PMID)")


class DuplicateRecord(EvidenceError):
    """A study with the same DOI, PMID or citekey is already in the library."""

    def __init__(self, field: str, value: str, existing_id: int, existing_citekey: str) -> None:
        self.field = field
        self.value = value
        self.existing_id = existing_id
        self.existing_citekey = existing_citekey
        super().__init__(
            f"a study with {field} {value} is already in the library (id {existing_id}, {existing_citekey})"
        )


class DatabaseError(EvidenceError):
    """The database cannot be opened, upgraded or written."""


class SeedDataError(EvidenceError):
    """The shipped seed data is malformed (names the file and the record)."""


# --- Crossref ------------------------------------------------------------------------------------


class CrossrefError(EvidenceError):
    """Any failure talking to Crossref.

    ``attempted`` is ``False`` when no request was sent for this DOI because an earlier request of the same
    run failed for good (the client stops rather than hammer a Crossref that is down or refusing us).
    """

    attempted: bool = True

    def __init__(self, message: str, doi: str | None = None, reason: str | None = None) -> None:
        self.doi = doi
        self.reason = reason  # a short cause ("connection refused", "timed out after 20 s"), if known
        super().__init__(message)


class DoiNotFound(CrossrefError):
    """Crossref has no record for this DOI."""


class RateLimited(CrossrefError):
    """Crossref kept answering 429 after our retries."""

    def __init__(
        self,
        message: str,
        doi: str | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, doi, reason)


class CrossrefUnavailable(CrossrefError):
    """Crossref could not be reached: no network, a timeout or a server error."""


class BadEndpoint(CrossrefUnavailable):
    """Crossref's address answered 404 on a list route (``/works?filter=...``): the URL is wrong."""


class BadResponse(CrossrefError):
    """Crossref answered with something we cannot read (malformed JSON, unexpected shape)."""


class AmbiguousMatch(EvidenceError):
    """A free-text citation matched several candidates and none clearly; nothing was stored."""


# --- Formats -------------------------------------------------------------------------------------


class ImportFormatError(EvidenceError):
    """An import file is malformed; names the file and, where known, the line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        # One line whatever the file held: a value quoted in the message may span lines.
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(f"{where}: {message}")


class ExportError(EvidenceError):
    """An export cannot be written as asked (e.g. xlsx to stdout, unknown style)."""
