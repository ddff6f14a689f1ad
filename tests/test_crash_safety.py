"""A library that loses nothing when a command is killed, and the processes around it (issue 13). Real
`evidence` processes on a SQLite library, killed with signals at chosen moments; the database is then
checked with SQLite's own integrity check and counted."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

CLI = [sys.executable, str(Path(__file__).resolve().parent.parent / "cli.py")]
SEED_STUDIES = 49
BIG_RECORDS = 50_000


def _env(home: Path, db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(EVIDENCE_HOME=str(home), EVIDENCE_DB=str(db), **extra)
    return env


def evidence(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr[-2000:])
    return result


def _write_bib(path: Path, records: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for n in range(records):
            out.write(
                f"@article{{crash{n},\n title={{Instrument-assisted mobilisation trial number {n}}},\n"
                f" author={{Surname{n}, Given}},\n journal={{J Test}},\n year={{{2000 + n % 25}}},\n"
                f" keywords={{mechanism:neural-stimulation, tag-{n % 7}}}\n}}\n"
            )
    return path


@pytest.fixture(scope="session")
def big_bib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 50,000-entry BibTeX file (about 6 MB: parsed in the forked worker), made once per session."""
    return _write_bib(tmp_path_factory.mktemp("big") / "big.bib", BIG_RECORDS)


