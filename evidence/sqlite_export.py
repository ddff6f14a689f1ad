"""Exports from a SQLite library at full speed: study rows read through the DBAPI cursor, and the worker
processes that read and format a large export in parallel.

Kept apart from `evidence.exchange` so that a worker process imports only this module, `sqlite3` and
`evidence.formats`: no SQLAlchemy, no ORM (a worker starts in about 0.1 s).

Why workers (issue 4, 3 s for 100,000 studies): reading 100,000 studies costs about 1.7 s and formatting
them 1.3 to 2.6 s depending on the format, one after the other 3 to 4.5 s. Two workers each read and
format every other run of studies (`RUN` of them) from their own connection and send back only the
finished text, which this process writes in order. Sending the studies themselves to a worker was tried
first: pickling 100,000 study dicts costs the reading process about 0.8 s, and the reading stays serial.

For a large library file the CLI starts the workers first (`early_workers`): each loads what it needs
(pandas for csv, 0.3 s) while the exporting process loads SQLAlchemy, opens the library and selects the
studies, then waits for its share of the selection (measured, csv of 100,000 studies, median of 7
alternating runs: 3.42 s against 3.55 s started late).

The workers are new interpreters, never forks: the exporting process has the library open inside a
transaction, and SQLite forbids carrying a process's database state across a fork (its lock bookkeeping
is per process). They read what the exporting process sees, because that process holds the
write lock for the whole export (every transaction begins IMMEDIATE, see `evidence.db`) and has written
nothing in it (`exchange.export_selection` checks), so the last commit is its snapshot too.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple

from evidence.errors import EvidenceError
from evidence.formats.common import RUN, CitekeyAllocator, Study
from evidence.vocab import MECHANISMS

_MECHANISM_ORDER = {m.name: n for n, m in enumerate(MECHANISMS)}


def read_rows(
    cursor: sqlite3.Cursor, scalar_fields: Sequence[str], study_ids: Sequence[int], *, run: int = RUN
) -> Iterator[Study]:
    """Study dicts for `study_ids`, in order, `run` at a time (`scalar_fields` start with `id`).

    The same rows as `evidence.query.iter_study_rows` (a test compares them on the seed library), three
    times faster: per 100,000 studies about 0.4 s in SQLite and 0.6 s building dicts, so the loops keep
    the Python work per row to a minimum (measured: dict(zip(), lists=...) 0.19 s against 0.24 s for zip
    + update; a JSON or GROUP_CONCAT aggregate per study is slower in SQLite than these ordered look-ups).
    """
    loads = json.loads
    select = ", ".join(scalar_fields)
    # Claim id -> (claim, mechanism): a small vocabulary, joined here rather than per row in SQL.
    claim_names = {
        claim_id: (claim, mechanism)
        for claim_id, claim, mechanism in cursor.execute(
            "SELECT c.id, c.name, m.name FROM claims c JOIN mechanisms m ON m.id = c.mechanism_id"
        ).fetchall()
    }
    for start in range(0, len(study_ids), run):
        chunk = study_ids[start : start + run]
        marks = ",".join("?" * len(chunk))
        by_id: dict[int, Study] = {}
        for values in cursor.execute(f"SELECT {select} FROM studies WHERE id IN ({marks})", chunk):
            row = dict(zip(scalar_fields, values, strict=True), authors=[], mechanisms=[], claims=[], tags=[])
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


EXPORT_WORKERS = 2  # at most; never more than the machine's cores
EARLY_START_BYTES = 8_000_000  # a library file from this size may hold a parallel export's studies
WORKER_NICE = 5  # a worker gives way to the exporting process (and to whatever else the machine runs)


def export_workers() -> int:
    """How many worker processes a large export uses (0: none, the export runs in this process)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(EXPORT_WORKERS, cores)
    return workers if workers >= 2 else 0


class Job(NamedTuple):
    """A worker's share of an export: runs `first`, `first + step`, ... of `run` studies each."""

    path: str  # the library file
    scalar_fields: tuple[str, ...]  # the studies columns to read, `id` first
    study_ids: list[int]  # the whole selection, in export order
    first: int  # this worker's first run
    step: int  # runs from one of its runs to its next (the number of workers)
    run: int = RUN


Producer = Callable[[list[Study], int], Any]  # (a run of studies, its start in the selection) -> payload


def run_worker(out: BinaryIO, produce: Producer, job: Job) -> None:
    """Read and format the job's runs, writing each to `out` as a pickled ("ok", text or segment, count);
    ("error", exception, 0) if anything fails."""
    path, scalar_fields, study_ids, first, step, run = job
    try:
        connection = sqlite3.connect(path, timeout=15.0)
        try:
            connection.execute("PRAGMA query_only=ON")
            cursor = connection.cursor()
            for start in range(first * run, len(study_ids), step * run):
                studies = list(read_rows(cursor, scalar_fields, study_ids[start : start + run], run=run))
                pickle.dump(("ok", produce(studies, start), len(studies)), out, pickle.HIGHEST_PROTOCOL)
                out.flush()
        finally:
            connection.close()
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the exporting process stopped first
    except Exception as exc:  # raised again in the exporting process
        _send_error(out, exc)


