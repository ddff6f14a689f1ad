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
import pickle
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
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

EXPORT_CHUNK = 500  # studies loaded per round trip to the database while exporting
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

    The same rows as `evidence.query.iter_study_rows` (equal dicts, the list fields last; a test compares
    them on the seed library); on SQLite they are read through the DBAPI cursor, which takes 1 s instead of
    3 s for 100,000 studies (SQLAlchemy's result rows and the ORM's per-statement work are most of an
    export's time otherwise).
    """
    if session.get_bind().dialect.name != "sqlite":
        return iter_study_rows(session, study_ids, chunk=EXPORT_CHUNK)
    return _sqlite_rows(session, study_ids)


# The scalar columns of a row (ROW_FIELDS without the lists, which are filled in from other tables).
_SCALAR_FIELDS = tuple(name for name in ROW_FIELDS if name not in ("authors", "mechanisms", "claims", "tags"))
_SCALAR_SQL = ", ".join(_SCALAR_FIELDS)
_MECHANISM_ORDER = {m.name: n for n, m in enumerate(MECHANISMS)}


def _sqlite_rows(session: Session, study_ids: Sequence[int]) -> Iterator[Study]:
    # Per 100,000 studies: about 0.4 s in SQLite, 0.6 s building dicts, so the loops below keep the Python
    # work per row to a minimum (measured: dict(zip(), lists=...) 0.19 s against 0.24 s for zip + update;
    # a JSON or GROUP_CONCAT aggregate per study is slower in SQLite than these ordered look-ups).
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    loads = json.loads
    try:
        # Claim id -> (claim, mechanism): a small vocabulary, joined here rather than per row in SQL.
        claim_names = {
            claim_id: (claim, mechanism)
            for claim_id, claim, mechanism in cursor.execute(
                "SELECT c.id, c.name, m.name FROM claims c JOIN mechanisms m ON m.id = c.mechanism_id"
            )
        }
        for start in range(0, len(study_ids), EXPORT_CHUNK):
            chunk = study_ids[start : start + EXPORT_CHUNK]
            marks = ",".join("?" * len(chunk))
            by_id: dict[int, Study] = {}
            for values in cursor.execute(f"SELECT {_SCALAR_SQL} FROM studies WHERE id IN ({marks})", chunk):
                row = dict(
                    zip(_SCALAR_FIELDS, values, strict=True), authors=[], mechanisms=[], claims=[], tags=[]
                )
                updates = row["updates"]
                row["updates"] = loads(updates) if updates and updates != "[]" else []
                by_id[values[0]] = row
            # Each look-up comes ordered by study: the study's list is found once per study, not once per
            # author, claim or tag.
            last, items = None, []
            for study_id, family, given, orcid, name in cursor.execute(
                "SELECT study_id, family, given, orcid, name FROM authors "
                f"WHERE study_id IN ({marks}) ORDER BY study_id, position",
                chunk,
            ):
                if study_id != last:
                    last, items = study_id, by_id[study_id]["authors"]
                items.append({"name": name} if name else {"family": family, "given": given, "orcid": orcid})
            last, claims, mechanisms = None, [], []
            for study_id, claim_id, stance, finding in cursor.execute(
                "SELECT study_id, claim_id, stance, finding FROM study_claims "
                f"WHERE study_id IN ({marks}) ORDER BY study_id, claim_id",
                chunk,
            ):
                if study_id != last:
                    last = study_id
                    claims, mechanisms = by_id[study_id]["claims"], by_id[study_id]["mechanisms"]
                claim, mechanism = claim_names[claim_id]
                claims.append({"claim": claim, "mechanism": mechanism, "stance": stance, "finding": finding})
                if mechanism not in mechanisms:
                    mechanisms.append(mechanism)
            last, items = None, []
            for study_id, tag in cursor.execute(
                f"SELECT study_id, tag FROM study_tags WHERE study_id IN ({marks}) ORDER BY study_id, tag",
                chunk,
            ):
                if study_id != last:
                    last, items = study_id, by_id[study_id]["tags"]
                items.append(tag)
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
    """Write the studies in format `fmt` to `out` (a text stream; a binary stream or path for xlsx).

    A selection of `PARALLEL_EXPORT_MIN` studies or more in a text format is formatted in a worker
    process while this one reads the database (see `_export_in_worker`).
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    studies = iter_selection(session, study_ids)
    try:
        with _gc_paused():
            if (
                len(study_ids) >= PARALLEL_EXPORT_MIN
                and fmt in PARALLEL_EXPORT_FORMATS
                and "fork" in multiprocessing.get_all_start_methods()
            ):
                return _export_in_worker(studies, fmt, out)
            return export_studies(studies, fmt, out)
    finally:
        if isinstance(studies, Generator):  # a failed export closes its cursor now, not when collected
            studies.close()


# Reading 100,000 studies from SQLite takes 1.3 s and formatting them 1 to 1.8 s: one after the other
# they missed the 3 s export budget (issue 4). A forked worker formats chunk N while this process reads
# chunk N+1, and sends the text back to be written here, so `out` can be any stream. The worker never
# touches the database (the SQLite connection is not used across the fork). xlsx and csv stay in this
# process: their time is spent inside openpyxl and pandas.
#
# The turns on the pipe: this process sends chunk N+1, then receives the text of chunk N; the worker
# receives chunk N+1 as soon as it has formatted chunk N, then sends the text of chunk N. So each side
# sends only while the other is about to receive (no deadlock however large the messages), and the
# pickling and writing here happen while the worker formats.
PARALLEL_EXPORT_MIN = 2000
# Where it pays: sending the studies over and the text back costs this process about 0.8 s per 100,000
# studies, more than RIS and CSV take to format (0.9-1.1 s); BibTeX and CSL-JSON take 1.5-1.8 s.
PARALLEL_EXPORT_FORMATS = frozenset({"bibtex", "biblatex", "csljson"})


def _export_in_worker(studies: Iterable[Study], fmt: str, out: Any) -> int:
    for stream in (sys.stdout, sys.stderr, out):  # a forked child must not inherit unwritten output
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()
    context = multiprocessing.get_context("fork")
    connection, worker_end = context.Pipe()
    worker = context.Process(target=_format_for_export, args=(worker_end, fmt), daemon=True)
    worker.start()
    worker_end.close()
    try:
        sent = False
        batch: list[Study] = []
        for study in studies:
            batch.append(study)
            if len(batch) == EXPORT_CHUNK:
                _send(connection, batch)
                if sent:
                    _receive(connection, out)  # the text of the chunk before
                sent, batch = True, []
        if batch:
            _send(connection, batch)
            if sent:
                _receive(connection, out)
            sent = True
        _send(connection, None)
        if sent:
            _receive(connection, out)
        return _receive(connection, out)
    finally:
        connection.close()
        if worker.is_alive():
            worker.terminate()
        worker.join()


def _send(connection: Connection, batch: list[Study] | None) -> None:
    try:
        connection.send(batch)
    except OSError:  # the worker stopped: its last message says why
        _receive(connection, None)
        raise EvidenceError("the export's formatting process stopped unexpectedly") from None


def _receive(connection: Connection, out: Any) -> int:
    """Write the text the worker sent; the count of studies once it is done."""
    try:
        kind, payload, count = connection.recv()
    except (EOFError, OSError):
        raise EvidenceError("the export's formatting process stopped unexpectedly") from None
    if kind == "error":
        raise payload
    if payload and out is not None:
        out.write(payload)
    return int(count)


def _format_for_export(connection: Connection, fmt: str) -> None:
    """The worker: run the exporter on the chunks received, sending back the text after each chunk."""
    gc.disable()  # see _gc_paused; this process ends with the export
    parts: list[str] = []

    class Collected:
        write = parts.append

    def take() -> str:
        text = "".join(parts)
        parts.clear()
        return text

    def studies() -> Iterator[Study]:
        batch = connection.recv()
        while batch is not None:
            yield from batch
            batch = connection.recv()  # first the next chunk, then the text (see PARALLEL_EXPORT_MIN)
            connection.send(("text", take(), 0))

    try:
        count = export_studies(studies(), fmt, Collected())
        connection.send(("done", take(), count))
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        pass  # the exporting process stopped first
    except Exception as exc:  # raised again in the exporting process
        connection.send(("error", _portable(exc), 0))
    finally:
        connection.close()


def _portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling, else its type and message as an EvidenceError."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return EvidenceError(f"{type(exc).__name__}: {exc}")
    return exc


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
