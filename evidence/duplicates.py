"""Duplicates already in the library: listing the pairs that are or may be one work, and merging two
studies on request (the plain-Python twins of `evidence duplicates` and `evidence merge`).

The rules are `evidence.matching`'s, the same the importer applies. A merge keeps the first study and
carries the second one's fields, authors, tags, claim links and notes over, in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from evidence import records
from evidence.errors import InvalidValue
from evidence.import_report import ImportOutcome
from evidence.importer import library_records, merge_record
from evidence.matching import DuplicateIndex, MatchStats, find_possible_duplicates
from evidence.schema import STUDY_FIELDS
from evidence.store.models import Study


@dataclass(frozen=True)
class DuplicatePair:
    """Two library studies that are (``likely``) or may be (``possible``) one work."""

    kind: str
    study: str
    other: str
    why: str
    study_title: str
    other_title: str

    def as_row(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "study": self.study,
            "other": self.other,
            "why": self.why,
            "study_title": self.study_title,
            "other_title": self.other_title,
        }


def library_duplicates(session: Session) -> tuple[list[DuplicatePair], MatchStats]:
    """Every pair of library studies the importer would have merged (``likely``) or listed
    (``possible``), oldest study first in each pair; and the work it took."""
    rows: list[tuple[str, dict[str, Any]]] = []
    names: dict[str, tuple[str, str]] = {}
    for study_id, citekey, rec in library_records(session):
        key = f"{study_id:012d}"  # sorts as the ids do
        names[key] = (citekey, rec["title"])
        rows.append((key, rec))
    pairs, stats = find_possible_duplicates(rows)
    found = []
    # Each pair comes as (earlier, later): the records are read in id order.
    for first, second, verdict in sorted(pairs, key=lambda p: (p[0], p[1])):
        found.append(
            DuplicatePair(
                "likely" if verdict.kind == "same" else "possible",
                names[first][0],
                names[second][0],
                verdict.why,
                names[first][1],
                names[second][1],
            )
        )
    return found, stats


@dataclass
class MergeResult:
    kept: str
    removed: str
    filled: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def merge_studies(session: Session, keep_ref: str, other_ref: str) -> MergeResult:
    """Merge study `other_ref` into `keep_ref` and remove it: fields `keep_ref` lacks are filled from it,
    its authors come over if `keep_ref` has none, its tags and claim links are added, its notes appended;
    where both have a value and they differ, `keep_ref`'s stays and the difference is reported."""
    keep = records.resolve_ref(session, keep_ref)
    other = records.resolve_ref(session, other_ref)
    if keep.id == other.id:
        raise InvalidValue(f"{keep_ref} and {other_ref} are the same study ({keep.citekey})")
    rec = _as_record(other)
    result = MergeResult(keep.citekey, other.citekey)
    if rec["notes"] and keep.notes and rec["notes"] not in keep.notes:
        records.add_note(session, keep, rec["notes"])
        result.filled.append("notes")
        rec["notes"] = None
    # The other study goes first, so that its DOI and PMID are free to be filled in.
    records.remove_study(session, other)
    outcome = ImportOutcome(None, rec["title"], "merged", matched_by="merge")
    merge_record(session, keep, rec, outcome, DuplicateIndex(), source="manual")
    result.filled.extend(outcome.filled)
    result.conflicts.extend(outcome.conflicts)
    return result


def _as_record(study: Study) -> dict[str, Any]:
    """A study as the importer's validated record (the shape `merge_record` takes)."""
    rec: dict[str, Any] = {name: getattr(study, name) for name in STUDY_FIELDS}
    rec["authors"] = [
        {"name": a.name} if a.name else {"family": a.family, "given": a.given, "orcid": a.orcid}
        for a in study.authors
    ]
    rec["tags"] = [t.tag for t in study.tags]
    rec["claims"] = [
        {"claim": link.claim.name, "stance": link.stance, "finding": link.finding}
        for link in study.claim_links
    ]
    rec["status"] = study.status or "ok"
    rec["updates"] = list(study.updates or [])
    return rec
