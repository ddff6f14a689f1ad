"""Crossref in the library: add by DOI or citation, resolve studies without a DOI, enrich, check updates.

What it owns:

- The **cache** of Crossref's answers (table ``crossref_cache``: DOI, fetch time, ``status`` and the raw work
  message). A DOI already cached costs no request unless ``refresh=True``, and so does a DOI Crossref said
  it does not know (``status="not-found"``, no message): asking again every run would cost two requests
  (the batch and the confirming ``/works/{doi}``) to learn the same thing. Citation searches are not cached.
- **Adding** a study from Crossref (``add_by_doi``, ``add_by_citation``), with provenance: the study's
  ``source`` is ``crossref`` and every field Crossref filled has ``field_sources[field] = "crossref"``.
- **Matching** free-text citations (``resolve_citation``): Crossref's ``query.bibliographic`` candidates
  are checked on title similarity (rapidfuzz), the first author's family name and the year found in the
  text, and the gap to the runner-up. Crossref's own score is shown but never decides.
- **Enriching** (``enrich``) and **checking for retractions** (``check_updates``) many studies, in batches
  of up to 50 DOIs per request.

Merge rules (``merge_work``): a bibliographic field that is empty is filled from Crossref; a field whose
value came from Crossref earlier follows Crossref; a field that is curated (``field_sources`` says
``seed``, ``manual`` or ``import``) and differs from Crossref is reported as a ``Conflict`` and kept.
Crossref's facts about a work (``status``, ``updates``, ``citations``, ``references_count``,
``crossref_checked_at``) are always updated: they are not anyone's opinion.

Transactions: services take a Session and never commit (STYLE.md), and so do ``add_by_doi``,
``add_by_citation`` and ``resolve_missing``. ``enrich`` and ``check_updates`` are the deliberate
exception: they take a ``Database`` and commit one transaction per chunk of up to 50 studies, so that an
interrupted run keeps what it finished and a re-run resumes (the cache makes the finished part free).
Requests are sent outside any transaction, so a slow Crossref never holds the database's write lock.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evidence import ids, records
from evidence.config import Settings
from evidence.crossref import CrossrefClient, CrossrefWork, WorkUpdate, parse_work
from evidence.db import Database
from evidence.errors import (
    BadEndpoint,
    BadResponse,
    CrossrefError,
    CrossrefUnavailable,
    DoiNotFound,
    InvalidValue,
    RateLimited,
)
from evidence.models import CACHE_FOUND, CACHE_NOT_FOUND, CrossrefCache, Study, utcnow
from evidence.query import show_study
from evidence.sequences import chunks

logger = logging.getLogger(__name__)

#: Studies per committed chunk; equal to the Crossref batch so that one chunk costs at most one request.
CHUNK_SIZE = 50
CURATED_SOURCES = frozenset({"seed", "manual", "import"})
#: Bibliographic columns that enrichment may fill, in display order ("authors" is handled apart).
BIBLIOGRAPHIC_FIELDS = (
    "title",
    "journal",
    "year",
    "volume",
    "issue",
    "pages",
    "article_number",
    "publication_type",
    "issn",
    "publisher",
    "url",
    "language",
    "abstract",
)
FACT_FIELDS = ("status", "updates", "citations", "references_count")
Outcome = Literal["enriched", "unchanged", "not-found", "failed", "no-doi"]
#: ``on_progress(outcome, done, total)``: called once per study, after its chunk is committed.
Progress = Callable[["StudyOutcome", int, int], None]


def make_client(settings: Settings) -> CrossrefClient:
    """The Crossref client for one command (pool limits, retries and batching from ``evidence.crossref``)."""
    return CrossrefClient(settings)


def unreachable(exc: CrossrefError) -> CrossrefError:
    """The one-line error a command reports when Crossref cannot be used at all (no network, 5xx, 429)."""
    if isinstance(exc, RateLimited):
        return exc
    if isinstance(exc, BadEndpoint):
        return BadEndpoint(
            f"Crossref could not be used ({exc.reason}): is EVIDENCE_CROSSREF_URL right? "
            "Everything else works offline.",
            doi=exc.doi,
            reason=exc.reason,
        )
    if isinstance(exc, CrossrefUnavailable):
        reason = exc.reason or str(exc)
        hint = "try again later." if reason.startswith("server error") else "no network?"
        return CrossrefUnavailable(
            f"Crossref could not be reached ({reason}): {hint} Everything else works offline.",
            doi=exc.doi,
            reason=exc.reason,
        )
    if not exc.attempted:  # e.g. Crossref refused every request (HTTP 400), so the client stopped
        return CrossrefError(
            f"Crossref refused our requests ({exc.reason or exc}); nothing more was sent",
            doi=exc.doi,
            reason=exc.reason,
        )
    return exc


def _stops_the_run(exc: CrossrefError) -> bool:
    """Errors that say Crossref itself is unusable right now (not something about one DOI)."""
    return isinstance(exc, CrossrefUnavailable | RateLimited) or not exc.attempted


# ==================================================================================================
# The cache
# ==================================================================================================


@dataclass(frozen=True)
class CachedMessage:
    """One cached answer: Crossref's work message, or ``None`` when Crossref had no record of the DOI."""

    doi: str
    fetched_at: datetime
    message: Mapping[str, Any] | None

    @property
    def found(self) -> bool:
        return self.message is not None

    def not_found(self) -> DoiNotFound:
        return DoiNotFound(
            f"Crossref has no record of DOI {self.doi} (as of {self.fetched_at.date().isoformat()}, from the "
            "cache; --refresh asks again)",
            doi=self.doi,
        )


def cached_messages(session: Session, dois: Iterable[str]) -> dict[str, CachedMessage]:
    """The cached answers for ``dois`` (normalised), by DOI; DOIs never asked are simply not in the dict."""
    wanted = list(dict.fromkeys(dois))
    found: dict[str, CachedMessage] = {}
    for start in range(0, len(wanted), 500):  # stay far below SQLite's bound-parameter limit
        chunk = wanted[start : start + 500]
        for row in session.scalars(select(CrossrefCache).where(CrossrefCache.doi.in_(chunk))):
            message = row.message if row.status == CACHE_FOUND else None
            found[row.doi] = CachedMessage(row.doi, row.fetched_at, message)
    return found


