"""Bringing citation files into the library: validate every record, find duplicates, merge, bulk insert.

A record is a study dict from `evidence.formats` (with ``_line``). Duplicates are found against the
library and within the file by DOI, then PMID, then normalised title + first author + year (rapidfuzz).
A duplicate of a library study is merged field by field: missing fields are filled (and marked as coming
from the import), differing values are reported as conflicts and never overwrite what is there. New
studies go in through `evidence.bulk` in chunks. The caller owns the (single) transaction, so a
malformed record anywhere leaves the library unchanged.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import records, vocab
from evidence.bulk import CitekeyAllocator, insert_studies
from evidence.errors import EvidenceError, ImportFormatError
from evidence.models import Author, Study, utcnow

# Fields an import may fill on an existing study (never overwrite).
MERGE_FIELDS = (
    "doi",
    "pmid",
    "pmcid",
    "journal",
    "issn",
    "publisher",
    "year",
    "volume",
    "issue",
    "pages",
    "article_number",
    "publication_type",
    "abstract",
    "url",
    "language",
    "design",
    "population",
    "condition",
    "body_region",
    "sample_size",
    "pedro",
)
_SCALARS = (
    "citekey",
    "doi",
    "pmid",
    "pmcid",
    "title",
    "journal",
    "issn",
    "publisher",
    "year",
    "volume",
    "issue",
    "pages",
    "article_number",
    "publication_type",
    "abstract",
    "url",
    "language",
    "design",
    "level",
    "population",
    "condition",
    "body_region",
    "sample_size",
    "pedro",
)
TITLE_MATCH = 92.0  # rapidfuzz ratio (0-100) on normalised titles, with the same first author and year
CHUNK = 2000


@dataclass
class ImportOutcome:
    line: int | None
    title: str
    action: str  # added | merged | duplicate-in-file | unchanged
    study: str | None = None  # citekey or "#n" of the study it went into
    matched_by: str | None = None
    filled: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    path: str
    outcomes: list[ImportOutcome] = field(default_factory=list)
    keep_outcomes: bool = True
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def record(self, outcome: ImportOutcome) -> None:
        self.counts[outcome.action] += 1
        # A 100,000-record import keeps only the interesting outcomes in memory.
        if self.keep_outcomes or outcome.action != "added":
            self.outcomes.append(outcome)

    @property
    def added(self) -> int:
        return self.counts["added"]

    @property
    def merged(self) -> int:
        return self.counts["merged"]

    @property
    def conflicts(self) -> list[ImportOutcome]:
        return [o for o in self.outcomes if o.conflicts]


def normalise_title(title: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", records.ascii_fold(title).lower()).split())


def _family_key(authors: list[Mapping[str, Any]]) -> str:
    if not authors:
        return ""
    first = authors[0]
    return re.sub(
        r"[^a-z]", "", records.ascii_fold(str(first.get("family") or first.get("name") or "")).lower()
    )


def validate_record(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A clean study dict, or ImportFormatError naming the file, the line and what was wrong."""
    line = raw.get("_line")
    try:
        fields = {k: raw.get(k) for k in _SCALARS if raw.get(k) not in (None, "")}
        if "citekey" in fields:
            try:
                fields["citekey"] = records.check_citekey(str(fields["citekey"]))
            except EvidenceError:
                fields.pop("citekey")  # a foreign key we cannot use: we make our own
        clean = records.normalize_fields(fields)
        if not clean.get("title"):
            raise ImportFormatError(path, line, "a record without a title")
        if (
            clean.get("level") is not None
            and clean.get("design")
            and clean["level"] == vocab.level_for_design(clean["design"])
        ):
            clean["level"] = None  # the level our export wrote is the one the design implies, not an override
        authors = [records.AuthorName.parse(a) for a in raw.get("authors") or []]
        clean["authors"] = [
            {"name": a.name} if a.name else {"family": a.family, "given": a.given, "orcid": a.orcid}
            for a in authors
        ]
        clean["tags"] = list(dict.fromkeys(records.normalize_tag(t) for t in raw.get("tags") or []))
        clean["claims"] = [
            {
                "claim": records.check_claim(str(c["claim"])),
                "stance": records.check_stance(str(c["stance"])),
                "finding": c.get("finding"),
            }
            for c in raw.get("claims") or []
        ]
        clean["notes"] = raw.get("notes") or None
        status = raw.get("status") or "ok"
        clean["status"] = (
            status if status in ("ok", "retracted", "corrected", "expression-of-concern") else "ok"
        )
        clean["updates"] = list(raw.get("updates") or [])
    except ImportFormatError:
        raise
    except (EvidenceError, KeyError, TypeError, ValueError) as exc:
        raise ImportFormatError(path, line, str(exc)) from exc
    clean["_line"] = line
    return clean


class DuplicateIndex:
    """DOI, PMID and (first author, year) → titles, for the library and the records seen so far."""

    def __init__(self) -> None:
        self.by_doi: dict[str, str] = {}
        self.by_pmid: dict[str, str] = {}
        self.by_author_year: dict[tuple[str, int | None], list[tuple[str, str]]] = defaultdict(list)

    def add(
        self, key: str, doi: str | None, pmid: str | None, family: str, year: int | None, title: str
    ) -> None:
        if doi:
            self.by_doi[doi] = key
        if pmid:
            self.by_pmid[pmid] = key
        self.by_author_year[(family, year)].append((normalise_title(title), key))

    def match(self, rec: Mapping[str, Any]) -> tuple[str, str] | None:
        if rec.get("doi") and rec["doi"] in self.by_doi:
            return self.by_doi[rec["doi"]], "doi"
        if rec.get("pmid") and rec["pmid"] in self.by_pmid:
            return self.by_pmid[rec["pmid"]], "pmid"
        candidates = self.by_author_year.get((_family_key(rec["authors"]), rec.get("year")))
        if not candidates:
            return None
        from rapidfuzz import fuzz, process

        best = process.extractOne(
            normalise_title(rec["title"]),
            [t for t, _ in candidates],
            scorer=fuzz.ratio,
            score_cutoff=TITLE_MATCH,
        )
        if best is None:
            return None
        return candidates[best[2]][1], f"title+author+year ({best[1]:.0f}%)"


