"""Parsing Crossref: one work message in, a frozen ``CrossrefWork`` out, with no I/O at all.

``parse_work`` copes with list-valued titles, partial or null ``date-parts``, ``article-number`` as pages,
organisation authors, JATS abstracts, and ``update-to`` / ``updated-by`` (retractions, corrections,
expressions of concern). Every surprise in a message becomes a one-line ``BadResponse`` naming the DOI.
The small text helpers at the end (``collapse_spaces``, ``shorten``, ``one_line``) are shared by the rest of
the package.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import UnionType
from typing import Any, Literal, NamedTuple

from evidence.errors import BadResponse

UpdateType = Literal["retraction", "correction", "expression-of-concern", "other"]
WorkStatus = Literal["ok", "retracted", "corrected", "expression-of-concern"]

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
        return BadResponse(
            f"evidence cannot read Crossref's record for DOI {self.doi}: unexpected {key!r} "
            f"({shorten(repr(value), 60)})",
            doi=self.doi,
        )

    def scalar(self, key: str, kinds: type | UnionType) -> Any:
        """The value of ``key`` if it is one of ``kinds`` (never a bool), ``None`` if it is missing."""
        value = self.message.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise self.bad(key, value)
        return value

    def text(self, key: str, *, clean: bool = True) -> str | None:
        value = self.scalar(key, str | int | float)
        if value is None:
            return None
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
        value: int | None = self.scalar(key, int)
        return value

    def number(self, key: str) -> float | None:
        value = self.scalar(key, int | float)
        return None if value is None else float(value)


def _entry_text(entry: Mapping[str, Any], key: str, fields: _Fields) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise fields.bad(key, value)
    return _clean_inline(value) or None


def _clean_inline(text: str) -> str:
    """One line of text: tags (``<i>``, ``<mml:...>``) removed, entities unescaped, spaces collapsed."""
    return collapse_spaces(html.unescape(_TAG_RE.sub("", text)))


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
        text = collapse_spaces("".join(self._buffer))
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


# --- text helpers shared by the package -----------------------------------------------------------


def collapse_spaces(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space, and stripped."""
    return _SPACE_RE.sub(" ", text).strip()


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when it was longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = 120) -> str:
    """``text`` on one line and at most ``limit`` characters (for details quoted in error messages)."""
    return shorten(collapse_spaces(text), limit)