def cached_dois(session: Session, dois: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(dois))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        found.update(
            session.scalars(
                select(CrossrefCache.doi).where(CrossrefCache.doi.in_(wanted[start : start + 500]))
            )
        )
    return found


def store_message(session: Session, doi: str, message: Mapping[str, Any], fetched_at: datetime) -> None:
    """Insert or replace the cached message of ``doi`` (the DOI that was asked for, normalised)."""
    _store(session, doi, CACHE_FOUND, dict(message), fetched_at)


def store_not_found(session: Session, doi: str, fetched_at: datetime) -> None:
    """Remember that Crossref had no record of ``doi`` at ``fetched_at`` (so the next run does not ask)."""
    _store(session, doi, CACHE_NOT_FOUND, None, fetched_at)


def _store(
    session: Session, doi: str, status: str, message: dict[str, Any] | None, fetched_at: datetime
) -> None:
    row = session.get(CrossrefCache, doi)
    if row is None:
        session.add(CrossrefCache(doi=doi, fetched_at=fetched_at, status=status, message=message))
    else:
        row.status, row.message, row.fetched_at = status, message, fetched_at


def fetch_work_cached(
    session: Session, client: CrossrefClient, doi: str, *, refresh: bool = False
) -> tuple[CrossrefWork, datetime, bool]:
    """One work, from the cache unless ``refresh``; ``(work, fetched_at, from_cache)``.

    A fetched work is written to the cache in ``session``. Crossref errors are raised; "Crossref cannot be
    reached" comes as the one-line ``unreachable`` error. A cached "not found" is not trusted here: a user
    adding one DOI by hand may just have registered it, and one request is cheap.
    """
    key = ids.normalize_doi(doi)
    if not refresh:
        cached = cached_messages(session, [key]).get(key)
        if cached is not None and cached.message is not None:
            try:
                return parse_work(cached.message), cached.fetched_at, True
            except BadResponse:
                logger.warning("the cached Crossref record of %s is unreadable; fetching it again", key)
    try:
        work = client.fetch_work(key)
    except CrossrefError as exc:
        raise unreachable(exc) from exc
    now = utcnow()
    store_message(session, key, work.raw, now)
    return work, now, False


# ==================================================================================================
# From a Crossref work to study fields
# ==================================================================================================


def update_dicts(updates: Iterable[WorkUpdate]) -> list[dict[str, Any]]:
    """``updated-by`` entries as stored in ``Study.updates``: ``{type, doi, date, source}``."""
    return [
        {
            "type": u.type,
            "doi": u.doi,
            "date": u.date.isoformat() if u.date else None,
            "source": u.source,
        }
        for u in updates
    ]


def work_fields(work: CrossrefWork) -> dict[str, Any]:
    """The study columns Crossref can fill, from one work; ``None`` where Crossref has nothing usable."""
    title = work.title
    if title and work.subtitle:
        title = f"{title}: {work.subtitle}"
    year = work.year
    if year is not None and not records.MIN_YEAR <= year <= utcnow().year + 1:
        year = None  # Crossref has placeholder years (e.g. 1); never store one that validation refuses
    # CrossrefWork.pages is ``page`` or, failing that, ``article-number``: keep them apart here.
    pages = work.pages if work.pages and work.pages != work.article_number else None
    return {
        "title": title,
        "journal": work.container_title,
        "year": year,
        "volume": work.volume,
        "issue": work.issue,
        "pages": pages,
        "article_number": work.article_number,
        "publication_type": work.type,
        "issn": ", ".join(work.issn) or None,
        "publisher": work.publisher,
        "url": work.url,
        "language": work.language,
        "abstract": work.abstract,
    }


def work_authors(work: CrossrefWork) -> list[dict[str, Any]]:
    """Authors as ``records.add_study`` takes them: persons with ORCID, organisations as one name."""
    authors: list[dict[str, Any]] = []
    for author in work.authors:
        if author.family:
            authors.append({"family": author.family, "given": author.given, "orcid": author.orcid})
        elif author.name or author.given:
            authors.append({"name": author.name or author.given})
    return authors


def work_facts(work: CrossrefWork, checked_at: datetime) -> dict[str, Any]:
    """Crossref's facts about a work: always taken from Crossref, never curated."""
    return {
        "status": work.status,
        "updates": update_dicts(work.updated_by),
        "citations": work.citation_count,
        "references_count": work.references_count,
        "crossref_checked_at": checked_at,
    }


# --- comparing values -----------------------------------------------------------------------------

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_DASHES = re.compile(r"\s*[\u2010-\u2015\u2212-]+\s*")


def fold(text: str) -> str:
    """Lower-case ASCII words separated by single spaces (accents and punctuation dropped)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NON_ALNUM.sub(" ", ascii_text.lower()).strip()


def _page_range(value: str) -> str:
    """``690-6`` (or with an en dash) -> ``690-696``: the same range however it is written."""
    text = _DASHES.sub("-", value.strip())
    first, sep, last = text.partition("-")
    if sep and first.isdigit() and last.isdigit() and len(last) < len(first):
        last = first[: len(first) - len(last)] + last
    return f"{first}-{last}" if sep else first


def same_value(name: str, ours: Any, theirs: Any, work: CrossrefWork | None = None) -> bool:
    """Whether a curated value and Crossref's say the same thing (case, accents, dashes aside)."""
    if name == "year":
        return int(ours) == int(theirs)
    if name == "pages":
        our_range, their_range = _page_range(str(ours)), _page_range(str(theirs))
        # Crossref often has only the first page ("255") where we have the range ("255-270").
        return our_range == their_range or (
            "-" not in their_range and our_range.partition("-")[0] == their_range
        )
    if name == "issn":
        # Crossref lists print and electronic ISSNs; ours may be just one of them.
        our_issns = {fold(p) for p in str(ours).split(",")} - {""}
        their_issns = {fold(p) for p in str(theirs).split(",")} - {""}
        return bool(our_issns) and our_issns <= their_issns
    if name == "url":
        return str(ours).strip().rstrip("/").lower() == str(theirs).strip().rstrip("/").lower()
    alternatives = [theirs]
    if work is not None and name == "title" and work.title:
        alternatives.append(work.title)  # ours may leave the subtitle out
    if work is not None and name == "journal" and work.short_container_title:
        alternatives.append(work.short_container_title)  # ours may be the abbreviation
    return any(fold(str(ours)) == fold(str(alt)) for alt in alternatives)


