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
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import records, vocab
from evidence.bulk import CitekeyAllocator, insert_studies
from evidence.errors import EvidenceError, ImportFormatError, InvalidValue
from evidence.models import Author, Study, utcnow

# Fields an import may fill on an existing study (never overwrite).
MERGE_FIELDS = tuple(
    f for f in records.STUDY_FIELDS if f not in ("citekey", "title", "level", "population_detail", "notes")
)
# What a record may set (population_detail and notes are handled on their own).
_SCALARS = tuple(f for f in records.STUDY_FIELDS if f not in ("population_detail", "notes"))
STATUSES = ("ok", "corrected", "expression-of-concern", "retracted")  # least to most severe
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
    warnings: list[tuple[int | None, str]] = field(default_factory=list)  # (line, what was skipped)

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

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary_lines(self, *, dry_run: bool = False) -> list[str]:
        """What the import did (or, for a dry run, would do): one count line, then one line per value
        skipped (a warning), then one line per conflict."""
        counts = self.counts
        conflicts = sum(len(o.conflicts) for o in self.outcomes)
        head = f"{'dry run, nothing written: would import' if dry_run else 'imported'} {self.path}: "
        head += (
            f"{self.total} records: {counts['added']} added, {counts['merged']} merged into library studies, "
            f"{counts['unchanged']} already in the library unchanged, "
            f"{counts['duplicate-in-file']} duplicates within the file, {conflicts} conflicts"
        )
        lines = [head]
        if not self.total:
            lines.append(f"  {self.path}: warning: no records found (is it empty, or in another format?)")
        for line, message in self.warnings:
            where = f"{self.path}:{line}" if line is not None else self.path
            lines.append(f"  {where}: warning: {message}")
        for outcome in self.outcomes:
            where = f"{self.path}:{outcome.line}" if outcome.line is not None else self.path
            if dry_run and outcome.action != "added":
                detail = f" (filled {', '.join(outcome.filled)})" if outcome.filled else ""
                lines.append(
                    f"  {where}: {outcome.action} -> {outcome.study} by {outcome.matched_by}{detail}"
                )
            for conflict in outcome.conflicts:
                lines.append(f"  {where}: conflict with {outcome.study}: {conflict}")
        return lines


