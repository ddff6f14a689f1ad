"""Benchmark: the same library on SQLite and on PostgreSQL, side by side: import, find and export of
100,000 synthetic studies, and a profile of where a PostgreSQL import spends its time.

    .venv/bin/python tests/bench/bench_postgres.py                 # 100,000 studies (10+ minutes)
    .venv/bin/python tests/bench/bench_postgres.py --n 5000        # a quick look
    EVIDENCE_BENCH_PG_URL=postgresql://user:pw@host/postgres .venv/bin/python tests/bench/bench_postgres.py

The server is ``EVIDENCE_BENCH_PG_URL`` (a superuser URL) when set, else a throw-away cluster that
`tests/pgserver.py` starts in a temporary folder and stops at the end; every library on it is a database
of its own, created for the run and dropped after. The BibTeX file is `bench_formats`'s
(``bench-out/formats-N.bib``, reused while its generator is unchanged).

Every step is a fresh ``evidence --db URL ...`` process measured with `bench_formats.measure` (wall time,
the process's own peak memory). Each round runs a step on both backends one after the other, the order
alternating between rounds, so a noisy moment on a shared machine touches both; the ratio column is the
median of the per-round ratios PostgreSQL / SQLite, with their range.

1. import the file into an empty library (``db init --empty`` first, not timed), ``--import-runs`` rounds;
2. ``find --mechanism neural-stimulation --limit 50`` and ``find --text "range of motion" --limit 50``:
   ``--warmup`` rounds, then the median of ``--runs``;
3. ``export --to ris -o FILE`` of the whole library, ``--export-runs`` rounds.

Then ``--profile-n`` entries are imported once more on each backend inside a profiling process (this
file with ``--profile-child``): SQLAlchemy's cursor events count the DBAPI calls and the statements the
database runs per kind and time them, psycopg's ``Connection.wait`` is timed (the client waiting on the
server), the server's backend CPU is read from /proc when the server is on this machine; a second run
under cProfile splits the process's own time by package.

Prints a markdown table and writes it to ``bench-out/postgres.md``. Never a pass/fail test: the verdict
column compares PostgreSQL's medians with the targets.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import multiprocessing.connection
import os
import platform
import pstats
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # imported, not run: find the siblings
    sys.path.insert(0, str(Path(__file__).resolve().parent))

# Sibling modules (this file runs as a script); bench_formats puts the repository on the path too.
from bench_formats import EVIDENCE, REPO, generate, measure
from bench_query import TEXT_ARGS

IMPORT_TARGET_S = 30.0
FIND_TARGET_S = 0.5
EXPORT_TARGET_S = 8.0
MECHANISM_ARGS = ("find", "--mechanism", "neural-stimulation", "--limit", "50")
TEXT_LABEL = '`find --text "range of motion" --limit 50`'
# Outputs that may differ between the backends, and why.
DIFFERENCE_EXPECTED = {
    TEXT_LABEL: "expected: each backend has its own full-text search, SQLite FTS5 ranked by bm25 and "
    "PostgreSQL's as evidence/query.py does it, so the matches and their order may differ",
}
PROFILE_CHILD = "--profile-child"
SQLITE, POSTGRES = "SQLite", "PostgreSQL"
LOOPBACK = {"127.0.0.1", "::1", "localhost", None, ""}


# --- the server and the libraries ---------------------------------------------------------------------


def libpq_url(url: str, database: str | None = None, *, password: bool = True) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg takes it (no ``+driver``), optionally for another database
    or without its password (the processes get it as PGPASSWORD, so that no command line shows it)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql", database=database or make_url(url).database)
    return (parsed if password else parsed.set(password=None)).render_as_string(hide_password=False)


def pg_execute(admin_url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements in autocommit (CREATE / DROP DATABASE need it); the last one's rows."""
    import psycopg

    rows: list[tuple[Any, ...]] = []
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        for statement in statements:
            cursor = conn.execute(statement)  # type: ignore[arg-type]
            rows = cursor.fetchall() if cursor.description else []
    return rows