def _author_key(author: Mapping[str, Any]) -> str:
    return fold(str(author.get("family") or author.get("name") or ""))


def _authors_text(authors: Sequence[Mapping[str, Any]]) -> str:
    names = [records.AuthorName.parse(a).display() for a in authors]
    return "; ".join(names[:4]) + (f"; ... ({len(names)} authors)" if len(names) > 4 else "")


# ==================================================================================================
# Merging a work into a study
# ==================================================================================================


@dataclass(frozen=True)
class Conflict:
    """A curated value that differs from Crossref's: reported, never overwritten."""

    field: str
    ours: Any
    crossref: Any
    source: str  # where ours came from: seed, manual, import

    def describe(self) -> str:
        return (
            f"{self.field}: ours {_short(self.ours)!r} ({self.source}) vs Crossref {_short(self.crossref)!r}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "ours": self.ours, "crossref": self.crossref, "source": self.source}


def _short(value: Any, limit: int = 60) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 3] + "..."
    return value


@dataclass
class MergeResult:
    filled: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # Crossref facts that changed
    conflicts: list[Conflict] = field(default_factory=list)


def merge_work(
    session: Session,
    study: Study,
    work: CrossrefWork,
    checked_at: datetime,
    *,
    facts_only: bool = False,
) -> MergeResult:
    """Merge Crossref's ``work`` into ``study`` by the rules in the module docstring. Never commits."""
    result = MergeResult()
    sources = dict(study.field_sources or {})

    for name, value in work_facts(work, checked_at).items():
        if name != "crossref_checked_at" and getattr(study, name) != value:
            result.updated.append(name)
        setattr(study, name, value)
    if facts_only:
        session.flush()
        return result

    changes: dict[str, Any] = {}
    for name, theirs in work_fields(work).items():
        if theirs is None:
            continue
        ours = getattr(study, name)
        if ours is None or (isinstance(ours, str) and not ours.strip()):
            changes[name] = theirs
        elif same_value(name, ours, theirs, work):
            continue
        elif sources.get(name) == "crossref":
            changes[name] = theirs  # Crossref's own earlier value: Crossref corrected it
        else:
            result.conflicts.append(Conflict(name, ours, theirs, sources.get(name, "unknown")))

    new_authors: list[dict[str, Any]] | None = None
    theirs_authors = work_authors(work)
    if theirs_authors:
        ours_authors = [
            {"family": a.family, "given": a.given, "orcid": a.orcid, "name": a.name} for a in study.authors
        ]
        if not ours_authors or sources.get("authors") == "crossref":
            new_authors = theirs_authors  # edit_study changes them only if they differ
        elif [_author_key(a) for a in ours_authors] == [_author_key(a) for a in theirs_authors]:
            # The same people: keep our names as curated, add the ORCIDs we lack (missing, not different).
            orcids = 0
            for author, theirs in zip(study.authors, theirs_authors, strict=True):
                if author.orcid is None and theirs.get("orcid"):
                    author.orcid = theirs["orcid"]
                    orcids += 1
            if orcids:
                sources["authors.orcid"] = "crossref"
                result.filled.append("authors.orcid")
        else:
            result.conflicts.append(
                Conflict(
                    "authors",
                    _authors_text(ours_authors),
                    _authors_text(theirs_authors),
                    sources.get("authors", "unknown"),
                )
            )

    if result.filled:
        study.field_sources = sources
    if changes or new_authors is not None:
        changed = records.edit_study(session, study, changes, source="crossref", authors=new_authors)
        result.filled.extend(name for name in changed if name != "level")
    session.flush()
    return result


# ==================================================================================================
# Adding a study from Crossref
# ==================================================================================================


def add_work(
    session: Session,
    work: CrossrefWork,
    checked_at: datetime,
    *,
    fields: Mapping[str, Any] | None = None,
    authors: Sequence[str] = (),
    tags: Iterable[str] = (),
    claims: Sequence[str] = (),
    stance: str | None = None,
    finding: str | None = None,
    doi_verified: bool = True,
    extra_verification_note: str | None = None,
) -> Study:
    """Store ``work`` as a new study with ``source="crossref"``; fields the user gave win and are ``manual``.

    ``doi_verified``: the user asked for exactly this DOI (``add --doi``), so Crossref's record of it
    verifies it; a DOI found by a citation search is only a metadata match (``unverified``, the evidence in
    ``extra_verification_note``). The bibliographic fields are ``verified`` only if every one of them is
    Crossref's (a value the user gave that differs from Crossref's is not verified by anyone). Derived
    fields follow their source: a level computed from the user's design is ``manual``.
    ``DuplicateRecord`` if the library already has its DOI.
    """
    links = records.claim_links(claims, stance, finding)
    user = {k: v for k, v in records.normalize_fields(dict(fields or {})).items() if v is not None}
    user.pop("doi", None)
    records.find_duplicate(session, work.doi, user.get("pmid"), user.get("citekey"))
    theirs = {k: v for k, v in work_fields(work).items() if v is not None}
    values = {**theirs, **user}
    values["doi"] = work.doi
    values.setdefault("doi_verification", "verified" if doi_verified else "unverified")
    not_crossrefs = [
        name
        for name, field_ in records.VERIFICATION_OF_FIELD.items()
        if field_ == "bibliographic_verification"
        and name in user
        and not (name in theirs and same_value(name, user[name], theirs[name], work))
    ]
    values.setdefault("bibliographic_verification", "unverified" if not_crossrefs else "verified")
    if not authors:
        values.setdefault("authors_verification", "verified")
    notes = [extra_verification_note] if extra_verification_note else []
    if not_crossrefs:
        notes.append(
            "Given by hand, not Crossref's: "
            + "; ".join(f"{name} {user[name]!r} (Crossref: {theirs.get(name)!r})" for name in not_crossrefs)
            + "."
        )
    if notes:
        values["verification_note"] = " ".join(notes)
    if not values.get("title"):
        raise InvalidValue(f"Crossref's record of {work.doi} has no title; add it by hand with --title")
    study = records.add_study(
        session,
        values,
        authors=list(authors) or work_authors(work),
        tags=tags,
        claims=links,
        source="crossref",
        extra=work_facts(work, checked_at),
    )
    provenance = dict(study.field_sources)
    for name in user:
        provenance[name] = "manual"
    if "level" not in user and "design" in user and study.level is not None:
        provenance["level"] = "manual"  # computed from the user's design, not from anything Crossref said
    if authors:
        provenance["authors"] = "manual"
    study.field_sources = provenance
    session.flush()
    return study


