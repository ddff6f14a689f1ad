"""Citation lists in and out of the library: the plain-Python twins of `evidence export`, `cite` and `import`.

* `select_ids` picks studies as `find` does (filters and sort) or by explicit references.
* `export_selection` streams those studies from the database in chunks into a format writer.
* `cite_selection` renders them as a formatted bibliography (citeproc-py).
* `import_path` / `import_stream` read a citation file and bring it in through `evidence.importer`, in one
  transaction: a malformed record anywhere leaves the library unchanged, and a dry run rolls back.

No click here; the CLI renders what these return. Formats are in `evidence.formats`.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlalchemy.orm import Session

from evidence.db import Database
from evidence.errors import EvidenceError, ExportError, ImportFormatError
from evidence.formats import BINARY_FORMATS, EXPORT_FORMATS, check_import_format, export_studies, read_stream
from evidence.formats.common import Study
from evidence.importer import ImportReport, import_records, validate_record
from evidence.query import ROW_FIELDS, FindFilters, find_ids, iter_study_rows
from evidence.records import resolve_ref
from evidence.vocab import MECHANISMS

log = logging.getLogger(__name__)

EXPORT_CHUNK = 2000  # studies loaded per round trip to the database while exporting
PROGRESS_EVERY = 500  # records between two progress reports while importing

Progress = Callable[[int, int], None]  # (bytes read so far, file size)


def select_ids(
    session: Session,
    filters: FindFilters | None = None,
    refs: Sequence[str] = (),
    *,
    sort: str | None = None,
) -> list[int]:
    """Ids of the studies to export or cite: the given references in their order (each once), or else the
    studies matching `filters` in `find`'s order. References and filters together narrow the references."""
    if not refs:
        return find_ids(session, filters or FindFilters(), sort=sort)
    chosen = list(dict.fromkeys(resolve_ref(session, ref).id for ref in refs))
    if filters is not None and filters != FindFilters():
        matching = set(find_ids(session, filters))
        chosen = [i for i in chosen if i in matching]
    if sort is not None:
        order = {
            study_id: n for n, study_id in enumerate(find_ids(session, FindFilters(ids=chosen), sort=sort))
        }
        chosen.sort(key=order.__getitem__)
    return chosen


def iter_selection(session: Session, study_ids: Sequence[int]) -> Iterator[Study]:
    """Study dicts for `study_ids`, in order, loaded from the database a chunk at a time.

    The same rows as `evidence.query.iter_study_rows` (a test compares them on the seed library); on
    SQLite they are read through the DBAPI cursor, which takes 1 s instead of 3 s for 100,000 studies
    (SQLAlchemy's result rows and the ORM's per-statement work are most of an export's time otherwise).
    """
    if session.get_bind().dialect.name != "sqlite":
        return iter_study_rows(session, study_ids, chunk=EXPORT_CHUNK)
    return _sqlite_rows(session, study_ids)


# The studies columns in ROW_FIELDS order, NULL where a list (authors...) is filled in afterwards.
_COLUMNS_SQL = ", ".join(
    "NULL" if name in ("authors", "mechanisms", "claims", "tags") else name for name in ROW_FIELDS
)
_MECHANISM_ORDER = {m.name: n for n, m in enumerate(MECHANISMS)}


def _sqlite_rows(session: Session, study_ids: Sequence[int]) -> Iterator[Study]:
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, len(study_ids), EXPORT_CHUNK):
            chunk = study_ids[start : start + EXPORT_CHUNK]
            marks = ",".join("?" * len(chunk))
            by_id: dict[int, Study] = {}
            for values in cursor.execute(f"SELECT {_COLUMNS_SQL} FROM studies WHERE id IN ({marks})", chunk):
                row = dict(zip(ROW_FIELDS, values, strict=True))
                row.update(authors=[], mechanisms=[], claims=[], tags=[])
                updates = row["updates"]
                row["updates"] = json.loads(updates) if updates and updates != "[]" else []
                by_id[row["id"]] = row
            for study_id, family, given, orcid, name in cursor.execute(
                "SELECT study_id, family, given, orcid, name FROM authors "
                f"WHERE study_id IN ({marks}) ORDER BY study_id, position",
                chunk,
            ):
                by_id[study_id]["authors"].append(
                    {"name": name} if name else {"family": family, "given": given, "orcid": orcid}
                )
            for study_id, claim, mechanism, stance, finding in cursor.execute(
                "SELECT sc.study_id, c.name, m.name, sc.stance, sc.finding FROM study_claims sc "
                "JOIN claims c ON c.id = sc.claim_id JOIN mechanisms m ON m.id = c.mechanism_id "
                f"WHERE sc.study_id IN ({marks}) ORDER BY sc.study_id, c.id",
                chunk,
            ):
                row = by_id[study_id]
                row["claims"].append(
                    {"claim": claim, "mechanism": mechanism, "stance": stance, "finding": finding}
                )
                if mechanism not in row["mechanisms"]:
                    row["mechanisms"].append(mechanism)
            for study_id, tag in cursor.execute(
                f"SELECT study_id, tag FROM study_tags WHERE study_id IN ({marks}) ORDER BY study_id, tag",
                chunk,
            ):
                by_id[study_id]["tags"].append(tag)
            for study_id in chunk:
                found = by_id.get(study_id)
                if found is None:
                    continue
                if len(found["mechanisms"]) > 1:
                    found["mechanisms"].sort(key=_MECHANISM_ORDER.__getitem__)
                yield found
    finally:
        cursor.close()