def _library_index(session: Session) -> DuplicateIndex:
    index = DuplicateIndex()
    first_authors = {
        study_id: (family or name or "")
        for study_id, family, name in session.execute(
            select(Author.study_id, Author.family, Author.name).where(Author.position == 0)
        )
    }
    for study_id, doi, pmid, year, title in session.execute(
        select(Study.id, Study.doi, Study.pmid, Study.year, Study.title)
    ):
        family = re.sub(r"[^a-z]", "", records.ascii_fold(first_authors.get(study_id, "")).lower())
        index.add(f"id:{study_id}", doi, pmid, family, year, title)
    return index


def _merge_into_study(session: Session, study: Study, rec: Mapping[str, Any], outcome: ImportOutcome) -> None:
    sources = dict(study.field_sources or {})
    for name in MERGE_FIELDS:
        new = rec.get(name)
        if new in (None, ""):
            continue
        old = getattr(study, name)
        if old in (None, ""):
            setattr(study, name, new)
            sources[name] = "import"
            outcome.filled.append(name)
        elif str(old).strip().lower() != str(new).strip().lower():
            outcome.conflicts.append(f"{name}: library has {old!r}, file has {new!r}")
    if study.design and not study.level_overridden:
        study.level = vocab.level_for_design(study.design)
    if not study.authors and rec["authors"]:
        records.edit_study(session, study, {}, authors=rec["authors"], source="import")
        outcome.filled.append("authors")
    existing_tags = {t.tag for t in study.tags}
    for tag in rec["tags"]:
        if tag not in existing_tags:
            records.add_tag(session, study, tag)
            outcome.filled.append(f"tag {tag}")
    linked = {link.claim.name: link for link in study.claim_links}
    for claim in rec["claims"]:
        link = linked.get(claim["claim"])
        if link is None:
            records.link_claim(session, study, claim["claim"], claim["stance"], claim.get("finding"))
            outcome.filled.append(f"claim {claim['claim']}")
        elif link.stance != claim["stance"]:
            outcome.conflicts.append(
                f"claim {claim['claim']}: library says {link.stance}, file says {claim['stance']}"
            )
    if rec["notes"] and rec["notes"] not in (study.notes or ""):
        if study.notes:
            outcome.conflicts.append("notes differ (kept the library's)")
        else:
            study.notes = rec["notes"]
            outcome.filled.append("notes")
    if rec["status"] != "ok" and study.status == "ok":
        study.status, study.updates = rec["status"], rec["updates"]
        outcome.filled.append("status")
    if outcome.filled:
        study.field_sources = sources
        study.updated_at = utcnow()
    session.flush()


def _merge_pending(pending: dict[str, Any], rec: Mapping[str, Any], outcome: ImportOutcome) -> None:
    for name in (*MERGE_FIELDS, "notes"):
        if pending.get(name) in (None, "") and rec.get(name) not in (None, ""):
            pending[name] = rec[name]
            outcome.filled.append(name)
    for key in ("tags", "claims"):
        have = {repr(x) for x in pending[key]}
        pending[key].extend(x for x in rec[key] if repr(x) not in have)


def import_records(
    session: Session, raw_records: Iterable[Mapping[str, Any]], *, path: str, keep_outcomes: bool = True
) -> ImportReport:
    """Validate, de-duplicate, merge and insert. Raises ImportFormatError on the first malformed record
    (the caller's transaction then rolls everything back)."""
    report = ImportReport(path, keep_outcomes=keep_outcomes)
    index = _library_index(session)
    allocator = CitekeyAllocator(session)
    pending: dict[str, dict[str, Any]] = {}
    counter = 0

    def flush() -> None:
        if not pending:
            return
        ids = insert_studies(session, pending.values(), source="import", allocator=allocator)
        for (key, rec), study_id in zip(pending.items(), ids, strict=True):
            rec["_id"] = study_id
            index_key_rewrite[key] = f"id:{study_id}"
        pending.clear()

    index_key_rewrite: dict[str, str] = {}
    for raw in raw_records:
        rec = validate_record(raw, path)
        outcome = ImportOutcome(rec["_line"], rec["title"], "added")
        found = index.match(rec)
        if found is not None:
            key, how = found
            key = index_key_rewrite.get(key, key)
            outcome.matched_by = how
            if key in pending:
                outcome.action, outcome.study = "duplicate-in-file", key
                _merge_pending(pending[key], rec, outcome)
            elif key.startswith("id:"):
                study = session.get(Study, int(key[3:]))
                assert study is not None
                _merge_into_study(session, study, rec, outcome)
                outcome.action = "merged" if outcome.filled else "unchanged"
                outcome.study = study.citekey
            report.record(outcome)
            continue
        counter += 1
        key = f"#{counter}"
        pending[key] = rec
        index.add(
            key, rec.get("doi"), rec.get("pmid"), _family_key(rec["authors"]), rec.get("year"), rec["title"]
        )
        outcome.study = key
        report.record(outcome)
        if len(pending) >= CHUNK:
            flush()
    flush()
    return report