@contextmanager
def postgres_server(folder: Path) -> Iterator[tuple[str, str]]:
    """(superuser URL, what it is): ``EVIDENCE_BENCH_PG_URL``, or a throw-away cluster in ``folder``."""
    given = os.environ.get("EVIDENCE_BENCH_PG_URL")
    if given:
        yield given, "the server of EVIDENCE_BENCH_PG_URL"
        return
    from tests import pgserver

    if pgserver.bin_dir() is None:
        raise SystemExit("no PostgreSQL server: set EVIDENCE_BENCH_PG_URL or install postgresql (initdb)")
    url = pgserver.start(folder)
    try:
        yield url, "a throw-away cluster on this machine (tests/pgserver.py)"
    finally:
        pgserver.stop(folder)


@dataclass
class Backend:
    """Where the libraries of one backend go: SQLite files in ``work``, or databases on a server."""

    name: str
    work: Path
    admin_url: str | None = None  # PostgreSQL: a superuser URL
    current: str = ""  # the --db of the library made last
    made: int = 0

    def fresh_library(self, env: dict[str, str]) -> str:
        """A new empty library (``evidence db init --empty``), in place of the previous one; its --db."""
        self.drop()
        self.made += 1
        if self.admin_url is None:
            self.current = str(self.work / f"library-{self.made}.db")
        else:
            name = f"evidence_bench_{os.getpid()}_{self.made}"
            pg_execute(self.admin_url, f"CREATE DATABASE {name}")
            self.current = libpq_url(self.admin_url, name, password=False)
        subprocess.run(
            [EVIDENCE, "--db", self.current, "db", "init", "--empty"],
            env=env,
            check=True,
            capture_output=True,
        )
        return self.current

    def drop(self) -> None:
        if not self.current:
            return
        if self.admin_url is None:
            for suffix in ("", "-wal", "-shm"):
                Path(self.current + suffix).unlink(missing_ok=True)
        else:
            name = self.current.rsplit("/", 1)[1]
            pg_execute(self.admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.current = ""

    def counts(self) -> tuple[int, ...]:
        """Rows in the library's studies, authors, claim links and tags."""
        sql = (
            "SELECT (SELECT count(*) FROM studies), (SELECT count(*) FROM authors), "
            "(SELECT count(*) FROM study_claims), (SELECT count(*) FROM study_tags)"
        )
        if self.admin_url is None:
            with sqlite3.connect(self.current) as conn:
                return tuple(conn.execute(sql).fetchone())
        return tuple(pg_execute(libpq_url(self.admin_url, self.current.rsplit("/", 1)[1]), sql)[0])


# --- side-by-side timings -----------------------------------------------------------------------------


@dataclass
class Step:
    label: str
    target_s: float
    seconds: dict[str, list[float]] = field(default_factory=lambda: {SQLITE: [], POSTGRES: []})
    peaks: dict[str, list[float]] = field(default_factory=lambda: {SQLITE: [], POSTGRES: []})

    def add(self, backend: str, wall: float, peak: float) -> None:
        self.seconds[backend].append(wall)
        self.peaks[backend].append(peak)

    def row(self) -> str:
        def spread(samples: list[float], unit: str = "") -> str:
            median = statistics.median(samples)
            if len(samples) == 1:
                return f"{median:.2f}{unit}"
            return f"{median:.2f}{unit} ({min(samples):.2f}-{max(samples):.2f})"

        sqlite, postgres = self.seconds[SQLITE], self.seconds[POSTGRES]
        ratios = [pg / sq for pg, sq in zip(postgres, sqlite, strict=True)]  # each round's own ratio
        verdict = "ok" if statistics.median(postgres) <= self.target_s else "**MISS**"
        peaks = f"{max(self.peaks[SQLITE]):.0f} / {max(self.peaks[POSTGRES]):.0f}"
        return (
            f"| {self.label} | {spread(sqlite)} | {spread(postgres)} | {spread(ratios, 'x')} | {peaks} | "
            f"<= {self.target_s:g} s | {verdict} |"
        )


def in_turn(backends: Sequence[Backend], round_: int) -> list[Backend]:
    """The backends in the order of this round: alternating, so that neither always goes first."""
    return list(backends) if round_ % 2 == 0 else list(reversed(backends))


def time_imports(
    backends: Sequence[Backend], bib: Path, runs: int, env: dict[str, str], n: int
) -> tuple[Step, list[str]]:
    size = bib.stat().st_size / 1e6
    step = Step(f"import {n:,}-entry BibTeX ({size:.0f} MB) into an empty library", IMPORT_TARGET_S)
    for round_ in range(runs):
        for backend in in_turn(backends, round_):
            db = backend.fresh_library(env)
            step.add(backend.name, *measure([EVIDENCE, "--db", db, "import", str(bib)], env=env))
    counts = {backend.name: backend.counts() for backend in backends}
    studies, authors, links, tags = counts[SQLITE]
    same = "the same counts" if counts[SQLITE] == counts[POSTGRES] else f"**different**: {counts}"
    note = (
        f"after import both libraries hold {same}: {studies:,} studies, {authors:,} authors, "
        f"{links:,} claim links, {tags:,} tags"
    )
    return step, [note]


def time_commands(
    backends: Sequence[Backend],
    cases: Sequence[tuple[str, Sequence[str], float]],
    runs: int,
    warmup: int,
    env: dict[str, str],
    work: Path,
    floor: Sequence[str] = (),
) -> tuple[list[Step], list[str]]:
    """Each case (label, arguments after ``--db URL``, target) as a fresh process on every backend; and
    the ``floor`` command (no database) once a round."""
    steps = [Step(label, target) for label, _args, target in cases]
    outputs: dict[tuple[str, str], tuple[str, int]] = {}  # (step, backend) -> (sha256, bytes)
    floors = []
    for round_ in range(warmup + runs):
        if floor:
            wall, _peak = measure([EVIDENCE, *floor], env=env)
            if round_ >= warmup:
                floors.append(wall)
        for step, (_label, args, _target) in zip(steps, cases, strict=True):
            for backend in in_turn(backends, round_):
                written = Path(args[args.index("-o") + 1]) if "-o" in args else work / "stdout.txt"
                command = [EVIDENCE, "--db", backend.current, *args]
                wall, peak = measure(command, env=env, stdout=None if "-o" in args else written)
                if written.stat().st_size == 0:
                    raise RuntimeError(f"{' '.join(args)} on {backend.name} wrote nothing")
                if round_ >= warmup:
                    step.add(backend.name, wall, peak)
                if round_ == 0:
                    with written.open("rb") as content:
                        digest = hashlib.file_digest(content, "sha256").hexdigest()
                    outputs[step.label, backend.name] = (digest, written.stat().st_size)
    notes = []
    for step in steps:
        (sqlite, size), (postgres, _) = outputs[step.label, SQLITE], outputs[step.label, POSTGRES]
        same = f"identical ({size / 1e6:.2f} MB)"
        if sqlite != postgres:
            same = f"not identical ({DIFFERENCE_EXPECTED.get(step.label, '**unexpected**')})"
        notes.append(f"{step.label}: the output on the two backends is {same}")
    if floors:
        notes.append(
            f"`evidence {' '.join(floor)}` (start-up, no database), in the same rounds: "
            f"{statistics.median(floors):.2f} s ({min(floors):.2f}-{max(floors):.2f})"
        )
    return steps, notes


# --- the import profile -------------------------------------------------------------------------------


def statement_kind(sql: str) -> str:
    """``INSERT INTO authors``, ``SELECT FROM studies``, ...: what a statement does to which table."""
    words = sql.split()
    head = words[0].upper() if words else "?"
    if head in ("INSERT", "DELETE") and len(words) > 2:
        return f"{head} {words[1].upper()} {words[2]}"
    if head == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    if head == "SELECT":
        table = re.search(r"\bFROM\s+([\w.\"]+)", sql, re.IGNORECASE)
        return f"SELECT FROM {table.group(1) if table else '?'}"
    return head


def backend_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process on this machine (a PostgreSQL backend), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tally_calls(cls: Any, name: str) -> dict[str, float]:
    """Count the calls of method ``cls.name`` and the seconds they take (a tally that fills as they run)."""
    tally = {"calls": 0, "seconds": 0.0}
    method = getattr(cls, name)

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        tally["calls"] += 1
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            tally["seconds"] += time.perf_counter() - start

    setattr(cls, name, timed)
    return tally


def profile_child(argv: list[str]) -> None:
    """Run ``cli`` in this process with the counters on (and cProfile unless PROF is ``-``); write JSON.

    argv: OUT PROF EVIDENCE-ARGUMENTS...
    """
    out, prof, *command = argv
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    kinds: dict[str, dict[str, float]] = {}
    started_at: dict[int, float] = {}
    backends: dict[int, float | None] = {}  # PostgreSQL backend pid -> its CPU seconds when it closed
    local = True
    tallies: dict[str, dict[str, float]] = {}

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        started_at[id(cursor)] = time.perf_counter()

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        seconds = time.perf_counter() - started_at.pop(id(cursor))
        kind = kinds.setdefault(
            statement_kind(statement), {"calls": 0, "statements": 0, "rows": 0, "seconds": 0.0}
        )
        kind["calls"] += 1
        # An executemany runs the statement once per parameter set; an insertmanyvalues batch (one
        # multi-row INSERT, its parameters one dict) is one statement.
        kind["statements"] += len(params) if many and isinstance(params, list | tuple) else 1
        kind["rows"] += max(cursor.rowcount, 0)
        kind["seconds"] += seconds

    @event.listens_for(Pool, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        pid = getattr(getattr(dbapi_connection, "info", None), "backend_pid", None)
        if pid is not None:
            backends[pid] = None

    @event.listens_for(Pool, "close")
    def _close(dbapi_connection: Any, record: Any) -> None:  # called before the connection closes
        pid = getattr(getattr(dbapi_connection, "info", None), "backend_pid", None)
        if pid is not None:
            backends[pid] = backend_cpu_s(pid)

    db = command[command.index("--db") + 1]
    if "://" in db:
        from sqlalchemy.engine import make_url

        local = make_url(db).host in LOOPBACK
    tallies["parser"] = tally_calls(multiprocessing.connection.Connection, "recv")  # the parser's pipe
    try:
        import psycopg

        # One wait per round trip (or pipeline sync); its time also holds psycopg's own work on the query.
        tallies["waits"] = tally_calls(psycopg.Connection, "wait")
    except ImportError:
        tallies["waits"] = {"calls": 0, "seconds": 0.0}

    from cli import cli

    profiler = cProfile.Profile() if prof != "-" else None
    start = time.perf_counter()
    if profiler:
        os.register_at_fork(after_in_child=profiler.disable)  # the forked parser runs at full speed
        profiler.enable()
    try:
        cli.main(command, prog_name="evidence", standalone_mode=False)
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(prof)
    wall = time.perf_counter() - start
    for pid, cpu in backends.items():
        backends[pid] = cpu if cpu is not None else backend_cpu_s(pid)
    cpu_values = [cpu for cpu in backends.values() if cpu is not None]
    server_cpu = sum(cpu_values) if backends and local and len(cpu_values) == len(backends) else None
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "wall": wall,
        "kinds": kinds,
        **tallies,
        "server_cpu": server_cpu,
        "cpu": own.ru_utime + own.ru_stime,  # including start-up, before `start`
        "parser_cpu": children.ru_utime + children.ru_stime,  # the forked parser, joined at the end
    }
    Path(out).write_text(json.dumps(result), encoding="utf-8")


def run_profile(backend: Backend, bib: Path, env: dict[str, str], work: Path, cprofile: bool) -> Any:
    db = backend.fresh_library(env)
    out, prof = work / f"profile-{backend.name}.json", work / f"profile-{backend.name}.prof"
    child = [sys.executable, str(Path(__file__).resolve()), PROFILE_CHILD, str(out)]
    measure([*child, str(prof) if cprofile else "-", "--db", db, "import", str(bib)], env=env)
    result = json.loads(out.read_text(encoding="utf-8"))
    return pstats.Stats(str(prof)) if cprofile else result


def package_of(filename: str, function: str) -> str:
    """Which part of the stack a cProfile entry belongs to."""
    if "/psycopg/" in filename:
        if function == "wait" and filename.endswith("connection.py"):
            return "psycopg: waiting on the server (`Connection.wait`)"
        return "psycopg: Python (query conversion, adaptation, pipeline)"
    if "/sqlalchemy/" in filename:
        return "SQLAlchemy"
    if filename == "~" and "sqlite3" in function:
        return "sqlite3 (C: execute, executemany, commit)"
    if filename == "~" and "posix.read" in function:
        return "waiting for the forked parser (pipe reads)"
    if filename.startswith(str(REPO)) and "/.venv/" not in filename:
        return "evidence and cli.py"
    return "other (stdlib: json, re, datetime; builtins)"


def profile_by_package(stats: Any) -> dict[str, float]:
    totals: dict[str, float] = {}
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        name = package_of(filename, function)
        totals[name] = totals.get(name, 0.0) + tottime
    return totals


def top_functions(stats: Any, count: int) -> list[tuple[str, int, float, float]]:
    """The ``count`` functions with the most own time: (name, calls, own s, cumulative s)."""
    entries = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:count]
    rows = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in entries:
        where = filename.split("site-packages/")[-1].removeprefix(str(REPO) + "/")
        rows.append(
            (f"`{where}:{line}({function})`" if filename != "~" else f"`{function}`", calls, tottime, cumtime)
        )
    return rows


