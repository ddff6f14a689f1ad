"""`evidence watch run` and `evidence triage` speed: 10,000 candidates from 100 pages of 100, stored by a
fresh process from a local Crossref stand-in (tests/watch_fake.py on 127.0.0.1, in this process), then the
triage listing of 10,000 pending; `evidence find --limit 50` on the same library in the same run for the
ratio.

    .venv/bin/python tests/bench/bench_watch.py [--n 10000] [--repeat 3]

Targets (issue 12): 10,000 candidates in 10 s or less beyond the server's own time; the triage listing of
10,000 pending in 0.5 s or less as a fresh process.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class TimedSearch:
    """The fake Crossref search, with the time spent answering counted (the server's own latency)."""

    def __init__(self, n: int) -> None:
        from pytest_httpserver import HTTPServer

        from tests.watch_fake import FakeSearch, search_work

        self.server = HTTPServer(host="127.0.0.1", port=0)
        self.fake = FakeSearch(self.server)
        self.fake.works = [search_work(i) for i in range(1, n + 1)]
        self.server_seconds = 0.0
        handle = self.fake.handle

        def timed(request: Any) -> Any:
            start = time.perf_counter()
            try:
                return handle(request)
            finally:
                self.server_seconds += time.perf_counter() - start

        self.server.clear_all_handlers()
        import re

        self.server.expect_request(re.compile(r"^/works/?$")).respond_with_handler(timed)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def in_process(n: int, home: str) -> tuple[float, float, int]:
    """The same run in this process with the throttle off (tests' fast client): our own work, without
    Crossref's rate limit. (wall s, server s, requests)."""
    from evidence.config import load_settings
    from evidence.library import open_library
    from evidence.watch.run import run_searches
    from evidence.watch.searches import add_search
    from tests.crossref_fake import fast_client

    server = TimedSearch(n)
    try:
        settings = load_settings({"EVIDENCE_HOME": home, "EVIDENCE_CROSSREF_URL": server.fake.url})
        database = open_library(settings)
        with database.transaction() as session:
            add_search(session, "bench", "iastm")
        start = time.perf_counter()
        run_searches(database, fast_client(settings), max_works=n)
        wall = time.perf_counter() - start
        database.close()
        return wall, server.server_seconds, len(server.fake.requests)
    finally:
        server.stop()


def run(n: int, repeat: int) -> str:
    evidence = str(Path(sys.executable).with_name("evidence"))
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as home:
        server = TimedSearch(n)
        env = {**os.environ, "EVIDENCE_HOME": home, "EVIDENCE_CROSSREF_URL": server.fake.url.rstrip("/")}
        try:
            subprocess.run([evidence, "db", "init"], env=env, check=True, capture_output=True)
            subprocess.run([evidence, "watch", "add", "bench", "--query", "iastm"], env=env, check=True,
                           capture_output=True)  # fmt: skip
            wall = timed([evidence, "watch", "run", "--max", str(n)], env)
            beyond = wall - server.server_seconds
            requests = len(server.fake.requests)
        finally:
            server.stop()
        rows.append(
            f"| `evidence watch run`, {n:,} candidates ({requests} requests at the public pool's 5 a second) "
            f"| {wall:.2f} | {server.server_seconds:.2f} | {beyond:.2f} | | |"
        )
        with tempfile.TemporaryDirectory() as other:
            wall2, server2, requests2 = in_process(n, other)
        beyond2 = wall2 - server2
        verdict = "met" if beyond2 <= 10 else "missed"
        rows.append(
            f"| the same in one process, throttle off ({requests2} requests) | {wall2:.2f} | {server2:.2f} | "
            f"{beyond2:.2f} | ≤ 10 s beyond the server | {verdict} |"
        )
        find = statistics.median(timed([evidence, "find", "--limit", "50"], env) for _ in range(repeat))
        for label, args, target in (
            (f"`triage --all --format csv` ({n:,} pending)", ["triage", "--all", "--format", "csv"], 0.5),
            (f"`triage --all --format json` ({n:,} pending)", ["triage", "--all", "--format", "json"], 0.5),
            ("`triage` (the first 50, a table)", ["triage"], None),
            ("`prisma`", ["prisma"], None),
        ):
            seconds = statistics.median(timed([evidence, *args], env) for _ in range(repeat))
            goal = f"≤ {target:g} s" if target else ""
            verdict = ("met" if seconds <= target else "missed") if target else ""
            rows.append(f"| {label} | {seconds:.2f} | | {seconds / find:.1f}x `find` | {goal} | {verdict} |")
        rows.append(f"| `find --limit 50` (for the ratio) | {find:.2f} | | 1.0x | | |")
    return (
        "\n".join(
            [
                "## Saved searches and triage",
                "",
                f"Fresh processes; median of {repeat} for the listings. {platform.python_implementation()} "
                f"{platform.python_version()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}.",
                "",
                "| step | wall s | server s | beyond the server s / ratio | target | verdict |",
                "|---|---:|---:|---:|---|---|",
                *rows,
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> str:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=10_000, help="candidates to store (pages of 100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each listing; the median is shown")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out", help="where the table is written")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    table = run(args.n, args.repeat)
    (args.out / "watch.md").write_text(table, encoding="utf-8")
    print(table)
    return table


if __name__ == "__main__":
    main()
