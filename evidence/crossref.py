"""Crossref: the only module that talks to habanero (and reads httpx2's exception classes).

It owns four things:

- ``parse_work(message) -> CrossrefWork``: a pure parser of one Crossref work message into frozen
  dataclasses, coping with list-valued titles, partial or null ``date-parts``, ``article-number`` as pages,
  organisation authors, JATS abstracts, and ``update-to`` / ``updated-by`` (retractions, corrections,
  expressions of concern).
- ``CrossrefClient``: a typed client built from ``Settings`` that fetches works one by one
  (``fetch_work``), in batches of up to 50 DOIs per request (``fetch_works``) and by free-text citation
  (``search_bibliographic``).
- Throttling (``RateLimiter``, one concurrency cap) and retries (``RetryPolicy``): 429, 5xx and timeouts are
  retried with exponential backoff and jitter, honouring ``Retry-After``; other 4xx never are.
- Translation of every habanero / httpx2 failure, per DOI, into ``evidence.errors``.

What habanero 2.9.2 really does is described in ``shared/reference/crossref.md``; the comments below cite
it where it forced the code. habanero is imported inside ``CrossrefClient.__init__`` so that
``import evidence.crossref`` stays cheap.
"""

from __future__ import annotations

import email.utils
import html
import importlib.metadata
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from html.parser import HTMLParser
from typing import Any, Literal, NamedTuple
from urllib.parse import quote, unquote

from evidence.config import Settings
from evidence.errors import (
    BadEndpoint,
    BadResponse,
    CrossrefError,
    CrossrefUnavailable,
    DoiNotFound,
    InvalidValue,
    RateLimited,
)
from evidence.ids import normalize_doi

logger = logging.getLogger(__name__)

#: Crossref answers ``filter=doi:A,doi:B,...`` with one work-list; 50 keeps URLs short and answers small.
MAX_BATCH = 50

UpdateType = Literal["retraction", "correction", "expression-of-concern", "other"]
WorkStatus = Literal["ok", "retracted", "corrected", "expression-of-concern"]
Route = Literal["single", "list"]

# ==================================================================================================
# The parsed work
# ==================================================================================================


@dataclass(frozen=True)
class PartialDate:
    """A Crossref date: the year is always known, month and day only when Crossref has them."""

    year: int
    month: int | None = None
    day: int | None = None

    def isoformat(self) -> str:
        """``2015``, ``2015-03`` or ``2015-03-02``: never more precise than Crossref is."""
        text = f"{self.year:04d}"
        if self.month is not None:
            text += f"-{self.month:02d}"
            if self.day is not None:
                text += f"-{self.day:02d}"
        return text


@dataclass(frozen=True)
class Author:
    """A person (``family``/``given``) or an organisation (``name``, e.g. a trial group)."""

    family: str | None = None
    given: str | None = None
    name: str | None = None
    orcid: str | None = None  # bare form 0000-0002-1825-0097
    sequence: str | None = None  # "first" or "additional"
    affiliations: tuple[str, ...] = ()

    @property
    def is_organisation(self) -> bool:
        return self.family is None and self.name is not None

    @property
    def display_name(self) -> str:
        """``Family, Given`` for a person, the name for an organisation."""
        if self.family is not None:
            return f"{self.family}, {self.given}" if self.given else self.family
        return self.name or self.given or ""


class Relation(NamedTuple):
    """One ``relation`` entry, e.g. ``("is-preprint-of", "doi", "10.1016/...")``."""

    type: str
    id_type: str
    id: str


@dataclass(frozen=True)
class ClinicalTrial:
    number: str
    registry: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class WorkUpdate:
    """One ``update-to`` / ``updated-by`` entry: a retraction, correction, expression of concern..."""

    type: UpdateType
    raw_type: str  # Crossref's own word, e.g. "erratum", "partial_retraction"
    doi: str | None
    date: PartialDate | None
    source: str | None  # "publisher" or "retraction-watch"
    label: str | None


@dataclass(frozen=True)
class CrossrefWork:
    """One Crossref work, parsed. ``raw`` is the message as received, for the cache."""

    doi: str
    title: str | None = None
    subtitle: str | None = None
    container_title: str | None = None
    short_container_title: str | None = None
    authors: tuple[Author, ...] = ()
    issued: PartialDate | None = None
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None  # ``page``, else ``article-number``
    article_number: str | None = None
    abstract: str | None = None
    issn: tuple[str, ...] = ()
    publisher: str | None = None
    type: str | None = None
    subtype: str | None = None
    url: str | None = None
    language: str | None = None
    license_urls: tuple[str, ...] = ()
    funders: tuple[str, ...] = ()
    citation_count: int | None = None  # is-referenced-by-count
    references_count: int | None = None
    clinical_trials: tuple[ClinicalTrial, ...] = ()
    relations: tuple[Relation, ...] = ()
    update_to: tuple[WorkUpdate, ...] = ()
    updated_by: tuple[WorkUpdate, ...] = ()
    score: float | None = None  # only on search results; unnormalised, never enough on its own
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def year(self) -> int | None:
        return self.issued.year if self.issued else None

    @property
    def status(self) -> WorkStatus:
        """``retracted`` > ``expression-of-concern`` > ``corrected`` > ``ok``, from ``updated-by``."""
        kinds = {update.type for update in self.updated_by}
        if "retraction" in kinds:
            return "retracted"
        if "expression-of-concern" in kinds:
            return "expression-of-concern"
        if "correction" in kinds:
            return "corrected"
        return "ok"