def export_selection(session: Session, study_ids: Sequence[int], fmt: str, out: Any) -> int:
    """Write the studies in format `fmt` to `out` (a text stream; a binary stream or path for xlsx)."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    with _gc_paused():
        return export_studies(iter_selection(session, study_ids), fmt, out)


def needs_file(fmt: str) -> bool:
    """True for formats that cannot go to stdout (xlsx)."""
    return fmt in BINARY_FORMATS


def cite_selection(
    session: Session,
    study_ids: Sequence[int],
    *,
    style: str = "american-medical-association",
    fmt: str = "text",
    by_claim: bool = False,
) -> str:
    """A formatted bibliography of the studies (all registered together, so numbering is right)."""
    from evidence.formats.cite import render_bibliography, render_by_claim

    studies = list(iter_selection(session, study_ids))
    render = render_by_claim if by_claim else render_bibliography
    return render(studies, style, fmt)


def list_styles() -> list[str]:
    """Every installed citation style name, plus the aliases (`vancouver`, `ama`)."""
    from evidence.formats.cite import list_styles as installed

    return installed()


# --- import --------------------------------------------------------------------------------------------


def import_path(
    database: Database,
    path: str | Path,
    *,
    fmt: str = "auto",
    dry_run: bool = False,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import a citation file in one transaction (rolled back for a dry run or on any error).

    A file of more than `PARALLEL_MIN_BYTES` is parsed and validated in a worker process while this one
    finds duplicates and inserts (see `_records_from_worker`).
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(str(path), None, "no such file")
    check_import_format(str(path), fmt)
    size = path.stat().st_size
    progress = on_progress or (lambda _done, _size: None)
    if size >= PARALLEL_MIN_BYTES and "fork" in multiprocessing.get_all_start_methods():
        records = _records_from_worker(path, fmt, progress)
        return _import(database, records, str(path), dry_run=dry_run, validated=True)
    with path.open("rb") as binary, _text(binary, fmt) as text:
        stream = _reporting(read_stream(text, str(path), fmt), binary.tell, size, progress)
        return _import(database, stream, str(path), dry_run=dry_run)


def import_stream(
    database: Database, stream: TextIO, *, name: str = "<stdin>", fmt: str = "auto", dry_run: bool = False
) -> ImportReport:
    """Import from an open text stream (stdin); `name` stands for it in messages."""
    return _import(database, read_stream(stream, name, fmt), name, dry_run=dry_run)


def _text(binary: BinaryIO, fmt: str) -> TextIO:
    # newline="" keeps CSV cells with line breaks intact; the other readers strip line ends themselves.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="" if fmt == "csv" else None)


def _reporting(
    records: Iterable[Study], position: Callable[[], int], size: int, on_progress: Progress
) -> Iterator[Study]:
    for count, record in enumerate(records, 1):
        if count % PROGRESS_EVERY == 0:
            on_progress(position(), size)
        yield record
    on_progress(size, size)


def _import(
    database: Database, records: Iterable[Study], name: str, *, dry_run: bool, validated: bool = False
) -> ImportReport:
    with _gc_paused(), _transaction(database, commit=not dry_run) as session:
        # A large import keeps only the records that were merged, duplicated or in conflict.
        return import_records(session, records, path=name, keep_outcomes=False, validated=validated)


# Parsing (tokenizing, LaTeX decoding) and validating take about half of a large import, finding
# duplicates and inserting the other half; on two cores a worker process doing the first half while this
# one does the second brings 100,000 BibTeX entries from 25 s to about 15 s (tests/bench/bench_formats.py).
# The worker is forked (it inherits the imported modules, and never touches the database) and sends
# validated records in batches through a pipe, which also holds it back when it runs ahead.
PARALLEL_MIN_BYTES = 2_000_000
WORKER_BATCH = 500


def _records_from_worker(path: Path, fmt: str, on_progress: Progress) -> Iterator[Study]:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_parse_and_validate, args=(sender, str(path), fmt), daemon=True)
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


def _parse_and_validate(sender: Connection, path: str, fmt: str) -> None:
    """The worker: stream, validate and send batches; an error is sent as data (exceptions may not pickle)."""
    gc.disable()  # see _gc_paused; this process ends with the file
    try:
        with Path(path).open("rb") as binary, _text(binary, fmt) as text:
            batch: list[Study] = []
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


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during an import or export: the records are plain acyclic dicts, and
    the collector scanning them over and over costs about 10% of a 100,000-study import or export."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _transaction(database: Database, *, commit: bool) -> Iterator[Session]:
    """One transaction: committed (or, for a dry run, rolled back) at the end; rolled back on any error."""
    with database.sessions() as session, session.begin() as transaction:
        yield session
        if not commit:
            transaction.rollback()
