"""Several clinicians on one library at once, on SQLite (WAL) and on PostgreSQL: nothing lost, no error
shown. Real processes, a real Crossref stand-in on 127.0.0.1, no mocks of the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests import pgserver
from tests.crossref_fake import FakeCrossref, work
from tests.helpers import db_rows, run_json

pytestmark = [pytest.mark.both_backends, pytest.mark.slow]

WORKERS = 4
WORKER = Path(__file__).with_name("concurrency_worker.py")
READER = Path(__file__).with_name("concurrency_reader.py")


def _env(library_url: str, crossref_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        EVIDENCE_HOME=os.environ["EVIDENCE_HOME"],
        EVIDENCE_DB=library_url,
        EVIDENCE_CROSSREF_URL=crossref_url,
        EVIDENCE_CROSSREF_TIMEOUT="5",
    )
    return env


def test_four_clinicians_writing_at_once_lose_nothing(
    library_url: str, httpserver: HTTPServer, backend: str
) -> None:
    studies = run_json("find", "--sort", "title")  # opens and seeds the library first
    with_doi = [s for s in studies if s["doi"]]
    targets = {
        "shared": [with_doi[0]["citekey"]],
        "link": [s["citekey"] for s in studies[: WORKERS * 5]],
        "enrich": [s["citekey"] for s in with_doi[1:6]],
    }
    fake = FakeCrossref(httpserver)
    for study in with_doi[1:6]:
        fake.add(work(study["doi"], study["title"], **{"is-referenced-by-count": 77}))
    env = _env(library_url, fake.url)
    started = time.perf_counter()
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(w), json.dumps(targets)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for w in range(WORKERS)
    ]
    reports = []
    for process in workers:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.perf_counter() - started
    print(f"{backend}: {WORKERS} x 25 writes in {elapsed:.1f} s")
    assert [r["failures"] for r in reports] == [[]] * WORKERS

    # Every write is there.
    added = db_rows(library_url, "SELECT title, citekey FROM studies WHERE title LIKE 'Concurrent trial %'")
    assert sorted(t for t, _ in added) == sorted(
        f"Concurrent trial w{w}-{k}" for w in range(WORKERS) for k in range(5)
    )
    assert len({c for _, c in added}) == WORKERS * 5  # colliding citekeys were told apart
    shared = run_json("show", targets["shared"][0])
    for w in range(WORKERS):
        for k in range(5):
            assert f"tag-w{w}-{k}" in shared["tags"]
            assert f"note w{w}-{k}" in shared["notes"]  # appended, never overwritten
    for citekey in targets["link"]:
        links = {c["claim"]: c["stance"] for c in run_json("show", citekey)["claims"]}
        assert links["pain-modulation"] == "mixed"
    for citekey in targets["enrich"]:
        assert run_json("show", citekey)["citations"] == 77


def _start(script: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _report(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def test_writers_editing_beside_a_finder_and_an_exporter_lose_nothing_and_show_no_half_study(
    library_url: str, tmp_path: Path, backend: str
) -> None:
    # Issue 13: 4 processes x 25 writes (add, link, tag, note, edit) while one process runs find and
    # another export in a loop. Every write is there, nobody is shown "database is locked" (or any
    # error), and no reader ever sees a study without the author and year it was added with.
    studies = run_json("find", "--sort", "title")
    targets = {"shared": [studies[1]["citekey"]], "link": [s["citekey"] for s in studies[: WORKERS * 5]]}
    env = _env(library_url, "http://127.0.0.1:9")  # no Crossref in this mix
    stop = tmp_path / "stop"
    readers = [_start(READER, kind, str(stop), env=env) for kind in ("find", "export")]
    started = time.perf_counter()
    workers = [_start(WORKER, str(w), json.dumps(targets), "edit", env=env) for w in range(WORKERS)]
    reports = [_report(process) for process in workers]
    elapsed = time.perf_counter() - started
    stop.touch()
    seen = [_report(process) for process in readers]
    print(f"{backend}: {WORKERS} x 25 writes beside {sum(r['reads'] for r in seen)} reads in {elapsed:.1f} s")
    assert [r["failures"] for r in reports] == [[]] * WORKERS
    assert [r["problems"] for r in seen] == [[], []]
    assert all(r["reads"] >= 1 for r in seen)
    added = db_rows(library_url, "SELECT title, pages FROM studies WHERE title LIKE 'Concurrent trial %'")
    assert sorted(added) == sorted(
        (f"Concurrent trial w{w}-{k}", f"{k + 1}-{k + 9}") for w in range(WORKERS) for k in range(5)
    )
    shared = run_json("show", targets["shared"][0])
    assert {f"tag-w{w}-{k}" for w in range(WORKERS) for k in range(5)} <= set(shared["tags"])
    assert all(f"note w{w}-{k}" in shared["notes"] for w in range(WORKERS) for k in range(5))
    for citekey in targets["link"]:
        links = {c["claim"]: c["stance"] for c in run_json("show", citekey)["claims"]}
        assert links["pain-modulation"] == "mixed"


def test_clients_opening_a_new_empty_library_at_once_set_it_up_once(
    new_empty_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(EVIDENCE_HOME=str(tmp_path / "home"), EVIDENCE_DB=new_empty_url)
    cli = [sys.executable, str(Path(__file__).resolve().parent.parent / "cli.py")]
    openers = [
        subprocess.Popen(
            [*cli, "find", "--limit", "1", "--format", "json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(4)
    ]
    for process in openers:
        _out, err = process.communicate(timeout=120)
        assert (process.returncode, err) == (0, "")
    assert db_rows(new_empty_url, "SELECT count(*) FROM studies") == [(49,)]
    assert db_rows(new_empty_url, "SELECT count(*) FROM mechanisms") == [(3,)]


@pytest.fixture
def new_empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """A database with nothing in it, not even a schema."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'new.db'}"
        return
    server = request.getfixturevalue("pg_server")
    name = f"evidence_empty_{os.getpid()}"
    yield server.create_database(name)
    server.drop_database(name)


class _Serialization(Exception):
    sqlstate = "40001"  # what psycopg's SerializationFailure carries


def test_a_write_that_keeps_losing_the_race_stops_with_one_line(library_url: str) -> None:
    from sqlalchemy.exc import OperationalError

    from evidence.config import load_settings
    from evidence.errors import DatabaseError
    from evidence.store.db import WRITE_ATTEMPTS, open_database

    db = open_database(load_settings({}).with_db(library_url))
    calls: list[int] = []

    def work(session: Any) -> None:
        calls.append(1)
        raise OperationalError("UPDATE studies ...", {}, _Serialization("could not serialize access"))

    try:
        with pytest.raises(DatabaseError) as caught:
            db.write(work)
        assert len(calls) == WRITE_ATTEMPTS
        message = str(caught.value)
        assert "gave up after 6 attempts" in message and "could not serialize access" in message
        assert "\n" not in message and pgserver.PASSWORD not in message
        # Lost once, then through: the result of the second attempt comes back.
        calls.clear()

        def flaky(session: Any) -> str:
            calls.append(1)
            if len(calls) == 1:
                raise OperationalError("INSERT ...", {}, _Serialization("deadlock"))
            return "done"

        assert db.write(flaky) == "done" and len(calls) == 2
    finally:
        db.close()