def add_by_doi(
    session: Session,
    client: CrossrefClient,
    doi: str,
    *,
    fields: Mapping[str, Any] | None = None,
    authors: Sequence[str] = (),
    tags: Iterable[str] = (),
    claims: Sequence[str] = (),
    stance: str | None = None,
    finding: str | None = None,
    refresh: bool = False,
) -> dict[str, Any]:
    """Fetch ``doi`` from Crossref (or the cache) and add it; returns the study as ``show`` sees it.

    An existing DOI raises ``DuplicateRecord`` before any request. Claims, stance, finding, tags and any
    ``fields`` (design, population, PEDro...) apply to the new study; a field given here wins over
    Crossref's and is recorded as ``manual``.
    """
    key = ids.normalize_doi(doi)
    records.claim_links(claims, stance, finding)  # refuse bad options before spending a request
    records.normalize_fields(dict(fields or {}))
    records.find_duplicate(session, key, None, None)
    work, fetched_at, _from_cache = fetch_work_cached(session, client, key, refresh=refresh)
    study = add_work(
        session,
        work,
        fetched_at,
        fields=fields,
        authors=authors,
        tags=tags,
        claims=claims,
        stance=stance,
        finding=finding,
    )
    return show_study(session, f"id:{study.id}")


# ==================================================================================================
# Free-text citations
# ==================================================================================================

#: A candidate is acceptable only with its title at least this similar (rapidfuzz, 0-100) to the text.
TITLE_THRESHOLD = 90.0
#: ... and hold at least this share of the cited title's words (a short title inside a longer one is not it).
MIN_TITLE_COVERAGE = 0.8
#: ... and its confidence this far ahead of the runner-up's.
MIN_GAP = 0.15
YearCheck = Literal["exact", "near", "mismatch", "unknown"]