def insertmanyvalues_settings() -> str:
    """How SQLAlchemy's psycopg dialect batches an INSERT of many rows."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    dialect = PGDialect_psycopg()
    return (
        f"SQLAlchemy's psycopg dialect: insertmanyvalues_page_size={dialect.insertmanyvalues_page_size}, "
        f"insertmanyvalues_max_parameters={dialect.insertmanyvalues_max_parameters} (an INSERT ... "
        "RETURNING of many rows becomes multi-row INSERTs of at most that many parameters each); "
        f"use_insertmanyvalues_wo_returning={dialect.use_insertmanyvalues_wo_returning} (an INSERT without "
        "RETURNING goes to psycopg's executemany, which pipelines one Bind/Execute per row)"
    )


def profile_section(
    backends: Sequence[Backend], bib: Path, n: int, env: dict[str, str], work: Path
) -> list[str]:
    counters = {b.name: run_profile(b, bib, env, work, cprofile=False) for b in backends}
    profiles = {b.name: run_profile(b, bib, env, work, cprofile=True) for b in backends}
    sq, pg = counters[SQLITE], counters[POSTGRES]

    def dbapi(result: Any) -> float:
        return float(sum(kind["seconds"] for kind in result["kinds"].values()))

    def total(result: Any, key: str) -> int:
        return int(sum(kind[key] for kind in result["kinds"].values()))

    server = "n/a (not on this machine)" if pg["server_cpu"] is None else f"{pg['server_cpu']:.2f}"
    server_share = "n/a" if pg["server_cpu"] is None else f"{dbapi(pg) - pg['server_cpu']:.2f}"

    def rest(result: Any) -> float:
        return float(result["wall"] - dbapi(result) - result["parser"]["seconds"])

    lines = [
        f"### Where an import's time goes: {n:,} entries, in-process (`{PROFILE_CHILD}`)",
        "",
        "Counters run (no profiler): SQLAlchemy's `before/after_cursor_execute` time every DBAPI call, the "
        "reads of the forked parser's pipe are timed (files of 2 MB or more are parsed in a process "
        "beside this one), the CPU of this process and of the parser come from getrusage, the PostgreSQL "
        "backend's from /proc. On a 2-core machine the three compete for the cores. On PostgreSQL the "
        "rows go in through psycopg's COPY (evidence/store/bulk.py), on the driver's cursor: those "
        "streams are not SQLAlchemy cursor executions, so they show in psycopg's waits and the backend's "
        "CPU, not in the statement table.",
        "",
        f"| | {SQLITE} | {POSTGRES} |",
        "|---|---:|---:|",
        f"| wall s (in-process import) | {sq['wall']:.2f} | {pg['wall']:.2f} |",
        f"| CPU s: this process / the parser / the PostgreSQL backend | {sq['cpu']:.2f} / "
        f"{sq['parser_cpu']:.2f} / - | {pg['cpu']:.2f} / {pg['parser_cpu']:.2f} / {server} |",
        f"| waiting for the parser (pipe reads), s | {sq['parser']['seconds']:.2f} | "
        f"{pg['parser']['seconds']:.2f} |",
        f"| in DBAPI execute/executemany, s | {dbapi(sq):.2f} | {dbapi(pg):.2f} |",
        f"| DBAPI time less the backend's CPU (psycopg's client side, network, waiting for a core), s | - | "
        f"{server_share} |",
        f"| the rest: Python in this process (matching, merging, SQLAlchemy), s | {rest(sq):.2f} | "
        f"{rest(pg):.2f} |",
        f"| DBAPI calls | {total(sq, 'calls'):,} | {total(pg, 'calls'):,} |",
        f"| statements the database ran | {total(sq, 'statements'):,} | {total(pg, 'statements'):,} |",
        f"| psycopg waits (round trips or pipeline syncs) | - | {pg['waits']['calls']:,} |",
        "",
        f"| statement | {SQLITE} calls | {SQLITE} s | {POSTGRES} calls | {POSTGRES} statements | "
        f"{POSTGRES} rows | {POSTGRES} s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = sorted(
        set(sq["kinds"]) | set(pg["kinds"]),
        key=lambda k: (
            -max(pg["kinds"].get(k, {}).get("seconds", 0), sq["kinds"].get(k, {}).get("seconds", 0))
        ),
    )
    empty = {"calls": 0, "statements": 0, "rows": 0, "seconds": 0.0}
    for name in names[:8]:
        s, p = sq["kinds"].get(name, empty), pg["kinds"].get(name, empty)
        lines.append(
            f"| `{name}` | {s['calls']:,} | {s['seconds']:.2f} | {p['calls']:,} | {p['statements']:,} | "
            f"{p['rows']:,} | {p['seconds']:.2f} |"
        )
    shares = {name: profile_by_package(stats) for name, stats in profiles.items()}
    packages = sorted(set(shares[SQLITE]) | set(shares[POSTGRES]), key=lambda k: -shares[POSTGRES].get(k, 0))
    lines += [
        "",
        "cProfile run (own time by package; the profiler slows Python code, not waiting):",
        "",
        f"| package | {SQLITE} s | {POSTGRES} s |",
        "|---|---:|---:|",
        *(
            f"| {name} | {shares[SQLITE].get(name, 0.0):.2f} | {shares[POSTGRES].get(name, 0.0):.2f} |"
            for name in packages
        ),
        f"| total | {profiles[SQLITE].total_tt:.2f} | {profiles[POSTGRES].total_tt:.2f} |",
        "",
        f"{POSTGRES}: the functions with the most own time",
        "",
        "| function | calls | own s | cumulative s |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {calls:,} | {own:.2f} | {cumulative:.2f} |"
            for name, calls, own, cumulative in top_functions(profiles[POSTGRES], 10)
        ),
        "",
        f"- {insertmanyvalues_settings()}",
    ]
    return lines


# --- the run ------------------------------------------------------------------------------------------


def machine_note(admin_url: str, what: str) -> list[str]:
    import psycopg
    import sqlalchemy

    from evidence.config import masked_url

    names = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers")
    values = pg_execute(admin_url, f"SELECT {', '.join(f'current_setting({n!r})' for n in names)}")[0]
    settings = dict(zip(names, values, strict=True))
    relaxed = [
        name for name in ("fsync", "synchronous_commit", "full_page_writes") if settings[name] == "off"
    ]
    durability = (
        f"it runs with {', '.join(f'{name}=off' for name in relaxed)}: commits and WAL writes cost less "
        "than on a durable server, which flatters PostgreSQL's writes slightly"
        if relaxed
        else "it runs with fsync, synchronous_commit and full_page_writes on"
    )
    load = os.getloadavg()
    revision = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        f"- code: `{revision or 'unknown'}` (git describe --dirty: what the `evidence` processes ran)",
        f"- PostgreSQL {settings['server_version']} at `{masked_url(admin_url)}`, {what}, shared_buffers "
        f"{settings['shared_buffers']}; {durability}. "
        f"SQLite {sqlite3.sqlite_version} runs with the library's normal settings (WAL, synchronous=NORMAL).",
        f"- Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, psycopg "
        f"{psycopg.__version__} ({psycopg.pq.__impl__}), {platform.machine()}, {os.cpu_count()} cores "
        f"(a local server shares them with the client), load average {load[0]:.2f} at the end, "
        f"{time.strftime('%Y-%m-%d %H:%M')}.",
    ]


def run(args: argparse.Namespace) -> str:
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    bib = out / f"formats-{args.n}.bib"
    for path, n in ((bib, args.n), (out / f"formats-{args.profile_n}.bib", args.profile_n)):
        if n and (seconds := generate(path, "bibtex", n)):
            print(f"generated {path.name} in {seconds:.1f} s", file=sys.stderr)
    # Beside the repository, not in /tmp: the SQLite files and the cluster's data on the same disk.
    with tempfile.TemporaryDirectory(prefix="bench-postgres-", dir=out) as tmp:
        work = Path(tmp)
        env = {**os.environ, "EVIDENCE_HOME": str(work / "home")}
        env.pop("EVIDENCE_DB", None)
        with postgres_server(work / "pg") as (admin_url, what):
            from sqlalchemy.engine import make_url

            if make_url(admin_url).password:
                env["PGPASSWORD"] = str(make_url(admin_url).password)
            backends = [Backend(SQLITE, work), Backend(POSTGRES, work, admin_url)]
            try:
                print(f"importing {args.n:,} entries, {args.import_runs} rounds", file=sys.stderr)
                import_step, notes = time_imports(backends, bib, args.import_runs, env, args.n)
                print(f"find: {args.warmup} warm-up + {args.runs} rounds; export", file=sys.stderr)
                finds, find_notes = time_commands(
                    backends,
                    [
                        (f"`{' '.join(MECHANISM_ARGS)}`", MECHANISM_ARGS, FIND_TARGET_S),
                        (TEXT_LABEL, TEXT_ARGS, FIND_TARGET_S),
                    ],
                    args.runs,
                    args.warmup,
                    env,
                    work,
                    floor=("--help",),
                )
                export_file = str(work / "export.ris")
                export_args = ("export", "--to", "ris", "-o", export_file)
                exports, export_notes = time_commands(
                    backends,
                    [("`export --to ris -o FILE` (the whole library)", export_args, EXPORT_TARGET_S)],
                    args.export_runs,
                    0,
                    env,
                    work,
                )
                profile = []
                if args.profile_n:
                    print(f"profiling an import of {args.profile_n:,} entries", file=sys.stderr)
                    profile = profile_section(
                        backends, out / f"formats-{args.profile_n}.bib", args.profile_n, env, work
                    )
                machine = machine_note(admin_url, what)
            finally:
                for backend in backends:
                    backend.drop()
    lines = [
        f"## SQLite and PostgreSQL side by side: {args.n:,} synthetic studies",
        "",
        "Every step is a fresh `evidence --db URL ...` process (wall seconds, measured with os.wait4; peak = "
        "the client process's own largest resident memory, not the server's). Each round runs the step on "
        "both backends one after the other, the order alternating between rounds; the ratio is the median "
        "of the per-round ratios PostgreSQL / SQLite. Medians with (min-max): import "
        f"{args.import_runs} rounds, each into a new empty library (`db init --empty`, not timed); find "
        f"{args.runs} rounds after {args.warmup} warm-up; export {args.export_runs} rounds.",
        "",
        f"| step | {SQLITE} s | {POSTGRES} s | PG / SQLite | peak MB SQLite / PG | target on PostgreSQL | "
        "verdict |",
        "|---|---:|---:|---:|---:|---|---|",
        *(step.row() for step in (import_step, *finds, *exports)),
        "",
        *machine,
        *(f"- {note}" for note in (*notes, *find_notes, *export_notes)),
        f"- reproduce: `.venv/bin/python tests/bench/bench_postgres.py --n {args.n}` "
        "(EVIDENCE_BENCH_PG_URL=... for another server)",
        "",
        *profile,
    ]
    return "\n".join(lines) + "\n"


# The counts a run takes: option, default, smallest allowed, help.
COUNT_OPTIONS = (
    ("--n", 100_000, 2, "studies in the BibTeX file"),
    ("--import-runs", 3, 1, "rounds of the import"),
    ("--warmup", 1, 0, "untimed rounds of each find first"),
    ("--runs", 7, 1, "timed rounds of each find"),
    ("--export-runs", 3, 1, "rounds of the export"),
    ("--profile-n", 20_000, 0, "entries of the profiled import (0: no profile)"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    for option, default, _least, what in COUNT_OPTIONS:
        parser.add_argument(option, type=int, default=default, help=f"{what} (default {default:,})")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out", help="output folder")
    args = parser.parse_args(argv)
    for option, _default, least, _what in COUNT_OPTIONS:
        if getattr(args, option[2:].replace("-", "_")) < least:
            parser.error(f"{option} must be at least {least}")
    if args.profile_n == 1:
        parser.error("--profile-n must be 0 or at least 2")
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    table = run(args)
    (args.out / "postgres.md").write_text(table, encoding="utf-8")
    print(table)
    return table


if __name__ == "__main__":
    if sys.argv[1:2] == [PROFILE_CHILD]:
        profile_child(sys.argv[2:])
    else:
        main()
