"""Citation lists in and out of the library: the plain-Python twins of `evidence export`, `cite` and `import`.

* `select_ids` picks studies as `find` does (filters and sort) or by explicit references.
* `export_selection` streams those studies from the database a run at a time into a format writer (a
  large selection from a SQLite file: two worker processes read and format the runs, see
  `evidence.sqlite_export`).
* `cite_selection` renders them as a formatted bibliography (citeproc-py).
* `import_path` / `import_stream` read a citation file and bring it in through `evidence.importer`, in one
  transaction: a malformed record anywhere leaves the library unchanged, and a dry run rolls back.

No click here; the CLI renders what these return. Formats are in `evidence.formats`.
"""

from __future__ import annotations

import gc
import io
import logging
import multiprocessing
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlalchemy.orm import Session

from evidence.db import CHANGES_AT_BEGIN, Database
from evidence.errors import EvidenceError, ExportError, ImportFormatError
from evidence.formats import (
    BINARY_FORMATS,
    EXPORT_FORMATS,
    TEXT_LAYOUTS,
    check_import_format,
    export_studies,
    read_stream,
)
from evidence.formats.common import RUN, CitekeyAllocator, Study, join_runs
from evidence.formats.tabular import write_xlsx_segments
from evidence.formats.xlsx import check_target
from evidence.importer import ImportReport, import_records, validate_record
from evidence.query import ROW_FIELDS, FindFilters, find_ids, iter_study_rows
from evidence.records import resolve_ref
from evidence.sqlite_export import Job, Worker, export_workers, read_rows, start_worker

log = logging.getLogger(__name__)

EXPORT_RUN = RUN  # studies read from the database, formatted and written together while exporting
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
    """Study dicts for `study_ids`, in order, loaded from the database a run at a time.

    The same rows as `evidence.query.iter_study_rows` (equal dicts, the list fields last; a test compares
    them on the seed library); on SQLite they are read through the DBAPI cursor, which takes 1 s instead of
    3 s for 100,000 studies (SQLAlchemy's result rows and the ORM's per-statement work are most of an
    export's time otherwise).
    """
    if session.get_bind().dialect.name != "sqlite":
        return iter_study_rows(session, study_ids, chunk=EXPORT_RUN)
    return _sqlite_rows(session, study_ids)


# The scalar columns of a row (ROW_FIELDS without the lists, which are filled in from other tables).
_SCALAR_FIELDS = tuple(name for name in ROW_FIELDS if name not in ("authors", "mechanisms", "claims", "tags"))


def _sqlite_rows(session: Session, study_ids: Sequence[int]) -> Iterator[Study]:
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield from read_rows(cursor, _SCALAR_FIELDS, study_ids, run=EXPORT_RUN)
    finally:
        cursor.close()


def export_selection(
    session: Session, study_ids: Sequence[int], fmt: str, out: Any, *, workers: Sequence[Worker] = ()
) -> int:
    """Write the studies in format `fmt` to `out`: a binary stream (UTF-8 for the text formats), a text
    stream for a text format, or a path for xlsx.

    A selection of `PARALLEL_EXPORT_MIN` studies or more from a SQLite file is read and formatted by
    worker processes (see `evidence.sqlite_export`); the file is the same byte for byte. `workers` are
    ones the caller started early for this format (`sqlite_export.early_workers`), used if the export
    needs them; else they are left to the caller to stop.
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    with _gc_paused():
        path = _parallel_source(session, study_ids)
        if path is not None:
            return _export_in_workers(path, study_ids, fmt, out, workers)
        studies = iter_selection(session, study_ids)
        try:
            with _as_text(out, fmt) as stream:
                return export_studies(studies, fmt, stream)
        finally:
            if isinstance(studies, Generator):  # a failed export closes its cursor now, not when collected
                studies.close()


@contextmanager
def _as_text(out: Any, fmt: str) -> Iterator[Any]:
    """`out` for a text format's writer: a binary stream wrapped for UTF-8 text (and left open)."""
    if fmt in BINARY_FORMATS or isinstance(out, io.TextIOBase):
        yield out
        return
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        yield text
        text.flush()
    finally:
        text.detach()


PARALLEL_EXPORT_MIN = 4000  # below this, starting the workers (about 0.1 s each) costs more than it saves