def _send_error(out: BinaryIO, exc: Exception) -> None:
    try:
        pickle.dump(("error", portable(exc), 0), out, pickle.HIGHEST_PROTOCOL)
        out.flush()
    except BrokenPipeError:
        pass


@dataclass
class Worker:
    """A running worker process (see `start_worker`): give it its job with `send`, then `receive` runs."""

    process: subprocess.Popen[bytes]
    errors: IO[bytes]  # its standard error, read only if it dies without saying why

    def send(self, job: Job) -> None:
        """Hand it its share of the export (once)."""
        assert self.process.stdin is not None
        try:
            pickle.dump(tuple(job), self.process.stdin, pickle.HIGHEST_PROTOCOL)
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # it has died: receive says why

    def receive(self) -> tuple[Any, int]:
        """The next run it formatted, and how many studies that is; its error raised here."""
        try:
            kind, payload, count = pickle.load(self.process.stdout)  # type: ignore[arg-type]
        except (EOFError, OSError, pickle.UnpicklingError):
            self.process.wait()
            self.errors.seek(0)
            lines = self.errors.read().decode("utf-8", "replace").strip().splitlines()
            why = lines[-1] if lines else f"exit status {self.process.returncode}"
            raise EvidenceError(f"an export worker process stopped unexpectedly: {why}") from None
        if kind == "error":
            raise payload
        return payload, count

    def stop(self) -> None:
        """End it (at once if it is still running) and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        self.errors.close()


def start_worker(fmt: str) -> Worker:
    """Start a worker process for an export in `fmt` (a new interpreter running `main`).

    It loads what formatting needs at once (pandas for csv takes about 0.3 s), then waits for its job
    (`Worker.send`): started early, that time passes while the exporting process opens the library and
    selects the studies. A new interpreter rather than a fork (see the module's docstring), and rather than
    multiprocessing's spawn, which would run the caller's own `__main__` script again in the worker.
    """
    package_root = str(Path(__file__).resolve().parent.parent)  # this very copy of `evidence`
    bootstrap = f"import sys; sys.path.insert(0, {package_root!r}); from {__name__} import main; main()"
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by Worker.stop)
    process = subprocess.Popen(
        [sys.executable, "-P", "-c", bootstrap], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors
    )
    assert process.stdin is not None
    try:
        pickle.dump(fmt, process.stdin)
        process.stdin.flush()
    except BrokenPipeError:
        pass  # it died at once: Worker.receive says why
    return Worker(process, errors)


@contextmanager
def early_workers(fmt: str, db_url: str) -> Iterator[list[Worker]]:
    """Workers for an export in `fmt` from the library at `db_url`, started before the library is opened
    (see `start_worker`) when its file is large enough for the export to use them (`EARLY_START_BYTES`);
    none otherwise. Those still running when the block ends are stopped."""
    path = db_url.removeprefix("sqlite:///") if db_url.startswith("sqlite:///") else None
    try:
        large = path is not None and Path(path).stat().st_size >= EARLY_START_BYTES
    except OSError:
        large = False
    workers = [start_worker(fmt) for _ in range(export_workers())] if large else []
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def main() -> None:
    """The worker process: its format, then its job, come pickled on standard input; its results go to
    standard output."""
    gc.disable()  # plain acyclic dicts, and this process ends with the export (see exchange._gc_paused)
    if hasattr(os, "nice"):
        os.nice(WORKER_NICE)
    out, jobs = sys.stdout.buffer, sys.stdin.buffer
    try:
        produce = _producer(pickle.load(jobs))
    except Exception as exc:
        _send_error(out, exc)
        return
    try:
        job = Job(*pickle.load(jobs))
    except EOFError:
        return  # the exporting process did not need this worker after all
    run_worker(out, produce, job)


def _producer(fmt: str) -> Producer:
    """What a worker makes of a run of studies, given where the run starts in the selection: text in a
    text format's layout (UTF-8), or deflated sheet rows (`xlsx_segment`). Loads the libraries it will
    need."""
    from evidence.formats import TEXT_LAYOUTS
    from evidence.formats.tabular import xlsx_segment

    if fmt == "xlsx":
        import isal.isal_zlib  # noqa: F401 (loaded now, see start_worker)

        return lambda studies, start: xlsx_segment(studies, start + 2)  # sheet row 1 is the header
    if fmt == "csv":
        import pandas  # noqa: F401 (loaded now, see start_worker)
    utf8 = TEXT_LAYOUTS[fmt].utf8
    keys = CitekeyAllocator()  # the exporting process has checked that no two studies' keys can clash
    return lambda studies, _start: utf8(studies, keys)  # what the file holds


def portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling, else its type and message as an EvidenceError."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return EvidenceError(f"{type(exc).__name__}: {exc}")
    return exc
