"""The SQLite-vs-PostgreSQL benchmark script works end to end on a tiny file (no timing assertions: see
tests/bench)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import make_url

from tests import pgserver
from tests.bench import bench_postgres

if TYPE_CHECKING:
    from tests.conftest import PgServer

BENCH = Path(__file__).parent / "bench"
STEPS = (
    "import 300-entry BibTeX",
    f"`{' '.join(bench_postgres.MECHANISM_ARGS)}`",
    bench_postgres.TEXT_LABEL,
    "`export --to ris -o FILE`",
)


def test_statement_kinds() -> None:
    kind = bench_postgres.statement_kind
    assert kind("INSERT INTO authors (study_id) VALUES (%(a)s)") == "INSERT INTO authors"
    assert kind("SELECT count(*) FROM (SELECT id FROM studies) AS s") == "SELECT FROM studies"
    assert kind("UPDATE studies SET title = 1") == "UPDATE studies"
    assert kind("COMMIT") == "COMMIT"


@pytest.mark.slow
def test_postgres_benchmark_runs_on_a_tiny_file(tmp_path: Path, pg_server: PgServer) -> None:
    env = {**os.environ}
    # The session's server (a cluster of its own would cost the suite another initdb).
    env["EVIDENCE_BENCH_PG_URL"] = pg_server.admin_url
    password = make_url(pg_server.admin_url).password or pgserver.PASSWORD
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_postgres.py"),
            *("--n", "300", "--runs", "1", "--warmup", "0", "--import-runs", "1", "--export-runs", "2"),
            *("--profile-n", "200", "--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "postgres.md").read_text()
    assert table.strip() in done.stdout
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    steps = [row for row in rows if len(row) == 7 and row[0].startswith(STEPS)]
    assert [row[0].startswith(step) for row, step in zip(steps, STEPS, strict=True)] == [True] * 4
    for label, sqlite, postgres, ratio, peaks, target, verdict in steps:
        assert float(sqlite.split()[0]) > 0 and float(postgres.split()[0]) > 0, label
        assert ratio.split()[0].endswith("x"), label
        assert all(float(mb) > 0 for mb in peaks.split(" / ")), label
        assert target.startswith("<= ") and verdict in ("ok", "**MISS**"), label
    assert "(" in steps[-1][1]  # two export rounds: a range
    assert "both libraries hold the same counts: 298 studies" in table
    assert (
        "`export --to ris -o FILE` (the whole library): the output on the two backends is identical" in table
    )
    assert "**unexpected**" not in table
    profile = table.split("### Where an import's time goes: 200 entries", 1)[1]
    # SQLite's inserts are statements; PostgreSQL's rows go in by COPY, outside SQLAlchemy's events.
    assert "| `INSERT INTO studies` |" in profile and "| `INSERT INTO authors` |" in profile
    assert password not in table and password not in done.stderr  # the superuser's password is masked
    assert not list(tmp_path.glob("bench-postgres-*"))  # the cluster's folder and the libraries are gone
