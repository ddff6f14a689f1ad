"""The query benchmark script works end to end on a tiny library (no timing assertions: see tests/bench)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent / "bench"
EXPECTED_ROWS = (
    "`python -c pass`",
    '`python -c "import sqlalchemy.orm"`',
    "`evidence --help`",
    "`evidence find --mechanism neural-stimulation --year-from 2015 --limit 50`",
    '`evidence find --text "range of motion" --limit 50`',
    "`evidence show 10.5555/synth.150`",
    "query: `find_studies(mechanism=neural-stimulation, year_from=2015, limit=50)`",
    'query: `find_studies(text="range of motion", limit=50)`',
    "query: `show_study('10.5555/synth.150')`",
)


def test_synthetic_studies_are_deterministic_and_unique() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import synth
    finally:
        sys.path.remove(str(BENCH))
    first, again = list(synth.studies(200)), list(synth.studies(200))
    assert first == again
    assert synth.study(150) == first[149]  # study N does not depend on n
    assert len({s["doi"] for s in first}) == 200
    pmids = [s["pmid"] for s in first if s["pmid"]]
    assert len(set(pmids)) == len(pmids)
    assert all(1 <= len(s["authors"]) <= 8 and 1 <= len(s["claims"]) <= 3 for s in first)
    assert all(1990 <= s["year"] <= 2026 for s in first)


@pytest.mark.slow
def test_query_benchmark_runs_on_a_small_library(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_query.py"),
            "--n",
            "300",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--query-runs",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "query.md").read_text()
    assert table.strip() in done.stdout
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0] in EXPECTED_ROWS:
            rows[cells[0]] = cells
    assert set(rows) == set(EXPECTED_ROWS)
    for label, (_, median, low, high, target, verdict) in rows.items():
        median_ms, low_ms, high_ms = float(median), float(low), float(high)
        assert 0 < low_ms <= median_ms <= high_ms, label
        if "python -c" in label:
            assert (target, verdict) == ("baseline", "-")
        else:
            assert re.fullmatch(r"<= \d+ ms", target), label
            assert verdict in ("ok", "**MISS**"), label
    assert (tmp_path / "library-300.db").is_file()