@pytest.fixture
def library(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A seeded SQLite library (its environment and file)."""
    db = tmp_path / "lib.db"
    env = _env(tmp_path / "home", db)
    evidence(env, "db", "upgrade")
    yield env, db


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``evidence ARGS`` started in a session of its own (killed with its children by `os.killpg`)."""
    return subprocess.Popen(
        [*CLI, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def integrity(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        problems += [repr(row) for row in conn.execute("PRAGMA foreign_key_check")]
        problems += [
            row[0] for row in conn.execute("INSERT INTO studies_fts(studies_fts) VALUES('integrity-check')")
        ]
    return [] if problems == ["ok"] else problems


def count(db: Path, table: str = "studies") -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- the regressions of issue 13 ----------------------------------------------------------------------


def test_db_upgrade_of_a_new_library_is_quick_and_reports_its_revision(tmp_path: Path) -> None:
    # It took 15-16 s (a second BEGIN IMMEDIATE in the same process waited out the busy timeout) and
    # printed "schema at revision None".
    from evidence.store.db import BUSY_TIMEOUT_MS, HEAD_REVISION

    env = _env(tmp_path / "home", tmp_path / "new.db")
    started = time.perf_counter()
    result = evidence(env, "db", "upgrade")
    elapsed = time.perf_counter() - started
    assert result.stderr.splitlines()[-1] == f"schema at revision {HEAD_REVISION}; {SEED_STUDIES} studies"
    assert elapsed < BUSY_TIMEOUT_MS / 1000 / 2, elapsed


def _open_new_library(url: str, barrier: object, results: object) -> None:
    from evidence.store.db import make_engine

    barrier.wait()  # type: ignore[attr-defined]
    try:
        engine = make_engine(url)
        with engine.connect() as conn:
            results.put(conn.exec_driver_sql("PRAGMA journal_mode").scalar())  # type: ignore[attr-defined]
        engine.dispose()
    except Exception as exc:
        results.put(repr(exc))  # type: ignore[attr-defined]


def test_many_processes_opening_a_new_file_at_once_all_get_it_in_wal_mode(tmp_path: Path) -> None:
    # The race behind the parallel openers test that failed once: switching a new file to WAL needs it
    # to itself and SQLite does not run the busy handler for that, so one opener got "database is
    # locked" at once (2 runs in 40 with 16 openers, measured before the fix; 0 in 60 after).
    context = multiprocessing.get_context("fork")
    openers = 16
    for run in range(12):
        url = f"sqlite:///{tmp_path / f'new{run}.db'}"
        barrier, results = context.Barrier(openers), context.Queue()
        processes = [
            context.Process(target=_open_new_library, args=(url, barrier, results)) for _ in range(openers)
        ]
        for process in processes:
            process.start()
        modes = [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        assert modes == ["wal"] * openers, (run, modes)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_parse_worker_ends_with_a_killed_import(
    library: tuple[dict[str, str], Path], big_bib: Path, sig: signal.Signals
) -> None:
    # It lived on for minutes, blocked on its pipe (its own copy of the reading end kept the pipe open)
    # and holding the library open.
    env, db = library
    process = spawn(env, "import", str(big_bib))
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while not workers and time.monotonic() < deadline and process.poll() is None:
        workers = children(process.pid)
        time.sleep(0.05)
    assert workers, "the import never started its parse worker"
    time.sleep(0.5)  # the worker is well into the file, its pipe full
    process.send_signal(sig)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in workers), "the parse worker outlived the import"
    assert integrity(db) == []
    assert count(db) == SEED_STUDIES


# --- item 1: killed at chosen moments ------------------------------------------------------------------

# When the import is killed: seconds after it starts (start-up and parsing; matching and inserting the
# first batches), and when the library's write-ahead log shows it writing (inserting), for the last.
IMPORT_KILL_DELAYS = (0.5, 2.0, 4.0)
WAL_BYTES_WRITING = 4 * 1024 * 1024


def _kill_import_at(env: dict[str, str], db: Path, big_bib: Path, delay: float | None) -> None:
    process = spawn(env, "import", str(big_bib))
    wal = Path(f"{db}-wal")
    started = time.monotonic()
    while process.poll() is None:
        elapsed = time.monotonic() - started
        writing = wal.exists() and wal.stat().st_size >= WAL_BYTES_WRITING
        if (delay is not None and elapsed >= delay) or (delay is None and writing) or elapsed > 120:
            break
        time.sleep(0.02)
    workers = children(process.pid)
    os.killpg(process.pid, signal.SIGKILL)  # the import and its parse worker, as a crash would
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_import_killed_at_any_moment_leaves_a_sound_library_with_none_or_all(
    library: tuple[dict[str, str], Path], big_bib: Path
) -> None:
    env, db = library
    for delay in (*IMPORT_KILL_DELAYS, None):
        _kill_import_at(env, db, big_bib, delay)
        assert integrity(db) == [], delay
        assert count(db) in (SEED_STUDIES, SEED_STUDIES + BIG_RECORDS), delay
        if delay in IMPORT_KILL_DELAYS[:2]:
            assert count(db) == SEED_STUDIES, delay  # killed mid-import for sure (it takes 10 s or more)
        if count(db) != SEED_STUDIES:
            break  # it finished before the kill: nothing more to kill
    # The library still takes the whole file afterwards, once.
    evidence(env, "import", str(big_bib))
    assert count(db) == SEED_STUDIES + BIG_RECORDS
    assert count(db, "authors") >= BIG_RECORDS
    assert integrity(db) == []


def test_an_enrich_killed_mid_run_keeps_its_committed_chunks_and_resumes(
    tmp_path: Path, httpserver: Any
) -> None:
    import threading

    from werkzeug import Request, Response

    from tests.crossref_fake import FakeCrossref, work

    fake = FakeCrossref(httpserver)
    dois = [f"10.5555/crash.{n}" for n in range(120)]
    for doi in dois:
        fake.add(work(doi, "Crash study"))
    release = threading.Event()

    def hang_from_the_second_batch(request: Request, crossref: FakeCrossref) -> Response | None:
        # The second chunk's request hangs (the server gone quiet): the first chunk is committed by
        # then, and the process is killed while it waits.
        if sum(kind == "batch" for kind, _ in crossref.requests) >= 2:
            release.wait(60)
        return None

    fake.faults.append(hang_from_the_second_batch)
    db = tmp_path / "enrich.db"
    env = _env(tmp_path / "home", db, EVIDENCE_CROSSREF_URL=fake.url, EVIDENCE_CROSSREF_TIMEOUT="60")
    evidence(env, "db", "init", "--empty")
    source = tmp_path / "dois.ris"
    source.write_text(
        "".join(
            f"TY  - JOUR\nTI  - Crash study {n}\nDO  - {doi}\nPY  - 2020\nER  - \n\n"
            for n, doi in enumerate(dois)
        ),
        encoding="utf-8",
    )
    evidence(env, "import", str(source))
    process = spawn(env, "enrich", "--all", "--quiet")
    try:
        deadline = time.monotonic() + 120
        while sum(kind == "batch" for kind, _ in fake.requests) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, "enrich ended before its second chunk"
            time.sleep(0.05)
        time.sleep(0.3)  # inside the second request, the first chunk long committed
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        release.set()
    assert integrity(db) == []
    assert count(db, "crossref_cache") == 50  # the first chunk, whole; nothing of the second
    with sqlite3.connect(db) as conn:
        enriched = conn.execute("SELECT count(*) FROM studies WHERE abstract IS NOT NULL").fetchone()[0]
    assert enriched == 50
    fake.faults.clear()
    fake.requests.clear()
    evidence(env, "enrich", "--all", "--quiet")
    asked = [doi for kind, detail in fake.requests if kind == "batch" for doi in detail.split(",")]
    assert sorted(asked) == sorted(f"doi:{doi}" for doi in dois[50:])  # none of the first 50 again
    assert count(db, "crossref_cache") == 120
    assert integrity(db) == []


COPY_RECORDS = 15_000  # enough for a copy of a few seconds; 50,000 cost the suite 25 s for no more cover


def test_a_db_copy_killed_mid_copy_leaves_no_half_library(
    library: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, db = library
    evidence(env, "import", str(_write_bib(tmp_path / "copy.bib", COPY_RECORDS)))
    target = tmp_path / "copy.db"
    evidence(_env(tmp_path / "home2", target), "db", "init", "--empty")
    before = count(target)
    process = spawn(env, "db", "copy", str(db), str(target), "--replace")
    wal = Path(f"{target}-wal")
    deadline = time.monotonic() + 120
    while process.poll() is None and not (wal.exists() and wal.stat().st_size > 1024 * 1024):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL  # killed mid-copy, not after it ended
    assert integrity(target) == []
    assert count(target) in (before, SEED_STUDIES + COPY_RECORDS)
    evidence(env, "db", "copy", str(db), str(target), "--replace")
    assert count(target) == SEED_STUDIES + COPY_RECORDS and integrity(target) == []