@dataclass(frozen=True)
class Candidate:
    """One Crossref candidate for a citation, with the evidence for and against it."""

    rank: int  # 1-based, by our confidence; what --pick takes
    work: CrossrefWork
    title_similarity: float  # 0-100
    title_coverage: float  # 0-1: share of the cited title's words in the candidate's title
    author_found: bool | None  # first author's family name in the text; None: the work lists no author
    year_check: YearCheck
    confidence: float  # 0-1, ours: title 0.6, author 0.2, year 0.2
    reasons: tuple[str, ...]

    @property
    def acceptable(self) -> bool:
        """Passes every check on its own (the gap to the runner-up is judged by ``resolve_citation``)."""
        if self.title_similarity < TITLE_THRESHOLD or self.author_found is False:
            return False
        if self.title_coverage < MIN_TITLE_COVERAGE:
            return False  # a short title found inside a longer cited title: another paper
        if self.year_check == "mismatch":
            return False
        # At least one of author or year must positively agree, besides the title.
        return self.author_found is True or self.year_check == "exact"

    def as_dict(self) -> dict[str, Any]:
        first = work_authors(self.work)[:1]
        return {
            "rank": self.rank,
            "doi": self.work.doi,
            "title": self.work.title,
            "first_author": records.AuthorName.parse(first[0]).display() if first else None,
            "year": self.work.year,
            "journal": self.work.container_title,
            "confidence": round(self.confidence, 2),
            "title_similarity": round(self.title_similarity, 1),
            "title_coverage": round(self.title_coverage, 2),
            "author_found": self.author_found,
            "year_check": self.year_check,
            "crossref_score": self.work.score,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class CitationDecision:
    """What a citation resolved to: a confident ``match`` with its evidence, or ranked candidates."""

    text: str
    candidates: tuple[Candidate, ...]
    match: Candidate | None
    why: str

    @property
    def confident(self) -> bool:
        return self.match is not None

    def pick(self, number: int) -> Candidate:
        """The ``number``-th candidate (1-based, as shown), for ``--pick``."""
        if not self.candidates:
            raise InvalidValue("Crossref found no candidate to pick from")
        if not 1 <= number <= len(self.candidates):
            raise InvalidValue(f"--pick must be from 1 to {len(self.candidates)}, not {number}")
        return self.candidates[number - 1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confident": self.confident,
            "match": self.match.work.doi if self.match else None,
            "why": self.why,
            "candidates": [c.as_dict() for c in self.candidates],
        }


# Where a citation's parts end: a full stop, question or exclamation mark, or a closing bracket (as in
# "Smith J (2016) Title"), followed by a space. A title may hold one of these ("vs.", "(IASTM)"): the title
# region below is made of every part the matched window mostly covers, so such a split does no harm.
_PART_END = re.compile(r"(?<=[.?!)\]])\s+")


@dataclass(frozen=True)
class TitleMatch:
    """How well a candidate's title matches the citation text."""

    similarity: float  # 0-100: fuzz.ratio of the title against the best title-sized window of the text
    coverage: float  # 0-1: share of the cited title's words (the parts the window lies in) in the title


def _citation_words(text: str) -> tuple[list[str], list[int]]:
    """The folded words of ``text`` and, for each, the number of the part of the citation it is in."""
    words: list[str] = []
    parts: list[int] = []
    for number, part in enumerate(_PART_END.split(text)):
        for word in fold(part).split():
            words.append(word)
            parts.append(number)
    return words, parts


def _coverage(title_words: set[str], words: list[str], parts: list[int], start: int, end: int) -> float:
    """Share of the cited title's words that the candidate's title has.

    The cited title is taken to be the part of the citation holding most of the window, plus every other
    part the window covers at least half of (a title split by "vs." or "(IASTM)"). Initials and numbers
    are not counted: they are authors, years and pages, not title words.
    """
    inside: dict[int, int] = {}
    for number in parts[start:end]:
        inside[number] = inside.get(number, 0) + 1
    sizes: dict[int, int] = {}
    for number in parts:
        sizes[number] = sizes.get(number, 0) + 1
    main = max(inside, key=lambda n: (inside[n], -n))
    region = {n for n, count in inside.items() if n == main or count * 2 >= sizes[n]}
    counted = [w for w, n in zip(words, parts, strict=True) if n in region and len(w) > 1 and not w.isdigit()]
    if not counted:
        return 1.0
    return sum(1 for w in counted if w in title_words) / len(counted)


def _title_similarity(work: CrossrefWork, text: str) -> TitleMatch:
    """Compare the candidate's title with the title-sized windows of the citation, length included.

    ``fuzz.partial_ratio`` would give 100% to a short title ("Hamstring flexibility", an editorial) that
    merely appears inside a longer cited title. So: ``fuzz.ratio`` against every window of about the title's
    length (the best one wins), and the coverage of the cited title by the candidate's title words.
    """
    from rapidfuzz import fuzz  # imported here: only citation matching needs it

    words, parts = _citation_words(text)
    best = TitleMatch(0.0, 0.0)
    titles = [work.title]
    if work.title and work.subtitle:
        titles.append(f"{work.title} {work.subtitle}")
    for title in titles:
        folded = fold(title or "")
        if not folded or not words:
            continue
        size = len(folded.split())
        slack = max(2, size // 4)
        similarity, window = -1.0, (0, 0)
        for length in range(max(1, size - slack), min(len(words), size + slack) + 1):
            for start in range(len(words) - length + 1):
                score = float(fuzz.ratio(folded, " ".join(words[start : start + length])))
                if score > similarity:
                    similarity, window = score, (start, start + length)
        if similarity < 0:  # a text shorter than the title's lower bound: compare it whole
            similarity, window = float(fuzz.ratio(folded, " ".join(words))), (0, len(words))
        match = TitleMatch(similarity, _coverage(set(folded.split()), words, parts, *window))
        if _title_score(match) > _title_score(best):
            best = match
    return best


def _title_score(match: TitleMatch) -> float:
    """0-1: similarity, scaled down when the title covers less of the cited title than it must."""
    return match.similarity / 100 * min(1.0, match.coverage / MIN_TITLE_COVERAGE)


def _first_author(work: CrossrefWork) -> str | None:
    firsts = [a for a in work.authors if a.sequence == "first"] or list(work.authors[:1])
    if not firsts:
        return None
    author = firsts[0]
    return author.family or author.name or author.given


# --- the year a citation gives --------------------------------------------------------------------------

_YEAR_TOKEN = re.compile(r"(?<![\d.])(1[89]\d\d|20\d\d)[a-z]?(?![\d])")
_PAGE_RANGE = re.compile(r"\d+\s*[-\u2010-\u2015\u2212]\s*\d+")


def citation_years(text: str) -> list[int]:
    """The years ``text`` may be from, most plausible first (empty if it names none).

    Not years: numbers in a page range (``1995-2001``) or after a colon (``12:1995``, pages; ``(3):1995``).
    Most plausible: ``(2016)``, ``2016;`` (Vancouver: year;volume:pages) or a year standing alone as a
    part of the citation (``Smith J, 2016.`` / ``. 2016.``); then any other four-digit year. A year in a
    title ("The 2016 consensus") is therefore outranked by the publication year when both are there.
    """
    in_ranges = [(m.start(), m.end()) for m in _PAGE_RANGE.finditer(text)]
    ranked: list[tuple[int, int, int]] = []  # (tier, position, year): lower tier is more plausible
    for match in _YEAR_TOKEN.finditer(text):
        start, end = match.span()
        if any(a <= start < b for a, b in in_ranges):
            continue
        before = text[:start].rstrip()
        after = text[end:].lstrip()
        if before.endswith(":"):
            continue  # ;12:1995 — a page
        if (before.endswith("(") and after.startswith(")")) or after.startswith(";"):
            tier = 0
        elif (not before or before[-1] in ".,") and (not after or after[0] in ".,:"):
            tier = 1
        else:
            tier = 2
        ranked.append((tier, start, int(match.group(1))))
    ranked.sort()
    return list(dict.fromkeys(year for _tier, _pos, year in ranked))


def score_candidate(work: CrossrefWork, text: str, rank: int = 0) -> Candidate:
    """Check one candidate against the citation text: title, first author, year. Pure (no I/O)."""
    folded_text = fold(text)
    words = f" {folded_text} "
    reasons: list[str] = []

    title = _title_similarity(work, text)
    if title.coverage < MIN_TITLE_COVERAGE:
        reasons.append(
            f"title {title.similarity:.0f}% similar but covers only {title.coverage:.0%} of the cited title"
        )
    else:
        reasons.append(f"title {title.similarity:.0f}% similar")

    first = _first_author(work)
    author_found: bool | None
    if first is None:
        author_found = None
        reasons.append("Crossref lists no author")
    else:
        author_found = f" {fold(first)} " in words
        reasons.append(f"first author {first} {'found' if author_found else 'NOT found'} in the text")

    # Only the most plausible year counts: in "Clin J 2016;12:1995-2001" the year is 2016, and 1995 (a page)
    # must not confirm a 1995 paper.
    years = citation_years(text)
    cited = years[0] if years else None
    year_check: YearCheck
    if work.year is None:
        year_check = "unknown"
        reasons.append("Crossref has no year")
    elif cited is None:
        year_check = "unknown"
        reasons.append(f"no year in the text (Crossref: {work.year})")
    elif work.year == cited:
        year_check = "exact"
        reasons.append(f"year {work.year} matches")
    elif abs(work.year - cited) == 1:
        # Online-first vs print year: a citation is often a year off Crossref's "issued".
        year_check = "near"
        reasons.append(f"year {work.year} is one off the text's {cited}")
    else:
        year_check = "mismatch"
        reasons.append(f"year {work.year} is not the text's {cited}")

    if work.score is not None:
        reasons.append(f"Crossref score {work.score:g} (never decisive)")
    author_part = {True: 0.2, None: 0.1, False: 0.0}[author_found]
    year_part = {"exact": 0.2, "near": 0.15, "unknown": 0.1, "mismatch": 0.0}[year_check]
    confidence = 0.6 * _title_score(title) + author_part + year_part
    return Candidate(
        rank,
        work,
        title.similarity,
        title.coverage,
        author_found,
        year_check,
        confidence,
        tuple(reasons),
    )


def decide(text: str, works: Sequence[CrossrefWork]) -> CitationDecision:
    """Rank Crossref's candidates by our own checks and accept the best only if it is clearly right."""
    scored = [score_candidate(work, text) for work in works]
    # Our confidence first; Crossref's order only breaks ties.
    order = sorted(range(len(scored)), key=lambda i: (-round(scored[i].confidence, 6), i))
    ranked = tuple(
        Candidate(
            rank,
            c.work,
            c.title_similarity,
            c.title_coverage,
            c.author_found,
            c.year_check,
            c.confidence,
            c.reasons,
        )
        for rank, c in enumerate((scored[i] for i in order), start=1)
    )
    if not ranked:
        return CitationDecision(text, ranked, None, "Crossref found no candidate")
    best = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else None
    if not best.acceptable:
        problems = []
        if best.title_similarity < TITLE_THRESHOLD:
            problems.append(f"title only {best.title_similarity:.0f}% similar (needs {TITLE_THRESHOLD:.0f})")
        elif best.title_coverage < MIN_TITLE_COVERAGE:
            problems.append(
                f"its title covers only {best.title_coverage:.0%} of the cited title "
                f"(needs {MIN_TITLE_COVERAGE:.0%}: a shorter title inside a longer one is another paper)"
            )
        if best.author_found is False:
            problems.append("first author not in the text")
        if best.year_check == "mismatch":
            problems.append("year differs")
        if not problems:
            problems.append("neither the first author nor the year confirms it")
        return CitationDecision(
            text, ranked, None, "no candidate is clearly right: best has " + ", ".join(problems)
        )
    if runner_up is not None:
        gap = best.confidence - runner_up.confidence
        if runner_up.acceptable or gap < MIN_GAP:
            return CitationDecision(
                text,
                ranked,
                None,
                f"candidates 1 and 2 are too close (confidence {best.confidence:.2f} vs "
                f"{runner_up.confidence:.2f}; a preprint and its article, or two similar papers?)",
            )
        gap_text = f"; runner-up {runner_up.confidence:.2f} (gap {gap:.2f})"
    else:
        gap_text = "; the only candidate"
    why = f"confident ({best.confidence:.2f}): " + ", ".join(best.reasons[:3]) + gap_text
    return CitationDecision(text, ranked, best, why)


def resolve_citation(client: CrossrefClient, text: str, *, rows: int = 5) -> CitationDecision:
    """Match a free-text citation against Crossref (``query.bibliographic``) and judge the candidates.

    Never accepts on Crossref's score alone: see ``decide``. One request; nothing is stored.
    """
    try:
        works = client.search_bibliographic(text, rows=rows)
    except CrossrefError as exc:
        raise unreachable(exc) from exc
    return decide(" ".join(text.split()), works)


@dataclass(frozen=True)
class CitationAdd:
    decision: CitationDecision
    picked: Candidate | None  # what was stored (the confident match, or the user's pick)
    study: dict[str, Any] | None  # as `show` sees it; None when nothing was stored


def add_by_citation(
    session: Session,
    client: CrossrefClient,
    text: str,
    *,
    pick: int | None = None,
    fields: Mapping[str, Any] | None = None,
    authors: Sequence[str] = (),
    tags: Iterable[str] = (),
    claims: Sequence[str] = (),
    stance: str | None = None,
    finding: str | None = None,
) -> CitationAdd:
    """Resolve ``text`` and store the confident match, or the ``pick``-th candidate; else store nothing."""
    records.claim_links(claims, stance, finding)
    records.normalize_fields(dict(fields or {}))
    decision = resolve_citation(client, text)
    chosen = decision.pick(pick) if pick is not None else decision.match
    if chosen is None:
        return CitationAdd(decision, None, None)
    work = chosen.work
    now = utcnow()
    records.find_duplicate(session, work.doi, None, None)
    store_message(session, work.doi, work.raw, now)
    how = "picked by the user" if pick is not None and chosen is not decision.match else "confident match"
    note = (
        f"DOI {work.doi} matched by a Crossref citation search on {now.date().isoformat()} for the citation "
        f"{text!r} ({how}: " + ", ".join(chosen.reasons[:3]) + "); the article itself was not checked."
    )
    study = add_work(
        session,
        work,
        now,
        fields=fields,
        authors=authors,
        tags=tags,
        claims=claims,
        stance=stance,
        finding=finding,
        doi_verified=False,
        extra_verification_note=note,
    )
    return CitationAdd(decision, chosen, show_study(session, f"id:{study.id}"))


# --- studies without a DOI ---------------------------------------------------------------------------


def citation_text(study: Study) -> str:
    """A reference-list style citation built from a study's own fields, for ``query.bibliographic``."""
    authors = [a.family or a.name or "" for a in study.authors if a.family or a.name]
    parts = [", ".join(authors[:3])] if authors else []
    if study.year:
        parts.append(f"({study.year})")
    parts.append(study.title.rstrip(".") + ".")
    if study.journal:
        where = study.journal
        if study.volume:
            where += f" {study.volume}"
            if study.issue:
                where += f"({study.issue})"
        if study.pages or study.article_number:
            where += f": {study.pages or study.article_number}"
        parts.append(where + ".")
    return " ".join(parts)


@dataclass(frozen=True)
class MissingDoi:
    """``resolve --missing`` for one study: what Crossref suggested, how sure, and what was done."""

    id: int
    citekey: str
    citation: str
    decision: CitationDecision
    applied: bool
    note: str | None = None

    def row(self) -> dict[str, Any]:
        best = self.decision.match or (self.decision.candidates[0] if self.decision.candidates else None)
        return {
            "id": self.id,
            "citekey": self.citekey,
            "found": self.decision.match.work.doi if self.decision.match else None,
            "confident": self.decision.confident,
            "best_candidate": best.work.doi if best else None,
            "confidence": round(best.confidence, 2) if best else None,
            "why": self.decision.why,
            "applied": self.applied,
            "note": self.note,
            "citation": self.citation,
        }


def resolve_missing(
    session: Session,
    client: CrossrefClient,
    *,
    apply: bool = False,
    on_progress: Callable[[MissingDoi, int, int], None] | None = None,
) -> list[MissingDoi]:
    """Resolve every study without a DOI from its own fields; store DOIs only if ``apply`` and confident.

    One citation search per study. An applied DOI is marked ``field_sources["doi"] = "crossref"`` and
    ``doi_verification = "unverified"`` (matched by metadata, the article itself not seen), with the evidence
    in the verification note; nothing else changes (run ``enrich`` next). A DOI another study already has is
    not applied. If Crossref cannot be reached, the one-line error is raised and the caller's transaction
    rolls back.
    """
    studies = session.scalars(
        select(Study).where(Study.doi.is_(None)).options(selectinload(Study.authors)).order_by(Study.id)
    ).all()
    results: list[MissingDoi] = []
    for study in studies:
        text = citation_text(study)
        decision = resolve_citation(client, text)
        applied, note = False, None
        if decision.match is not None and apply:
            doi = decision.match.work.doi
            owner = session.scalar(select(Study).where(Study.doi == doi))
            if owner is not None:
                note = f"not applied: {doi} is already study {owner.id} ({owner.citekey})"
            else:
                evidence_note = (
                    f"DOI {doi} matched by a Crossref citation search on {utcnow().date().isoformat()} "
                    f"({decision.why}); the article itself was not checked."
                )
                study.doi = doi
                study.doi_verification = "unverified"
                study.verification_note = (
                    f"{study.verification_note} {evidence_note}" if study.verification_note else evidence_note
                )
                study.field_sources = {**(study.field_sources or {}), "doi": "crossref"}
                study.updated_at = utcnow()
                session.flush()
                applied, note = True, f"DOI stored; run `evidence enrich {study.citekey}` to fill the rest"
        elif decision.match is not None:
            note = "rerun with --apply to store the DOI"
        result = MissingDoi(study.id, study.citekey, text, decision, applied, note)
        results.append(result)
        if on_progress is not None:
            on_progress(result, len(results), len(studies))
    return results


# ==================================================================================================
# Enrichment and the retraction check, in chunks
# ==================================================================================================


@dataclass
class StudyOutcome:
    """What enrichment (or the update check) did to one study."""

    id: int
    citekey: str
    doi: str | None
    outcome: Outcome
    filled: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    status: str = "ok"
    previous_status: str = "ok"
    updates: list[dict[str, Any]] = field(default_factory=list)
    detail: str | None = None
    from_cache: bool = False

    @property
    def problem(self) -> bool:
        return self.outcome in ("failed", "not-found")

    def row(self) -> dict[str, Any]:
        detail = self.detail
        if self.from_cache and detail is None:
            detail = "from the cache"
        return {
            "id": self.id,
            "citekey": self.citekey,
            "doi": self.doi,
            "outcome": self.outcome,
            "filled": self.filled,
            "updated": self.updated,
            "conflicts": [c.describe() for c in self.conflicts],
            "status": self.status,
            "updates": self.updates,
            "detail": detail,
        }


@dataclass
class EnrichReport:
    items: list[StudyOutcome]
    requests_sent: int = 0
    responses_429: int = 0
    from_cache: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for item in self.items if item.outcome == outcome)

    @property
    def conflicts(self) -> int:
        return sum(len(item.conflicts) for item in self.items)

    @property
    def failed(self) -> bool:
        """Anything that needs the user: a failure, or a DOI Crossref does not know."""
        return any(item.problem for item in self.items)

    def summary(self) -> str:
        parts = [
            f"{self.count(outcome)} {outcome.replace('-', ' ')}"
            for outcome in ("enriched", "unchanged", "not-found", "failed", "no-doi")
            if self.count(outcome) or outcome in ("enriched", "failed")
        ]
        parts.append(f"{self.conflicts} conflicts kept")
        return (
            ", ".join(parts)
            + f"; {self.requests_sent} requests to Crossref, {self.from_cache} studies from the cache"
        )


@dataclass(frozen=True)
class _Target:
    position: int
    id: int
    citekey: str
    doi: str | None


def _targets(session: Session, refs: Sequence[str] | None) -> list[_Target]:
    if refs is None:
        rows = session.execute(select(Study.id, Study.citekey, Study.doi).order_by(Study.id)).all()
        return [_Target(i, r.id, r.citekey, r.doi) for i, r in enumerate(rows)]
    targets: list[_Target] = []
    seen: set[int] = set()
    for ref in refs:
        study = records.resolve_ref(session, ref)  # RecordNotFound before any request
        if study.id not in seen:
            seen.add(study.id)
            targets.append(_Target(len(targets), study.id, study.citekey, study.doi))
    return targets


def enrich(
    db: Database,
    client: CrossrefClient,
    refs: Sequence[str] | None = None,
    *,
    refresh: bool = False,
    cache_only: bool = False,
    facts_only: bool = False,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Progress | None = None,
) -> EnrichReport:
    """Fill in what Crossref knows for ``refs`` (every study when ``None``), committing per chunk.

    DOIs not in the cache (all of them with ``refresh``) are fetched ``chunk_size`` per request; cached
    ones cost nothing, including DOIs Crossref said it does not know (``not-found`` again, from the
    cache). ``cache_only`` sends no request at all: a DOI never fetched is reported as failed ("not in the
    cache"). Fetched chunks go first, so that when Crossref cannot be reached at all the run
    stops before changing anything (raising the one-line ``unreachable`` error). Once Crossref fails
    mid-run, no further requests are sent: the remaining uncached studies are reported as failed, the
    cached ones are still merged, and what was committed stays. ``facts_only`` updates only status,
    updates, citations and references (``check_updates``).
    """
    if not 1 <= chunk_size <= CHUNK_SIZE:
        raise InvalidValue(f"a chunk holds 1 to {CHUNK_SIZE} studies, not {chunk_size}")
    if refresh and cache_only:
        raise InvalidValue("refresh asks Crossref again; cache_only never asks: not both")
    requests_before, throttled_before = client.requests_sent, client.responses_429
    with db.transaction() as session:
        targets = _targets(session, refs)
        with_doi = [t for t in targets if t.doi]
        in_cache = set() if refresh else cached_dois(session, [str(t.doi) for t in with_doi])

    outcomes: list[StudyOutcome] = []

    def report(outcome: StudyOutcome) -> None:
        outcomes.append(outcome)
        if on_progress is not None:
            on_progress(outcome, len(outcomes), len(targets))

    for target in targets:
        if not target.doi:
            report(
                StudyOutcome(
                    target.id,
                    target.citekey,
                    None,
                    "no-doi",
                    detail="no DOI: try `evidence resolve --missing`",
                )
            )

    to_fetch = [] if cache_only else [t for t in with_doi if t.doi not in in_cache]
    cached = [t for t in with_doi if t.doi in in_cache or cache_only]
    stopped: CrossrefError | None = None
    committed = False
    plan = [(chunk, True) for chunk in chunks(to_fetch, chunk_size)]
    plan += [(chunk, False) for chunk in chunks(cached, chunk_size)]
    for chunk, fetch in plan:
        fetched: dict[str, CrossrefWork | CrossrefError] = {}
        if fetch and stopped is None:
            fetched = client.fetch_works([str(t.doi) for t in chunk], confirm_missing=True)
            failures = [r for r in fetched.values() if isinstance(r, CrossrefError) and _stops_the_run(r)]
            if failures:
                stopped = failures[0]
                if not committed and not any(isinstance(r, CrossrefWork) for r in fetched.values()):
                    raise unreachable(stopped)
        chunk_outcomes = _merge_chunk(
            db, chunk, fetched, stopped, facts_only=facts_only, cache_only=cache_only
        )
        committed = True
        for outcome in chunk_outcomes:
            report(outcome)

    order = {t.id: t.position for t in targets}
    outcomes.sort(key=lambda o: order[o.id])
    return EnrichReport(
        outcomes,
        requests_sent=client.requests_sent - requests_before,
        responses_429=client.responses_429 - throttled_before,
        from_cache=sum(1 for o in outcomes if o.from_cache),
    )


def _merge_chunk(
    db: Database,
    chunk: Sequence[_Target],
    fetched: Mapping[str, CrossrefWork | CrossrefError],
    stopped: CrossrefError | None,
    *,
    facts_only: bool,
    cache_only: bool = False,
) -> list[StudyOutcome]:
    """One transaction: cache what was fetched (works and not-found answers), merge every study, commit."""
    outcomes: list[StudyOutcome] = []
    with db.transaction() as session:
        now = utcnow()
        for doi, answer in fetched.items():
            if isinstance(answer, CrossrefWork):
                store_message(session, doi, answer.raw, now)
            elif isinstance(answer, DoiNotFound):
                store_not_found(session, doi, now)
        cache = cached_messages(session, [str(t.doi) for t in chunk if str(t.doi) not in fetched])
        studies = {
            s.id: s
            for s in session.scalars(
                select(Study).where(Study.id.in_([t.id for t in chunk])).options(selectinload(Study.authors))
            )
        }
        for target in chunk:
            doi = str(target.doi)
            study = studies.get(target.id)
            if study is None:  # removed meanwhile (another process)
                continue
            outcome = StudyOutcome(target.id, target.citekey, doi, "unchanged", previous_status=study.status)
            result: CrossrefWork | CrossrefError | None = fetched.get(doi)
            checked_at = now
            if result is None and doi in cache:
                entry = cache[doi]
                checked_at = entry.fetched_at
                outcome.from_cache = True
                if entry.message is None:
                    result = entry.not_found()
                else:
                    try:
                        result = parse_work(entry.message)
                    except BadResponse as exc:
                        result = exc
            if result is None and cache_only:
                outcome.outcome = "failed"
                outcome.detail = "not in the cache: never fetched from Crossref (ask without --cached)"
            elif result is None:
                assert stopped is not None
                outcome.outcome = "failed"
                outcome.detail = f"not attempted: {unreachable(stopped)}"
            elif isinstance(result, DoiNotFound):
                outcome.outcome = "not-found"
                outcome.detail = str(result)
            elif isinstance(result, CrossrefError):
                outcome.outcome = "failed"
                outcome.detail = str(result)
            else:
                merged = merge_work(session, study, result, checked_at, facts_only=facts_only)
                outcome.filled, outcome.updated, outcome.conflicts = (
                    merged.filled,
                    merged.updated,
                    merged.conflicts,
                )
                if merged.filled or merged.updated:
                    outcome.outcome = "enriched"
            outcome.status = study.status
            outcome.updates = list(study.updates or [])
            outcomes.append(outcome)
    return outcomes


@dataclass
class UpdateCheck:
    """``check_updates``: every study with a DOI re-checked for retractions, corrections, concerns."""

    report: EnrichReport
    without_doi: int

    @property
    def flagged(self) -> list[StudyOutcome]:
        """Studies with a retraction, correction or expression of concern, worst first."""
        rank = {"retracted": 0, "expression-of-concern": 1, "corrected": 2}
        items = [o for o in self.report.items if o.outcome in ("enriched", "unchanged") and o.status != "ok"]
        return sorted(items, key=lambda o: (rank.get(o.status, 3), o.id))

    @property
    def checked(self) -> int:
        return sum(1 for o in self.report.items if o.outcome in ("enriched", "unchanged"))

    @property
    def nothing_checked(self) -> bool:
        """Studies with a DOI were there, but not one could be checked: the check did not happen."""
        return bool(self.report.items) and self.checked == 0

    @property
    def failed(self) -> list[StudyOutcome]:
        return [o for o in self.report.items if o.outcome == "failed"]

    @property
    def not_found(self) -> list[StudyOutcome]:
        return [o for o in self.report.items if o.outcome == "not-found"]

    def count(self, status: str) -> int:
        return sum(1 for o in self.flagged if o.status == status)

    def summary(self) -> str:
        text = (
            f"checked {self.checked} studies: {self.count('retracted')} retracted, "
            f"{self.count('corrected')} corrected, {self.count('expression-of-concern')} with an expression "
            f"of concern"
        )
        newly = [o for o in self.flagged if o.status != o.previous_status]
        if newly:
            text += f" ({len(newly)} new since the last check)"
        extra = []
        if self.not_found:
            extra.append(f"{len(self.not_found)} DOIs not in Crossref")
        if self.failed:
            extra.append(f"{len(self.failed)} not checked (Crossref failed)")
        if self.without_doi:
            extra.append(f"{self.without_doi} without a DOI")
        return text + ("; " + ", ".join(extra) if extra else "")


def check_updates(
    db: Database,
    client: CrossrefClient,
    *,
    refresh: bool = True,
    on_progress: Progress | None = None,
) -> UpdateCheck:
    """Re-check ``updated-by`` for every study with a DOI: fresh from Crossref, or with ``refresh=False``
    from the cache only (no request at all; a DOI never fetched is reported as not checked).

    Updates only Crossref's facts (status, updates, citations, references); commits per chunk like
    ``enrich``. Raises the one-line ``unreachable`` error if Crossref cannot be reached at all.
    """

    report = enrich(
        db,
        client,
        None,
        refresh=refresh,
        cache_only=not refresh,
        facts_only=True,
        on_progress=on_progress,
    )
    without = [o for o in report.items if o.outcome == "no-doi"]
    report.items = [o for o in report.items if o.outcome != "no-doi"]
    return UpdateCheck(report, len(without))