def _parallel_source(session: Session, study_ids: Sequence[int]) -> str | None:
    """The library file the workers may read, or None when the export must run in this process: a small
    selection, one core, another database than a SQLite file, or a transaction that has written (the
    workers would not see its changes) or a library whose citekeys could clash once made safe."""
    if not study_ids or len(study_ids) < PARALLEL_EXPORT_MIN or not export_workers():
        return None
    engine = session.get_bind().engine
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:") or not Path(database).is_file():
        return None
    if session.new or session.dirty or session.deleted:
        return None
    connection = session.connection()
    raw = connection.connection.driver_connection
    if raw is None or raw.total_changes != connection.connection.info.get(CHANGES_AT_BEGIN):
        return None
    # Each worker hands out citekeys on its own: the library's keys must be usable as they are (unique by
    # the schema; none that `CitekeyAllocator` would have to change).
    keys = [key for (key,) in raw.execute("SELECT citekey FROM studies")]
    return database if CitekeyAllocator.keeps_all(keys) else None


def _export_in_workers(
    path: str, study_ids: Sequence[int], fmt: str, out: Any, started: Sequence[Worker]
) -> int:
    if fmt == "xlsx":
        check_target(out)  # before any worker starts
    count = export_workers()
    own: list[Worker] = []
    try:
        if len(started) != count:
            own = [start_worker(fmt) for _ in range(count)]
        workers = own or list(started)
        for first, worker in enumerate(workers):
            worker.send(Job(path, _SCALAR_FIELDS, list(study_ids), first, count, EXPORT_RUN))
        runs = -(-len(study_ids) // EXPORT_RUN)
        # Run n comes from worker n % count; a worker is at most a pipe's buffer ahead (its write waits).
        payloads = (workers[n % count].receive() for n in range(runs))
        if fmt == "xlsx":
            segments, studies = [], 0
            for segment, in_run in payloads:
                segments.append(segment)
                studies += in_run
            return write_xlsx_segments(segments, studies, out)
        if isinstance(out, io.TextIOBase):
            return join_runs(((data.decode(), in_run) for data, in_run in payloads), TEXT_LAYOUTS[fmt], out)
        return join_runs(payloads, TEXT_LAYOUTS[fmt], out, encoded=True)  # the workers' bytes as they are
    finally:
        for worker in own:
            worker.stop()


def cite_selection(
    session: Session,
    study_ids: Sequence[int],
    *,
    style: str = "american-medical-association",
    fmt: str = "text",
    by_claim: bool = False,
    filters: FindFilters | None = None,
) -> str:
    """A formatted bibliography of the studies (all registered together, so numbering is right).

    `filters` are the ones the selection was made with: grouped `by_claim`, only the groups of the
    claims, mechanisms and stances they name are printed (`--claim X --by-claim` is about claim X).
    """
    from evidence.formats.cite import render_bibliography, render_by_claim

    studies = list(iter_selection(session, study_ids))
    if not by_claim:
        return render_bibliography(studies, style, fmt)
    f = filters.validated() if filters is not None else FindFilters()
    return render_by_claim(studies, style, fmt, claims=f.claims, mechanisms=f.mechanisms, stances=f.stances)


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
    keep_outcomes: bool = False,
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
        return _import(
            database, records, str(path), dry_run=dry_run, validated=True, keep_outcomes=keep_outcomes
        )
    with path.open("rb") as binary, _text(binary, fmt) as text:
        stream = _reporting(read_stream(text, str(path), fmt), binary.tell, size, progress)
        return _import(database, stream, str(path), dry_run=dry_run, keep_outcomes=keep_outcomes)


def import_stream(
    database: Database,
    stream: TextIO,
    *,
    name: str = "<stdin>",
    fmt: str = "auto",
    dry_run: bool = False,
    keep_outcomes: bool = False,
) -> ImportReport:
    """Import from an open text stream (stdin); `name` stands for it in messages. `keep_outcomes`: the
    report keeps every record's outcome (else only those merged, duplicated or in conflict)."""
    return _import(
        database, read_stream(stream, name, fmt), name, dry_run=dry_run, keep_outcomes=keep_outcomes
    )


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
    database: Database,
    records: Iterable[Study],
    name: str,
    *,
    dry_run: bool,
    validated: bool = False,
    keep_outcomes: bool = False,
) -> ImportReport:
    with _gc_paused(), _transaction(database, commit=not dry_run) as session:
        return import_records(session, records, path=name, keep_outcomes=keep_outcomes, validated=validated)


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
