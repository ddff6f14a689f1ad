"""Bringing citation files into the library: validate every record, find duplicates, merge, bulk insert.

A record is a study dict from `evidence.formats` (with ``_line``). Duplicates are found against the
library and within the file by `evidence.matching`: DOI, then PMID, then canonical title + compatible
first author + year; a record that only may be a duplicate (a typo in the title, a year apart) is
imported as new and listed in the report as a possible duplicate, for the clinician to decide. A
duplicate of a library study is merged field by field: missing fields are filled (and marked as coming
from the import), differing values are reported as conflicts and never overwrite what is there. New
studies go in through `evidence.store.bulk` in chunks. The caller owns the (single) transaction, so a
malformed record anywhere leaves the library unchanged.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import records, vocab
from evidence.errors import EvidenceError, ImportFormatError, InvalidValue, quoted
from evidence.formats import check_import_format, read_stream
from evidence.import_report import ImportOutcome, ImportReport, PossibleDuplicate
from evidence.matching import DuplicateIndex, Identity, compare
from evidence.schema import CONTROL_CHARACTERS, STUDY_FIELDS
from evidence.store.bulk import insert_studies, library_allocator
from evidence.store.models import Author, Study, utcnow

# Fields an import may fill on an existing study (never overwrite).
MERGE_FIELDS = tuple(
    f for f in STUDY_FIELDS if f not in ("citekey", "title", "level", "population_detail", "notes")
)
# What a record may set (population_detail and notes are handled on their own).
_SCALARS = tuple(f for f in STUDY_FIELDS if f not in ("population_detail", "notes"))
STATUSES = ("ok", "corrected", "expression-of-concern", "retracted")  # least to most severe
# Records kept pending before they are inserted together: a duplicate of a pending record merges into its
# dict, one of a record already inserted goes through the ORM (several queries). Larger batches hold more
# memory and, with the parsing process beside this one, did not make a large import faster.
CHUNK = 2000


def _short(value: Any, limit: int = 70) -> str:
    """A value for a conflict line: repr, cut to `limit` characters (an abstract would fill the screen)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def validate_record(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A clean study dict, or ImportFormatError naming the file, the line and what was wrong."""
    line = raw.get("_line")
    skipped: list[str] = list(raw.get("_warnings") or ())  # what the reader chose and said
    try:
        stripped: list[str] = []
        raw = {key: _strip_controls(key, value, stripped) for key, value in raw.items()}
        skipped.extend(
            f"stripped control characters from {key} (a terminal would obey them)"
            for key in dict.fromkeys(stripped)
        )
        for key, value in raw.items():
            _check_texts(key, value)
        fields = {k: raw.get(k) for k in _SCALARS if raw.get(k) not in (None, "")}
        if "citekey" in fields:
            try:
                fields["citekey"] = records.check_citekey(str(fields["citekey"]))
            except EvidenceError:
                fields.pop("citekey")  # a foreign key we cannot use: we make our own

        def skip(key: str, value: Any, limit: int) -> None:
            # A value longer than its column (a volume that is a sentence) is left out, as an unusable
            # keyword is: the record still comes in, and the report says what was skipped.
            skipped.append(f"skipped {key} {_short(value)} (longer than {limit} characters)")

        clean = records.normalize_fields(fields, skip_too_long=skip)
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
        tags = []
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
                    f"claim {quoted(name)} has no stance: expected claim:{name}:STANCE with STANCE one of "
                    f"{', '.join(vocab.STANCES)}",
                )
            if any(c["claim"] == name for c in clean["claims"]):
                continue  # one link per claim (the first stance given wins, as in the library)
            clean["claims"].append(
                {
                    "claim": name,
                    "stance": records.check_stance(str(claim["stance"])),
                    "finding": records.check_length("a finding", claim.get("finding")),
                }
            )
        clean["notes"] = records.check_length("notes", raw.get("notes") or None)
        status = raw.get("status") or "ok"
        if status not in STATUSES:
            raise ImportFormatError(
                path, line, f"unknown status {quoted(status)}; expected one of {', '.join(STATUSES)}"
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


def _strip_controls(field: str, value: Any, stripped: list[str]) -> Any:
    """``value`` (a string, or lists and dicts of them) without control characters other than tab and
    line ends; the name of each field that had some is appended to ``stripped``."""
    if isinstance(value, str):
        if CONTROL_CHARACTERS.search(value) is None:
            return value
        stripped.append(field)
        return records.strip_controls(value)
    if isinstance(value, Mapping):
        return {key: _strip_controls(field, item, stripped) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strip_controls(field, item, stripped) for item in value]
    return value


def _check_texts(field: str, value: Any) -> None:
    """InvalidValue if a string anywhere in ``value`` (a field, its list items, their values) holds a
    NUL character (`records.check_text`), before any of it reaches the database."""
    if isinstance(value, str):
        records.check_text(field, value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _check_texts(field, item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_texts(field, item)


def library_records(session: Session) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(id, citekey, what identifies it) for every library study, by id: DOI, PMID, year, title and the
    first author, the fields `evidence.matching.Identity` reads."""
    first_authors = {
        study_id: {"family": family, "given": given, "name": name}
        for study_id, family, given, name in session.execute(
            select(Author.study_id, Author.family, Author.given, Author.name).where(Author.position == 0)
        )
    }
    for study_id, citekey, doi, pmid, year, title in session.execute(
        select(Study.id, Study.citekey, Study.doi, Study.pmid, Study.year, Study.title).order_by(Study.id)
    ):
        first = first_authors.get(study_id)
        yield (
            study_id,
            citekey,
            {"doi": doi, "pmid": pmid, "year": year, "title": title, "authors": [first] if first else []},
        )


def _library_index(session: Session) -> DuplicateIndex:
    index = DuplicateIndex()
    for study_id, _citekey, rec in library_records(session):
        index.add(Identity.of(f"id:{study_id}", rec))
    return index


def merge_record(
    session: Session,
    study: Study,
    rec: Mapping[str, Any],
    outcome: ImportOutcome,
    index: DuplicateIndex,
    *,
    source: str = "import",
) -> None:
    """Fill what `study` lacks from the validated record `rec`; what both have and differ in is a
    conflict in `outcome`, and the study's value stays. `source` marks the filled fields."""
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
            sources[name] = source
            outcome.filled.append(name)
        elif str(old).strip().lower() != str(new).strip().lower():
            outcome.conflicts.append(f"{name}: library has {_short(old)}, file has {_short(new)}")
    if study.design and not study.level_overridden:
        study.level = vocab.level_for_design(study.design)
    if not study.authors and rec["authors"]:
        records.edit_study(session, study, {}, authors=rec["authors"], source=source)
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
    found: list[str] = []
    # Compared without identifiers and years: only what the title and the first author say.
    theirs = Identity.of("", {"title": title, "authors": list(authors)[:1]})
    this = Identity.of("", {"title": rec["title"], "authors": rec["authors"][:1]})
    verdict = compare(theirs, this)
    if verdict.kind == "distinct" and verdict.why.startswith("titles"):
        found.append(
            f"title: {ours} has {_short(title)}, this one {_short(rec['title'])} "
            f"(same {matched_by.upper()}: check it)"
        )
    if authors and rec["authors"] and theirs.family != this.family:
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
    through `validate_record` (in the parsing process of `read_records`)."""
    report = ImportReport(path, keep_outcomes=keep_outcomes)
    index = _library_index(session)
    report.work = index.stats
    allocator = library_allocator(session)
    pending: dict[str, dict[str, Any]] = {}
    lines: dict[str, int | None] = {}  # key of each record added -> its line in the file
    wanted: dict[str, str] = {}  # key of each record added with a citekey of its own -> that citekey
    possible: list[tuple[str, str, str]] = []  # (key of the record added, key it may duplicate, why)
    index_key_rewrite: dict[str, str] = {}  # "#n" -> "id:N" once inserted
    inserted: set[str] = set()  # the "id:N" of the studies this import inserted

    def flush() -> None:
        if not pending:
            return
        ids = insert_studies(session, pending.values(), source="import", allocator=allocator)
        for (key, rec), study_id in zip(pending.items(), ids, strict=True):
            rec["_id"] = study_id
            index_key_rewrite[key] = f"id:{study_id}"
            inserted.add(f"id:{study_id}")
        pending.clear()

    for raw in raw_records:
        rec = cast(dict[str, Any], raw) if validated else validate_record(raw, path)
        report.warnings.extend((rec["_line"], message) for message in rec.pop("_warnings", ()))
        outcome = ImportOutcome(rec["_line"], rec["title"], "added")
        key = f"#{len(lines) + 1}"
        identity = Identity.of(key, rec)
        found, how, maybe = index.match(identity)
        if found is not None:
            outcome.matched_by = how
            if found in pending:
                outcome.action, outcome.study = "duplicate-in-file", found
                _merge_pending(pending[found], rec, outcome, found, index)
            else:
                # A study this import already inserted (an earlier chunk) is a duplicate within the file.
                # Found by its "#n" key, or by an identifier a merge gave the inserted study ("id:N").
                in_file = found in index_key_rewrite or found in inserted
                study = session.get(Study, int(index_key_rewrite.get(found, found)[3:]))
                assert study is not None
                merge_record(session, study, rec, outcome, index)
                if in_file:
                    outcome.action = "duplicate-in-file"
                else:
                    outcome.action = "merged" if outcome.filled else "unchanged"
                outcome.study = study.citekey
            report.record(outcome)
            continue
        possible.extend((key, m.other, m.why) for m in maybe)
        pending[key] = rec
        lines[key] = rec["_line"]
        if rec.get("citekey"):
            wanted[key] = rec["citekey"]
        index.add(identity)
        outcome.study = key
        report.record(outcome)
        if len(pending) >= CHUNK:
            flush()
    flush()
    # Typos in a title are not in the hash look-ups: a sorted-neighbourhood pass finds them, for the report.
    possible.extend((p.key, p.other, p.why) for p in index.neighbours(wanted=lines))
    citekeys = _citekeys(
        session,
        [index_key_rewrite.get(k, k) for k, _, _ in possible]
        + [index_key_rewrite.get(k, k) for _, k, _ in possible]
        + [index_key_rewrite.get(str(o.study), "") for o in report.outcomes],
    )
    for outcome in report.outcomes:
        if outcome.study in index_key_rewrite:
            outcome.study = citekeys[index_key_rewrite[outcome.study]]
    # A record's own citekey that a library study or an earlier record had taken: said, not silent.
    stored = _citekeys(session, [index_key_rewrite[k] for k in wanted])
    for key, citekey in wanted.items():
        got = stored[index_key_rewrite[key]]
        if got != citekey:
            report.warnings.append((lines[key], f"citekey {citekey!r} is taken already; stored as {got!r}"))
    report.warnings.sort(key=lambda warning: warning[0] or 0)
    seen: set[tuple[str, str]] = set()
    for key, other, why in possible:
        if key not in lines:  # the pair as found by the neighbourhood pass: make the new record come first
            key, other = other, key
        if other in lines and (lines[other] or 0) > (lines[key] or 0):
            key, other = other, key  # both from the file: the later line may duplicate the earlier one
        if (key, other) in seen:
            continue
        seen.add((key, other))
        report.possible_duplicates.append(
            PossibleDuplicate(
                lines.get(key),
                citekeys[index_key_rewrite.get(key, key)],
                citekeys[index_key_rewrite.get(other, other)],
                lines.get(other),
                why,
            )
        )
    report.possible_duplicates.sort(key=lambda p: (p.line is None, p.line or 0))
    return report


def _citekeys(session: Session, keys: Iterable[str]) -> dict[str, str]:
    """ "id:N" -> the citekey of study N, for every such key given."""
    wanted = sorted({int(k[3:]) for k in keys if k.startswith("id:")})
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        batch = wanted[start : start + 500]
        for study_id, citekey in session.execute(select(Study.id, Study.citekey).where(Study.id.in_(batch))):
            found[f"id:{study_id}"] = citekey
    return found


# --- reading a file ---------------------------------------------------------------------------------------

Progress = Callable[[int, int], None]  # (bytes read so far, file size)
PROGRESS_EVERY = 500  # records between two progress reports


def read_records(
    path: str | Path, fmt: str = "auto", on_progress: Progress | None = None
) -> tuple[Iterator[dict[str, Any]], bool]:
    """The records of a citation file, and whether they are validated already: a file of
    `PARALLEL_MIN_BYTES` or more is read and validated in a forked process while this one matches and
    inserts (see `_records_from_worker`)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(str(path), None, "no such file")
    check_import_format(str(path), fmt)
    size = path.stat().st_size
    progress = on_progress or (lambda _done, _size: None)
    if size >= PARALLEL_MIN_BYTES and "fork" in multiprocessing.get_all_start_methods():
        return _records_from_worker(path, fmt, progress), True
    return _records_here(path, fmt, size, progress), False


def _records_here(path: Path, fmt: str, size: int, on_progress: Progress) -> Iterator[dict[str, Any]]:
    with path.open("rb") as binary, _text(binary, fmt) as text:
        for count, record in enumerate(read_stream(text, str(path), fmt), 1):
            if count % PROGRESS_EVERY == 0:
                on_progress(binary.tell(), size)
            yield record
    on_progress(size, size)


def _text(binary: BinaryIO, fmt: str) -> TextIO:
    # newline="" keeps CSV cells with line breaks intact; the other readers strip line ends themselves.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="" if fmt == "csv" else None)


# Parsing (tokenizing, LaTeX decoding) and validating take about half of a large import, finding
# duplicates and inserting the other half: on two cores a worker process doing the first half while this
# one does the second overlaps them (tests/bench/bench_formats.py measures both).
# The worker is forked (it inherits the imported modules, and never touches the database) and sends
# validated records in batches through a pipe, which also holds it back when it runs ahead.
PARALLEL_MIN_BYTES = 2_000_000
WORKER_BATCH = 500


def _records_from_worker(path: Path, fmt: str, on_progress: Progress) -> Iterator[dict[str, Any]]:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_parse_and_validate, args=(sender, receiver, str(path), fmt), daemon=True)
    worker.start()
    sender.close()
    size = path.stat().st_size
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                raise EvidenceError(f"{path}: the parsing process stopped unexpectedly") from None
            kind = message[0]
            if kind == "records":
                yield from message[1]
                on_progress(message[2], size)
            elif kind == "done":
                return
            elif kind == "format-error":
                raise ImportFormatError(message[1], message[2], message[3])
            else:
                raise EvidenceError(message[1])
    finally:
        receiver.close()
        if worker.is_alive():
            worker.terminate()
        worker.join()


