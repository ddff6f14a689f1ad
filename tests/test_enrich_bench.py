"""The Crossref benchmark runs end to end on a small scale (its figures are checked for shape, not speed)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parent / "bench" / "bench_crossref.py"


@pytest.fixture
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_crossref_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_crossref_benchmark_batches_caches_and_stays_under_the_limit(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--n", "100", "--sample", "3", "--rate", "20", "--latency", "0.02", "--out", str(tmp_path)]
    table = bench.main(args)

    assert (tmp_path / "crossref.md").read_text(encoding="utf-8") == table
    assert table in capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table.splitlines()[4:]}
    assert rows["DOIs enriched (first run)"] == "100 of 100 (0 failed)"
    assert rows["requests sent per DOI, batched"] == "0.020 (2 requests)"
    assert rows["HTTP 429 received"] == "0"
    assert rows["requests sent, second (cached) run"] == "0"
    assert rows["habanero `works(ids=[...])`, 3 DOIs: requests per DOI"] == "1.00 (3 requests)"


def test_the_stand_in_refuses_requests_beyond_its_rate(bench: ModuleType) -> None:
    import httpx2

    with bench.CrossrefStandIn(latency=0.0, rate=2, concurrency=1, max_requests=50, deadline=10) as stand_in:
        codes = [httpx2.get(f"{stand_in.url}/works/10.5555/bench.{i}").status_code for i in range(3)]
    assert codes == [200, 200, 429]
    assert stand_in.stats.rate_limited == 1