# ==================================================================================================
# parse_work: pure
# ==================================================================================================

_ORCID_RE = re.compile(r"(\d{4}-\d{4}-\d{4}-\d{3}[\dX])", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")

# Crossmark update types (https://www.crossref.org/documentation/crossmark/participating-in-crossmark/)
# plus the Retraction Watch ones. A partial retraction counts as a retraction: the clinician must look.
_UPDATE_TYPES: dict[str, UpdateType] = {
    "retraction": "retraction",
    "partial_retraction": "retraction",
    "withdrawal": "retraction",
    "removal": "retraction",
    "correction": "correction",
    "corrigendum": "correction",
    "erratum": "correction",
    "addendum": "correction",
    "clarification": "correction",
    "expression_of_concern": "expression-of-concern",
}


def normalise_update_type(value: str) -> UpdateType:
    """Crossref's update type (``erratum``, ``expression_of_concern``...) as one of four words."""
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    return _UPDATE_TYPES.get(key, "other")


def normalise_orcid(value: str) -> str | None:
    """``https://orcid.org/0000-0002-1825-0097`` -> ``0000-0002-1825-0097``; ``None`` if there is none."""
    match = _ORCID_RE.search(value)
    return match.group(1).upper() if match else None


def parse_work(message: Mapping[str, Any]) -> CrossrefWork:
    """A ``CrossrefWork`` from one work message (the ``message`` of ``/works/{doi}`` or a list item).

    Pure: no I/O. Raises ``BadResponse`` when the message does not have the shape Crossref documents.
    """
    if not isinstance(message, Mapping):
        raise BadResponse(f"Crossref sent a work that is not an object ({type(message).__name__})")
    raw_doi = message.get("DOI")
    if not isinstance(raw_doi, str) or not raw_doi.strip():
        raise BadResponse("Crossref sent a work without a DOI")
    doi = raw_doi.strip().lower()
    fields = _Fields(message, doi)

    page = fields.text("page")
    article_number = fields.text("article-number")
    return CrossrefWork(
        doi=doi,
        title=fields.first_text("title"),
        subtitle=fields.first_text("subtitle"),
        container_title=fields.first_text("container-title"),
        short_container_title=fields.first_text("short-container-title"),
        authors=tuple(_parse_author(entry, fields) for entry in fields.objects("author")),
        issued=_first_date(fields, ("issued", "published-print", "published-online")),
        volume=fields.text("volume"),
        issue=fields.text("issue"),
        pages=page or article_number,
        article_number=article_number,
        abstract=jats_to_text(fields.text("abstract", clean=False)),
        issn=_unique(fields.texts("ISSN")),
        publisher=fields.text("publisher"),
        type=fields.text("type"),
        subtype=fields.text("subtype"),
        url=fields.text("URL", clean=False),
        language=fields.text("language"),
        license_urls=_unique(
            url for entry in fields.objects("license") if (url := _entry_text(entry, "URL", fields))
        ),
        funders=_unique(
            name for entry in fields.objects("funder") if (name := _entry_text(entry, "name", fields))
        ),
        citation_count=fields.integer("is-referenced-by-count"),
        references_count=fields.integer("references-count"),
        clinical_trials=tuple(
            ClinicalTrial(number, _entry_text(entry, "registry", fields), _entry_text(entry, "type", fields))
            for entry in fields.objects("clinical-trial-number")
            if (number := _entry_text(entry, "clinical-trial-number", fields))
        ),
        relations=_parse_relations(fields),
        update_to=tuple(_parse_update(entry, fields) for entry in fields.objects("update-to")),
        updated_by=tuple(_parse_update(entry, fields) for entry in fields.objects("updated-by")),
        score=fields.number("score"),
        raw=message,
    )


class _Fields:
    """Typed access to one message's fields; every surprise becomes a one-line ``BadResponse``."""

    def __init__(self, message: Mapping[str, Any], doi: str) -> None:
        self.message = message
        self.doi = doi

    def bad(self, key: str, value: object) -> BadResponse:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return BadResponse(
            f"evidence cannot read Crossref's record for DOI {self.doi}: unexpected {key!r} ({shown})",
            doi=self.doi,
        )

    def text(self, key: str, *, clean: bool = True) -> str | None:
        value = self.message.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.bad(key, value)
        text = _clean_inline(str(value)) if clean else str(value).strip()
        return text or None

    def texts(self, key: str) -> list[str]:
        value = self.message.get(key)
        if value is None:
            return []
        if isinstance(value, str):  # Crossref documents lists; tolerate a bare string
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.bad(key, value)
        return [text for item in value if (text := _clean_inline(item))]

    def first_text(self, key: str) -> str | None:
        texts = self.texts(key)
        return texts[0] if texts else None

    def objects(self, key: str) -> list[Mapping[str, Any]]:
        value = self.message.get(key)
        if value is None:
            return []
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise self.bad(key, value)
        return value

    def integer(self, key: str) -> int | None:
        value = self.message.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(key, value)
        return value

    def number(self, key: str) -> float | None:
        value = self.message.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.bad(key, value)
        return float(value)


def _entry_text(entry: Mapping[str, Any], key: str, fields: _Fields) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise fields.bad(key, value)
    return _clean_inline(value) or None


def _clean_inline(text: str) -> str:
    """One line of text: tags (``<i>``, ``<mml:...>``) removed, entities unescaped, spaces collapsed."""
    return _SPACE_RE.sub(" ", html.unescape(_TAG_RE.sub("", text))).strip()


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _parse_author(entry: Mapping[str, Any], fields: _Fields) -> Author:
    orcid_raw = _entry_text(entry, "ORCID", fields)
    affiliations_raw = entry.get("affiliation") or []
    if not isinstance(affiliations_raw, list):
        raise fields.bad("affiliation", affiliations_raw)
    affiliations = []
    for affiliation in affiliations_raw:
        if not isinstance(affiliation, Mapping):
            raise fields.bad("affiliation", affiliation)
        if name := _entry_text(affiliation, "name", fields):
            affiliations.append(name)
    return Author(
        family=_entry_text(entry, "family", fields),
        given=_entry_text(entry, "given", fields),
        name=_entry_text(entry, "name", fields),
        orcid=normalise_orcid(orcid_raw) if orcid_raw else None,
        sequence=_entry_text(entry, "sequence", fields),
        affiliations=tuple(affiliations),
    )


def parse_date_parts(value: object) -> PartialDate | None:
    """``{"date-parts": [[2015, 3]]}`` -> ``PartialDate(2015, 3)``; ``[[null]]`` or missing -> ``None``.

    Raises ``ValueError`` on a shape Crossref does not document. Never invents a month or a day: an
    out-of-range month drops month and day, an out-of-range day drops the day.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("not an object")
    parts_list = value.get("date-parts")
    if parts_list is None or parts_list == []:
        return None
    if not isinstance(parts_list, list) or not isinstance(parts_list[0], list):
        raise ValueError("date-parts is not a list of lists")
    numbers: list[int] = []
    for part in parts_list[0]:
        if part is None:
            break
        if isinstance(part, str) and part.strip().isdigit():  # seen in old deposits: ["2015"]
            part = int(part)
        if isinstance(part, bool) or not isinstance(part, int):
            raise ValueError(f"date part {part!r} is not a number")
        numbers.append(part)
    if not numbers or not 1 <= numbers[0] <= 9999:
        return None
    year = numbers[0]
    month = numbers[1] if len(numbers) > 1 and 1 <= numbers[1] <= 12 else None
    day = numbers[2] if month is not None and len(numbers) > 2 and 1 <= numbers[2] <= 31 else None
    return PartialDate(year, month, day)


def _date(fields: _Fields, key: str, container: Mapping[str, Any] | None = None) -> PartialDate | None:
    value = (container if container is not None else fields.message).get(key)
    try:
        return parse_date_parts(value)
    except ValueError:
        raise fields.bad(key, value) from None


def _first_date(fields: _Fields, keys: Sequence[str]) -> PartialDate | None:
    for key in keys:
        date = _date(fields, key)
        if date is not None:
            return date
    return None


def _parse_relations(fields: _Fields) -> tuple[Relation, ...]:
    value = fields.message.get("relation")
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise fields.bad("relation", value)
    relations: list[Relation] = []
    for relation_type, entries in value.items():
        items = [entries] if isinstance(entries, Mapping) else entries
        if not isinstance(items, list):
            raise fields.bad("relation", entries)
        for entry in items:
            if not isinstance(entry, Mapping):
                raise fields.bad("relation", entry)
            id_type = _entry_text(entry, "id-type", fields)
            ident = _entry_text(entry, "id", fields)
            if id_type and ident:
                if id_type.lower() == "doi":
                    ident = ident.lower()
                relations.append(Relation(str(relation_type), id_type, ident))
    return tuple(relations)


def _parse_update(entry: Mapping[str, Any], fields: _Fields) -> WorkUpdate:
    raw_type = _entry_text(entry, "type", fields) or ""
    doi = _entry_text(entry, "DOI", fields)
    return WorkUpdate(
        type=normalise_update_type(raw_type),
        raw_type=raw_type,
        doi=doi.lower() if doi else None,
        date=_date(fields, "updated", entry),
        source=_entry_text(entry, "source", fields),
        label=_entry_text(entry, "label", fields),
    )


# --- JATS abstracts -------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {"p", "sec", "title", "list", "list-item", "abstract", "trans-abstract", "div", "br", "label"}
)


class _JatsText(HTMLParser):
    """Collects text blocks from JATS (``<jats:p>``...) or plain HTML; inline tags just vanish."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []  # (kind, text) with kind "title" or "p"
        self._buffer: list[str] = []
        self._kind = "p"

    def _flush(self) -> None:
        text = _SPACE_RE.sub(" ", "".join(self._buffer)).strip()
        if text:
            self.blocks.append((self._kind, text))
        self._buffer = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        local = tag.rsplit(":", 1)[-1]
        if local in _BLOCK_TAGS:
            self._flush()
            self._kind = "title" if local == "title" else "p"

    def handle_endtag(self, tag: str) -> None:
        local = tag.rsplit(":", 1)[-1]
        if local in _BLOCK_TAGS:
            self._flush()
            self._kind = "p"

    def handle_data(self, data: str) -> None:
        self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def jats_to_text(abstract: str | None) -> str | None:
    """A JATS (or HTML, or plain) abstract as clean text: paragraphs separated by a blank line.

    Tags are removed, entities unescaped, whitespace inside a paragraph collapsed, and a leading
    "Abstract" heading dropped (Crossref abstracts very often start with ``<jats:title>Abstract``).
    """
    if abstract is None:
        return None
    parser = _JatsText()
    parser.feed(abstract)
    parser.close()
    blocks = [text for _kind, text in parser.blocks]
    if blocks and blocks[0].rstrip(":.").strip().lower() == "abstract":
        blocks = blocks[1:]
    return "\n\n".join(blocks) or None


# ==================================================================================================
# Throttling and retries
# ==================================================================================================


@dataclass(frozen=True)
class PoolLimits:
    """Where the limiter starts (crossref.md, limits since 1 Dec 2025); the server's headers then win."""

    single_per_second: float
    list_per_second: float
    concurrency: int
    shared_budget: bool  # one rate for every route (the public pool) or one per route (polite)


PUBLIC_POOL = PoolLimits(single_per_second=5.0, list_per_second=5.0, concurrency=1, shared_budget=True)
POLITE_POOL = PoolLimits(single_per_second=10.0, list_per_second=3.0, concurrency=3, shared_budget=False)


class RateLimiter:
    """Spaces request starts at least ``1/per_second`` apart. Thread-safe; clock and sleep injectable."""

    #: A 429 without rate headers halves the rate, but never below this.
    MIN_PER_SECOND = 0.2

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._next_start = -math.inf
        self._interval = 0.0
        self.set_rate(per_second)

    @property
    def per_second(self) -> float:
        return 1.0 / self._interval

    def set_rate(self, per_second: float) -> None:
        if not per_second > 0 or not math.isfinite(per_second):
            raise ValueError(f"a rate must be positive, not {per_second!r}")
        with self._lock:
            self._interval = 1.0 / max(per_second, self.MIN_PER_SECOND)

    def slow_down(self) -> None:
        """Halve the rate (after a 429 that did not say what the limit is)."""
        self.set_rate(self.per_second / 2)

    def wait(self) -> float:
        """Block until the next request may start; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        delay = start - now
        if delay > 0:
            self._sleep(delay)
        return max(delay, 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for 429, 5xx and timeouts: exponential backoff with jitter, ``Retry-After`` honoured."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_total_sleep: float = 90.0  # give up rather than wait longer than this per request, in total

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay after failed attempt ``attempt`` (1-based): half fixed, half random ("equal jitter")."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); ``None`` if unusable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_INTERVAL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)
_INTERVAL_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate_limit(headers: Mapping[str, str]) -> float | None:
    """Requests per second from ``x-rate-limit-limit`` / ``x-rate-limit-interval`` (e.g. ``5``, ``1s``)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    limit_text = lowered.get("x-rate-limit-limit")
    interval_text = lowered.get("x-rate-limit-interval", "1s")
    if limit_text is None:
        return None
    match = _INTERVAL_RE.match(interval_text)
    try:
        limit = float(limit_text)
    except ValueError:
        return None
    if match is None or not limit > 0 or not math.isfinite(limit):
        return None
    seconds = float(match.group(1)) * _INTERVAL_UNITS[(match.group(2) or "s").lower()]
    return limit / seconds if seconds > 0 else None


# ==================================================================================================
# Failures: what went wrong with one request, before it is turned into per-DOI errors
# ==================================================================================================

FailureKind = Literal[
    "not-found", "rate-limited", "timeout", "network", "server", "bad-response", "rejected", "bad-endpoint"
]
_RETRYABLE: frozenset[FailureKind] = frozenset({"rate-limited", "timeout", "server"})
#: Failures that say Crossref itself is unusable right now: once one happens, a run sends nothing more.
_STOPS_THE_RUN: frozenset[FailureKind] = frozenset(
    {"rate-limited", "timeout", "network", "server", "bad-endpoint"}
)
#: After a refused batch (HTTP 400...), how many single requests may be refused the same way before we
#: conclude that Crossref refuses everything we send (not one odd DOI) and stop.
MAX_REFUSED_SINGLES = 3


@dataclass(frozen=True)
class _Failure:
    kind: FailureKind
    detail: str
    status: int | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE

    @property
    def stops_the_run(self) -> bool:
        return self.kind in _STOPS_THE_RUN

    def error(
        self, subject: str, doi: str | None, attempts: int, timeout: float, *, attempted: bool = True
    ) -> CrossrefError:
        """The project's error for ``subject`` (``DOI 10.x/y`` or ``the citation search``).

        ``attempted=False``: no request was sent for ``subject`` because an earlier one failed this way.
        """
        error = self._error(subject, doi, attempts, timeout)
        if attempted:
            return error
        # The same class (so callers still see "unavailable" or "rate limited"), said honestly.
        message = f"not attempted: an earlier request failed ({error})"
        skipped: CrossrefError
        if isinstance(error, RateLimited):
            skipped = RateLimited(message, doi=doi, retry_after=error.retry_after, reason=error.reason)
        else:
            skipped = type(error)(message, doi=doi, reason=error.reason)
        skipped.attempted = False
        return skipped

    def _error(self, subject: str, doi: str | None, attempts: int, timeout: float) -> CrossrefError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if self.kind == "bad-endpoint":
            # A list route (/works?filter=..., /works?query...) never answers 404 for a missing DOI: the
            # URL itself is wrong (EVIDENCE_CROSSREF_URL, a proxy...). Nothing was checked.
            return BadEndpoint(
                f"Crossref's address answered HTTP {self.status} (not found) for {subject} at {self.detail}: "
                "is EVIDENCE_CROSSREF_URL right?",
                doi=doi,
                reason=f"HTTP {self.status} from {self.detail}",
            )
        if self.kind == "not-found":
            return DoiNotFound(
                f"Crossref has no record of {subject} (check it for typos; it may be registered elsewhere, "
                "e.g. DataCite)",
                doi=doi,
            )
        if self.kind == "rate-limited":
            wait = f"; try again in {math.ceil(self.retry_after)} s" if self.retry_after else "; try later"
            return RateLimited(
                f"Crossref is limiting our requests and refused {subject}{tries}{wait}",
                doi=doi,
                retry_after=self.retry_after,
                reason=f"HTTP 429{tries}",
            )
        if self.kind == "timeout":
            return CrossrefUnavailable(
                f"Crossref did not answer in time for {subject} (timed out after {timeout:g} s{tries}; "
                "slow or no network?)",
                doi=doi,
                reason=f"timed out after {timeout:g} s{tries}",
            )
        if self.kind == "network":
            return CrossrefUnavailable(
                f"Crossref could not be reached for {subject} (no network?)", doi=doi, reason=self.detail
            )
        if self.kind == "server":
            return CrossrefUnavailable(
                f"Crossref had a server error (HTTP {self.status}) for {subject}{tries}; try again later",
                doi=doi,
                reason=f"server error HTTP {self.status}{tries}",
            )
        if self.kind == "rejected":
            return CrossrefError(
                f"Crossref refused the request for {subject} (HTTP {self.status}: {self.detail})",
                doi=doi,
                reason=f"HTTP {self.status}: {self.detail}",
            )
        return BadResponse(
            f"Crossref sent an answer for {subject} that evidence cannot read ({self.detail})", doi=doi
        )


_NOT_IN_BATCH = _Failure("not-found", "absent from the batch answer")


class _RequestFailed(Exception):
    """Internal: a request failed for good (after retries, if it was worth retrying)."""

    def __init__(self, failure: _Failure, attempts: int) -> None:
        super().__init__(failure.detail)
        self.failure = failure
        self.attempts = attempts


def _one_line(text: str, limit: int = 120) -> str:
    line = _SPACE_RE.sub(" ", text).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ==================================================================================================
# The client
# ==================================================================================================


def _evidence_version() -> str:
    try:
        return importlib.metadata.version("evidence")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "dev"


OnResult = Callable[[str, "CrossrefWork | CrossrefError"], None]


class CrossrefClient:
    """Typed access to Crossref through habanero, throttled and retried, errors translated per DOI.

    One client per command: its limiter and counters describe that run. ``sleep``, ``clock`` (monotonic),
    ``wall_clock`` (epoch seconds, for ``Retry-After`` dates) and ``rng`` are injectable for tests.

    ``requests_sent`` and ``responses_429`` count what this client did (for reports and benchmarks).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        limits: PoolLimits | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int = MAX_BATCH,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        # Imported here, not at module level: habanero pulls in httpx2, tqdm and urllib3.
        import habanero
        import habanero.exceptions
        import httpx2

        if not 1 <= batch_size <= MAX_BATCH:
            raise InvalidValue(f"a Crossref batch holds 1 to {MAX_BATCH} DOIs, not {batch_size}")
        self.settings = settings
        self.pool: Literal["public", "polite"] = "polite" if settings.mailto else "public"
        self.limits = limits or (POLITE_POOL if settings.mailto else PUBLIC_POOL)
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.requests_sent = 0
        self.responses_429 = 0
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self._httpx2: Any = httpx2
        self._habanero_request_error: type[Exception] = habanero.exceptions.RequestError
        self._cr: Any = habanero.Crossref(
            base_url=settings.crossref_url.rstrip("/"),  # habanero appends "/works/"
            mailto=settings.mailto,
            ua_string=f"evidence/{_evidence_version()}",
            timeout=settings.crossref_timeout,
        )
        # habanero sends one request per call, sequentially; the semaphore keeps a multi-threaded caller
        # within the pool's concurrency too.
        self._concurrency = threading.BoundedSemaphore(self.limits.concurrency)
        single = RateLimiter(self.limits.single_per_second, clock=clock, sleep=sleep)
        listing = (
            single
            if self.limits.shared_budget
            else RateLimiter(self.limits.list_per_second, clock=clock, sleep=sleep)
        )
        self.limiters: dict[Route, RateLimiter] = {"single": single, "list": listing}
        self._counter_lock = threading.Lock()

    # --- public API ------------------------------------------------------------------------------

    def fetch_work(self, doi: str) -> CrossrefWork:
        """One work by DOI (``GET /works/{doi}``); raises a ``CrossrefError`` subclass naming the DOI.

        The work's ``doi`` is Crossref's primary DOI: it differs from the one asked for when that is an alias.
        """
        result, _failed = self._fetch_single(normalize_doi(doi))
        if isinstance(result, CrossrefError):
            raise result
        return result

    def fetch_works(
        self,
        dois: Iterable[str],
        *,
        on_result: OnResult | None = None,
        confirm_missing: bool = False,
    ) -> dict[str, CrossrefWork | CrossrefError]:
        """Many works, ``batch_size`` DOIs per request; every DOI gets a work or its own error.

        Keys are normalised DOIs (lower case), in input order, duplicates once. ``on_result(doi, result)``
        is called as each result is known (for progress bars). A DOI absent from its batch answer is
        ``DoiNotFound`` without a further request: the ``doi:`` filter and ``/works/{doi}`` read the same
        index, so a confirming request would almost always cost one request to learn the same thing. The
        exception is a DOI *alias* (the filter matches only the primary DOI); pass
        ``confirm_missing=True`` to ask ``/works/{doi}`` once for each missing DOI.

        Once any request (a batch or a single DOI) fails for good with a network error, a timeout, a 5xx,
        a 429 or a 404 on the list route (a wrong address), no further requests are sent: the remaining
        DOIs get the same kind of error, worded "not attempted" (no network on a train should fail fast).
        A refused batch (e.g. HTTP 400 for one odd DOI) is retried one DOI at a time, but if the first
        ``MAX_REFUSED_SINGLES`` single requests are refused with the same status too, Crossref refuses
        everything we send and the rest is not attempted.
        Raises ``InvalidIdentifier`` (before any request) if a value is not a DOI.
        """
        wanted = list(dict.fromkeys(normalize_doi(doi) for doi in dois))
        results: dict[str, CrossrefWork | CrossrefError] = {}
        stopped: _RequestFailed | None = None

        def record(doi: str, result: CrossrefWork | CrossrefError) -> None:
            results[doi] = result
            if on_result is not None:
                on_result(doi, result)

        def skip(doi: str) -> None:
            assert stopped is not None
            record(doi, self._error(stopped, f"DOI {doi}", doi, attempted=False))

        def single(doi: str) -> _RequestFailed | None:
            """One ``/works/{doi}`` request, unless the run has stopped; the failure, if any."""
            nonlocal stopped
            if stopped is not None:
                skip(doi)
                return None
            result, failed = self._fetch_single(doi)
            if failed is not None and failed.failure.stops_the_run:
                stopped = failed
            record(doi, result)
            return failed

        def one_by_one(chunk: Sequence[str], refused: _RequestFailed) -> None:
            """After a refused batch: each DOI alone, unless the first few are refused the same way."""
            nonlocal stopped
            refusals = 0
            for position, doi in enumerate(chunk):
                failed = single(doi)
                same = (
                    failed is not None
                    and failed.failure.kind == "rejected"
                    and failed.failure.status == refused.failure.status
                )
                refusals += int(same)
                if refusals == MAX_REFUSED_SINGLES and refusals == position + 1 and stopped is None:
                    logger.info("Crossref refuses every DOI alone too (%s); stopping", failed)
                    stopped = refused
                    for rest in chunk[position + 1 :]:
                        skip(rest)
                    return

        # A comma would split the filter value (filter=doi:A,doi:B); such DOIs go one by one.
        batchable = [doi for doi in wanted if "," not in doi]
        singles = [doi for doi in wanted if "," in doi]

        for start in range(0, len(batchable), self.batch_size):
            chunk = batchable[start : start + self.batch_size]
            if stopped is not None:
                for doi in chunk:
                    skip(doi)
                continue
            try:
                items = self._fetch_batch(chunk)
            except _RequestFailed as failed:
                if failed.failure.kind == "rejected" and len(chunk) > 1:
                    # e.g. a 400 for one odd DOI in the filter: find which one, one request each.
                    logger.info("Crossref refused a batch (%s); fetching its DOIs one by one", failed)
                    one_by_one(chunk, failed)
                    continue
                if failed.failure.stops_the_run:
                    stopped = failed
                for doi in chunk:
                    record(doi, self._error(failed, f"DOI {doi}", doi))
                continue
            for doi in chunk:
                item = items.get(doi)
                if item is not None:
                    record(doi, _parse_result(item, doi))
                elif confirm_missing:
                    single(doi)
                else:
                    record(doi, _NOT_IN_BATCH.error(f"DOI {doi}", doi, 1, self.settings.crossref_timeout))

        for doi in singles:
            single(doi)
        return {doi: results[doi] for doi in wanted}

    def search_bibliographic(self, text: str, rows: int = 5) -> list[CrossrefWork]:
        """Candidates for a free-text citation (``query.bibliographic``), best first, each with ``score``.

        The score is Crossref's unnormalised relevance: the caller must still check title, first author,
        year and the gap to the runner-up. A candidate Crossref sent malformed is logged and skipped; if
        every candidate is malformed, ``BadResponse`` is raised. No candidate at all is an empty list.
        """
        query = _SPACE_RE.sub(" ", text).strip()
        if not query:
            raise InvalidValue("a citation search needs some text")
        if not 1 <= rows <= 100:
            raise InvalidValue(f"a citation search returns 1 to 100 candidates, not {rows}")
        subject = "the citation search"
        try:
            envelope = self._call("list", lambda: self._cr.works(query_bibliographic=query, limit=rows))
        except _RequestFailed as failed:
            raise self._error(failed, subject, None) from None
        items = _work_list_items(envelope)
        if isinstance(items, _Failure):
            raise self._error(_RequestFailed(items, 1), subject, None)
        works: list[CrossrefWork] = []
        problems: list[BadResponse] = []
        for item in items:
            try:
                works.append(parse_work(item))
            except BadResponse as exc:
                logger.warning("skipping a malformed Crossref candidate: %s", exc)
                problems.append(exc)
        if problems and not works:
            raise problems[0]
        return works

    # --- internals -------------------------------------------------------------------------------

    def _error(
        self, failed: _RequestFailed, subject: str, doi: str | None, *, attempted: bool = True
    ) -> CrossrefError:
        return failed.failure.error(
            subject, doi, failed.attempts, self.settings.crossref_timeout, attempted=attempted
        )

    def _fetch_single(self, key: str) -> tuple[CrossrefWork | CrossrefError, _RequestFailed | None]:
        """``GET /works/{key}`` (``key`` normalised): the work or its error, and the failed request if any."""
        subject = f"DOI {key}"
        try:
            # habanero concatenates the id into the path: quote "?", "#", "%"... (but keep "/").
            envelope = self._call("single", lambda: self._cr.works(ids=quote(key, safe="/")))
        except _RequestFailed as failed:
            return self._error(failed, subject, key), failed
        message = _envelope_message(envelope, "work")
        if isinstance(message, _Failure):
            return self._error(_RequestFailed(message, 1), subject, key), None
        return _parse_result(message, key), None

    def _fetch_batch(self, chunk: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """``GET /works?filter=doi:A,doi:B&rows=N``; the answer's items by lower-case DOI."""
        envelope = self._call("list", lambda: self._cr.works(filter={"doi": list(chunk)}, limit=len(chunk)))
        items = _work_list_items(envelope)
        if isinstance(items, _Failure):
            raise _RequestFailed(items, 1)
        by_doi: dict[str, Mapping[str, Any]] = {}
        for item in items:
            doi = item.get("DOI")
            if isinstance(doi, str):
                by_doi[doi.strip().lower()] = item
            else:
                logger.warning("Crossref sent a batch item without a DOI; ignored")
        return by_doi

    @contextmanager
    def _slot(self, route: Route) -> Iterator[None]:
        with self._concurrency:
            self.limiters[route].wait()
            yield

    def _call(self, route: Route, request: Callable[[], Any]) -> Any:
        """Run one habanero call under the limiter, retrying what is worth retrying."""
        slept = 0.0
        attempt = 0
        while True:
            attempt += 1
            with self._slot(route):
                with self._counter_lock:
                    self.requests_sent += 1
                try:
                    return request()
                except Exception as exc:  # habanero raises bare RuntimeError/TypeError: see _classify
                    failure = self._classify(exc, route)
            self._observe(route, failure)
            if not failure.retryable or attempt >= self.retry.max_attempts:
                raise _RequestFailed(failure, attempt)
            delay = (
                failure.retry_after
                if failure.retry_after is not None
                else self.retry.backoff(attempt, self._rng)
            )
            if slept + delay > self.retry.max_total_sleep:
                logger.info("giving up after %d attempts: waiting %.1f s more is too long", attempt, delay)
                raise _RequestFailed(failure, attempt)
            logger.info("Crossref %s (attempt %d); retrying in %.1f s", failure.detail, attempt, delay)
            self._sleep(delay)
            slept += delay

    def _observe(self, route: Route, failure: _Failure) -> None:
        """Follow the rate the server advertises on an error answer; slow down on a bare 429.

        habanero 2.9.2 does not expose the headers of successful answers (crossref.md), so until
        Crossref answers with an error we stay at the documented pool limits.
        """
        if failure.kind == "rate-limited":
            with self._counter_lock:
                self.responses_429 += 1
        advertised = parse_rate_limit(failure.headers)
        limiter = self.limiters[route]
        if advertised is not None:
            limiter.set_rate(advertised)
            logger.info("Crossref advertises %.2f requests/s; following it", advertised)
        if failure.kind == "rate-limited":
            # A 429 means we were too fast even at the advertised rate (another process on this IP?).
            limiter.slow_down()

    def _classify(self, exc: Exception, route: Route = "single") -> _Failure:
        """What went wrong, from whatever habanero raised (table in crossref.md)."""
        httpx2 = self._httpx2
        response = _response_in_chain(exc, httpx2)
        if response is not None:
            return self._failure_from_response(response, exc, route)
        if isinstance(exc, self._habanero_request_error):
            # check_json(): a 2xx answer that is not JSON, or a JSON error body without a response at hand.
            status = _int_or_none(exc.args[0] if exc.args else None)
            if status is None or status < 400:
                return _Failure("bad-response", "not JSON", status=status)
            detail = str(exc.args[1] if len(exc.args) > 1 else exc)
            return self._failure_from_status(status, detail, {}, route, self.settings.crossref_url)
        cause = exc if isinstance(exc, httpx2.HTTPError) else exc.__cause__
        if isinstance(cause, httpx2.TimeoutException):
            return _Failure("timeout", "timed out")
        if isinstance(cause, httpx2.TransportError):
            return _Failure("network", _one_line(str(cause) or type(cause).__name__))
        if isinstance(exc, RuntimeError):
            message = str(exc)
            # query paths wrap httpx2 errors: RuntimeError("timed out"), RuntimeError("HTTP Exception ...")
            if "timed out" in message.lower():
                return _Failure("timeout", "timed out")
            if message.startswith("HTTP Exception") or isinstance(cause, httpx2.HTTPError):
                return _Failure("network", _one_line(message))
            return _Failure("bad-response", _one_line(message))
        if isinstance(exc, ValueError):  # json.JSONDecodeError is a ValueError
            return _Failure("bad-response", "malformed JSON")
        if isinstance(exc, TypeError | KeyError | IndexError | AttributeError):
            # habanero indexes into the answer (js["message"]["total-results"], f["message"][0]) and
            # trips over shapes it did not expect, e.g. a JSON error whose "message" is a string.
            return _Failure("bad-response", f"unexpected shape: {_one_line(str(exc), 60)}")
        raise exc

    def _failure_from_response(self, response: Any, exc: Exception, route: Route) -> _Failure:
        headers = {str(key).lower(): str(value) for key, value in response.headers.items()}
        detail = (
            str(exc.args[1]) if isinstance(exc, self._habanero_request_error) and len(exc.args) > 1 else ""
        )
        if not detail:
            try:
                detail = response.text
            except Exception:  # a body that cannot be decoded is no reason to lose the status
                detail = ""
        try:
            url = unquote(str(response.request.url))
        except Exception:  # a response without its request: name the configured address instead
            url = self.settings.crossref_url
        status = int(response.status_code)
        return self._failure_from_status(status, _one_line(detail or ""), headers, route, url)

    def _failure_from_status(
        self, status: int, detail: str, headers: Mapping[str, str], route: Route, url: str
    ) -> _Failure:
        if status == 404 and route == "list":
            return _Failure("bad-endpoint", _one_line(url, 100), status=status, headers=headers)
        if status == 404:
            return _Failure("not-found", detail or "not found", status=status, headers=headers)
        if status == 429:
            retry_after = parse_retry_after(headers.get("retry-after"), now=self._wall_clock())
            return _Failure("rate-limited", "rate limited (HTTP 429)", status, retry_after, headers)
        if status >= 500:
            return _Failure("server", f"server error (HTTP {status})", status=status, headers=headers)
        return _Failure("rejected", detail or f"HTTP {status}", status=status, headers=headers)


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _response_in_chain(exc: BaseException, httpx2: Any) -> Any:
    """The ``httpx2.Response`` of an ``HTTPStatusError`` in ``exc`` or its causes, if any.

    habanero raises ``RequestError`` (and, on a string error message, ``TypeError``) *inside* its
    ``except HTTPStatusError`` block, so the original error and its response are in ``__context__``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx2.HTTPStatusError):
            return current.response
        current = current.__cause__ or current.__context__
    return None


def _envelope_message(envelope: object, message_type: str) -> Mapping[str, Any] | _Failure:
    if not isinstance(envelope, Mapping):
        return _Failure("bad-response", f"expected an object, got {type(envelope).__name__}")
    got_type = envelope.get("message-type")
    if got_type is not None and got_type != message_type:
        return _Failure("bad-response", f"expected a {message_type}, got a {got_type}")
    message = envelope.get("message")
    if not isinstance(message, Mapping):
        return _Failure("bad-response", "no message in the answer")
    return message


def _work_list_items(envelope: object) -> list[Mapping[str, Any]] | _Failure:
    message = _envelope_message(envelope, "work-list")
    if isinstance(message, _Failure):
        return message
    items = message.get("items")
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        return _Failure("bad-response", "the work list has no items")
    return items


def _parse_for(message: Mapping[str, Any], doi: str) -> CrossrefWork:
    """``parse_work`` with the error naming the DOI that was asked for (it may be an alias)."""
    try:
        return parse_work(message)
    except BadResponse as exc:
        text = str(exc) if doi in str(exc) else f"{exc} (asked for DOI {doi})"
        raise BadResponse(text, doi=doi) from exc


def _parse_result(message: Mapping[str, Any], doi: str) -> CrossrefWork | CrossrefError:
    try:
        return _parse_for(message, doi)
    except BadResponse as exc:
        return exc