def _parse_and_validate(sender: Connection, receiver: Connection, path: str, fmt: str) -> None:
    """The worker: stream, validate and send batches; an error is sent as data (exceptions may not pickle).

    The forked worker's copy of the pipe's reading end is closed first: while it stayed open, a worker
    whose importing process was killed (kill -9, SIGTERM) blocked for ever on a full pipe instead of
    failing on it, holding the library file open."""
    receiver.close()
    gc.disable()  # the records are acyclic dicts (see exchange._gc_paused); this process ends with the file
    try:
        with Path(path).open("rb") as binary, _text(binary, fmt) as text:
            batch: list[dict[str, Any]] = []
            for raw in read_stream(text, path, fmt):
                batch.append(validate_record(raw, path))
                if len(batch) >= WORKER_BATCH:
                    sender.send(("records", batch, binary.tell()))
                    batch = []
            sender.send(("records", batch, Path(path).stat().st_size))
        sender.send(("done",))
    except ImportFormatError as exc:
        where = f"{exc.path}:{exc.line}" if exc.line is not None else exc.path
        sender.send(("format-error", exc.path, exc.line, str(exc).removeprefix(f"{where}: ")))
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the importing process stopped first
    except Exception as exc:  # anything else still reaches the user as one line, never a silent stop
        sender.send(("error", f"{path}: {type(exc).__name__}: {exc}"))
    finally:
        sender.close()
