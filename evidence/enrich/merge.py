"""Merging a Crossref work into a study, field by field, with provenance; curated values are never lost.

A Crossref work becomes study columns (``work_fields``), authors (``work_authors``) and Crossref's facts
(``work_facts``). Merge rules (``merge_work``): a bibliographic field that is empty is filled from Crossref;
a field whose value came from Crossref earlier follows Crossref; a field that is curated (``field_sources``
says ``seed``, ``manual`` or ``import``) and differs from Crossref is reported as a ``Conflict`` and kept.
Crossref's facts about a work (``status``, ``updates``, ``citations``, ``references_count``,
``crossref_checked_at``) are always updated: they are not anyone's opinion. ``same_value`` decides when a
curated value and Crossref's say the same thing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from evidence import records
from evidence.crossref import CrossrefWork, WorkUpdate
from evidence.crossref.parse import shorten
from evidence.schema import TEXT_LIMITS
from evidence.store.models import Study, utcnow


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
    fields = {
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
    return {key: _storable(key, value) for key, value in fields.items()}


def _storable(key: str, value: Any) -> Any:
    """``value`` as the library may keep it: without NUL and control characters (which add and import
    refuse or strip too), and None when longer than its column holds (PostgreSQL would refuse the
    whole chunk; SQLite keep it) or than a study's field may be (`schema.TEXT_LIMITS`)."""
    if not isinstance(value, str):
        return value
    value = records.strip_controls(value.replace("\x00", ""))
    if records.too_long(key, value) or len(value) > TEXT_LIMITS.get(key, len(value)):
        return None
    return value


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


def _short(value: Any) -> Any:
    return shorten(value, 60) if isinstance(value, str) else value


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