def _short(value: Any, limit: int = 70) -> str:
    """A value for a conflict line: repr, cut to `limit` characters (an abstract would fill the screen)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


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
        tags, skipped = [], []
        for tag in raw.get("tags") or []:
            try:
                tags.append(records.normalize_tag(tag))
            except InvalidValue:
                # Someone else's keyword that cannot be a tag (longer than 64 characters, or empty): the
                # record still comes in, without it, and the report says so.
                skipped.append(f"skipped tag {_short(tag)} (a tag must be 1-64 characters)")
        clean["tags"] = list(dict.fromkeys(tags))
        clean["claims"] = []
        for claim in raw.get("claims") or []:
            name = records.check_claim(str(claim["claim"]))
            if not claim.get("stance"):
                raise ImportFormatError(
                    path,
                    line,
                    f"claim {name!r} has no stance: expected claim:{name}:STANCE with STANCE one of "
                    f"{', '.join(vocab.STANCES)}",
                )
            if any(c["claim"] == name for c in clean["claims"]):
                continue  # one link per claim (the first stance given wins, as in the library)
            clean["claims"].append(
                {
                    "claim": name,
                    "stance": records.check_stance(str(claim["stance"])),
                    "finding": claim.get("finding"),
                }
            )
        clean["notes"] = raw.get("notes") or None
        status = raw.get("status") or "ok"
        if status not in STATUSES:
            raise ImportFormatError(
                path, line, f"unknown status {status!r}; expected one of {', '.join(STATUSES)}"
            )
        clean["status"] = status
        clean["updates"] = list(raw.get("updates") or [])
    except ImportFormatError:
        raise
    except (EvidenceError, KeyError, TypeError, ValueError) as exc:
        raise ImportFormatError(path, line, str(exc)) from exc
    clean["_line"] = line
    if skipped:
        clean["_warnings"] = skipped
    return clean


class DuplicateIndex:
    """DOI, PMID and (first author, year) → titles, for the library and the records seen so far.

    Two records with different DOIs (or different PMIDs) are different works however alike their titles:
    templated titles ("Effects of IASTM on ...: a randomized controlled trial") by the same first author in
    the same year are common, and merging them would lose a study.
    """

    def __init__(self) -> None:
        self.by_doi: dict[str, str] = {}
        self.by_pmid: dict[str, str] = {}
        # (first author, year) -> parallel lists: normalised titles, and (key, doi, pmid) of each.
        self.titles: dict[tuple[str, int | None], list[str]] = defaultdict(list)
        self.entries: dict[tuple[str, int | None], list[tuple[str, str | None, str | None]]] = defaultdict(
            list
        )

    def add(
        self, key: str, doi: str | None, pmid: str | None, family: str, year: int | None, title: str
    ) -> None:
        if doi:
            self.by_doi[doi] = key
        if pmid:
            self.by_pmid[pmid] = key
        self.titles[(family, year)].append(normalise_title(title))
        self.entries[(family, year)].append((key, doi, pmid))

    def match(self, rec: Mapping[str, Any]) -> tuple[str, str] | None:
        doi, pmid = rec.get("doi"), rec.get("pmid")
        if doi and doi in self.by_doi:
            return self.by_doi[doi], "doi"
        if pmid and pmid in self.by_pmid:
            return self.by_pmid[pmid], "pmid"
        bucket = (_family_key(rec["authors"]), rec.get("year"))
        titles = self.titles.get(bucket)
        if not titles:
            return None
        from rapidfuzz import fuzz, process

        entries = self.entries[bucket]
        for _title, score, position in process.extract(
            normalise_title(rec["title"]), titles, scorer=fuzz.ratio, score_cutoff=TITLE_MATCH, limit=None
        ):
            key, other_doi, other_pmid = entries[position]
            if (doi and other_doi and doi != other_doi) or (pmid and other_pmid and pmid != other_pmid):
                continue
            return key, f"title+author+year ({score:.0f}%)"
        return None


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


def _merge_into_study(
    session: Session, study: Study, rec: Mapping[str, Any], outcome: ImportOutcome, index: DuplicateIndex
) -> None:
    sources = dict(study.field_sources or {})
    outcome.conflicts.extend(
        _identity_conflicts(
            study.title,
            [{"family": a.family, "name": a.name} for a in study.authors],
            rec,
            outcome.matched_by,
            "the library",
        )
    )
    for name in MERGE_FIELDS:
        new = rec.get(name)
        if new in (None, ""):
            continue
        old = getattr(study, name)
        if old in (None, "") and name in ("doi", "pmid"):
            # The record matched this study by another identifier, but its DOI/PMID belongs to a different
            # study: filling it would break uniqueness (and one of the two matches is wrong). Report it.
            owner = (index.by_doi if name == "doi" else index.by_pmid).get(new)
            if owner is not None and owner != f"id:{study.id}":
                outcome.conflicts.append(f"{name}: {new} belongs to another study ({owner}); not filled")
                continue
            (index.by_doi if name == "doi" else index.by_pmid)[new] = f"id:{study.id}"
        if old in (None, ""):
            setattr(study, name, new)
            sources[name] = "import"
            outcome.filled.append(name)
        elif str(old).strip().lower() != str(new).strip().lower():
            outcome.conflicts.append(f"{name}: library has {_short(old)}, file has {_short(new)}")
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
    if STATUSES.index(rec["status"]) > STATUSES.index(study.status or "ok"):
        # A retraction (or a correction) is a fact about the paper, not a curated choice: the more
        # severe status wins, with the file's notices.
        study.status = rec["status"]
        study.updates = rec["updates"] or list(study.updates or [])
        outcome.filled.append("status")
    if outcome.filled:
        study.field_sources = sources
        study.updated_at = utcnow()
    session.flush()


def _identity_conflicts(
    title: str, authors: list[Mapping[str, Any]], rec: Mapping[str, Any], matched_by: str | None, ours: str
) -> list[str]:
    """A DOI or PMID match with a different title or first author: one of the identifiers is probably
    a typo, and the user must see it (the record is still merged by its identifier)."""
    if matched_by not in ("doi", "pmid"):
        return []
    from rapidfuzz import fuzz

    found: list[str] = []
    if fuzz.ratio(normalise_title(title), normalise_title(rec["title"])) < TITLE_MATCH:
        found.append(
            f"title: {ours} has {_short(title)}, this one {_short(rec['title'])} "
            f"(same {matched_by.upper()}: check it)"
        )
    if authors and rec["authors"] and _family_key(list(authors)) != _family_key(rec["authors"]):
        found.append(f"first author differs from {ours}'s (same {matched_by.upper()}: check it)")
    return found


def _merge_pending(
    pending: dict[str, Any], rec: Mapping[str, Any], outcome: ImportOutcome, key: str, index: DuplicateIndex
) -> None:
    outcome.conflicts.extend(
        _identity_conflicts(pending["title"], pending["authors"], rec, outcome.matched_by, "the first record")
    )
    for name in (*MERGE_FIELDS, "notes"):
        if pending.get(name) in (None, "") and rec.get(name) not in (None, ""):
            if name in ("doi", "pmid"):
                owners = index.by_doi if name == "doi" else index.by_pmid
                owner = owners.get(rec[name])
                if owner is not None and owner != key:
                    outcome.conflicts.append(f"{name}: {rec[name]} belongs to another study; not filled")
                    continue
                owners[rec[name]] = key
            pending[name] = rec[name]
            outcome.filled.append(name)
        elif (
            rec.get(name) not in (None, "")
            and str(pending[name]).strip().lower() != str(rec[name]).strip().lower()
        ):
            outcome.conflicts.append(
                f"{name}: first record has {_short(pending[name])}, this one {_short(rec[name])}"
            )
    if not pending["authors"] and rec["authors"]:
        pending["authors"] = rec["authors"]
        outcome.filled.append("authors")
    pending["tags"].extend(t for t in rec["tags"] if t not in pending["tags"])
    linked = {c["claim"]: c for c in pending["claims"]}
    for claim in rec["claims"]:
        if claim["claim"] not in linked:
            pending["claims"].append(claim)
            outcome.filled.append(f"claim {claim['claim']}")
        elif linked[claim["claim"]]["stance"] != claim["stance"]:
            outcome.conflicts.append(
                f"claim {claim['claim']}: first record says {linked[claim['claim']]['stance']}, "
                f"this one {claim['stance']}"
            )
    if STATUSES.index(rec["status"]) > STATUSES.index(pending["status"]):
        pending["status"], pending["updates"] = rec["status"], rec["updates"]
        outcome.filled.append("status")


def import_records(
    session: Session,
    raw_records: Iterable[Mapping[str, Any]],
    *,
    path: str,
    keep_outcomes: bool = True,
    validated: bool = False,
) -> ImportReport:
    """Validate, de-duplicate, merge and insert. Raises ImportFormatError on the first malformed record
    (the caller's transaction then rolls everything back). `validated=True`: the records already went
    through `validate_record` (in a parsing worker process, see `evidence.exchange`)."""
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
        rec = cast(dict[str, Any], raw) if validated else validate_record(raw, path)
        report.warnings.extend((rec["_line"], message) for message in rec.pop("_warnings", ()))
        outcome = ImportOutcome(rec["_line"], rec["title"], "added")
        found = index.match(rec)
        if found is not None:
            key, how = found
            outcome.matched_by = how
            if key in pending:
                outcome.action, outcome.study = "duplicate-in-file", key
                _merge_pending(pending[key], rec, outcome, key, index)
            else:
                # A study this import already inserted (an earlier chunk) is a duplicate within the file.
                in_file = key in index_key_rewrite
                key = index_key_rewrite.get(key, key)
                study = session.get(Study, int(key[3:]))
                assert study is not None
                _merge_into_study(session, study, rec, outcome, index)
                if in_file:
                    outcome.action = "duplicate-in-file"
                else:
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
