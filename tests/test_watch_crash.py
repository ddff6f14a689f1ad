"""`evidence watch run` killed with SIGKILL mid-pagination, as a real process: the pages it stored are
whole and kept, the database is sound, and the next run goes on from the saved cursor without storing any
candidate twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from evidence import enrich
from tests.crossref_fake import fast_client
from tests.helpers import db_rows, run
from tests.watch_fake import FakeSearch, search_work

pytestmark = pytest.mark.slow


def test_a_killed_run_keeps_whole_pages_and_resumes(
    isolated_home: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSearch(httpserver)
    fake.works = [search_work(n) for n in range(1, 351)]

    def slow_from_page_3(request: Request, fake: FakeSearch) -> Response | None:
        if len(fake.requests) >= 3:
            time.sleep(3)  # the run is killed while it waits for page 3
        return None

    fake.faults = [slow_from_page_3]
    monkeypatch.setenv("EVIDENCE_CROSSREF_URL", fake.url)
    db = f"sqlite:///{isolated_home / 'evidence.db'}"
    run("db", "init")
    run("watch", "add", "iastm", "--query", "instrument assisted soft tissue mobilization")
    evidence = [sys.executable, "-c", "from cli import cli; cli()"]
    process = subprocess.Popen(
        [*evidence, "watch", "run"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(fake.requests) < 3:
            time.sleep(0.05)
        assert len(fake.requests) >= 3, "the run never asked for page 3"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
    stored = db_rows(db, "SELECT COUNT(*) FROM candidates")[0][0]
    assert stored == 200  # pages 1 and 2, whole; page 3 never arrived
    assert db_rows(db, "SELECT COUNT(*) FROM watch_records")[0][0] == 200
    (saved,) = db_rows(db, "SELECT cursor FROM watch_searches")
    assert saved == ("c2",)

    fake.faults.clear()
    fake.requests.clear()
    monkeypatch.setattr(enrich, "make_client", fast_client)
    resumed = run("watch", "run")
    assert resumed.stderr.startswith("iastm: 150 works in 2 requests: 150 new; went on from the last run")
    assert fake.requests[0][0] == "c2"  # the saved cursor, not "*"
    dois = [doi for (doi,) in db_rows(db, "SELECT doi FROM candidates")]
    assert len(dois) == len(set(dois)) == 350
