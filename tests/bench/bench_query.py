"""Benchmark: process start and query time of `evidence --help`, `find` and `show` on a large library.

    .venv/bin/python tests/bench/bench_query.py            # 100,000 synthetic studies, 7 runs each
    .venv/bin/python tests/bench/bench_query.py --n 20000 --runs 5

Builds (or reuses) ``bench-out/library-N.db`` with `synth.build_library`, then times each command as a
fresh process (``EVIDENCE_DB`` pointing at the library, ``EVIDENCE_HOME`` at an empty temporary folder):
one warm-up, then ``--runs`` rounds that run every command once in turn, so a noisy moment on a shared
machine hits all commands alike. Beside them, the same rounds time ``python -c pass`` and
``python -c "import sqlalchemy.orm"``, so the figures can be read as ratios. Then the query behind each
command is timed in-process (``evidence.query`` inside ``db.transaction()``, ``--query-runs`` times).
Prints a markdown table and writes it to ``bench-out/query.md``. Never a pass/fail test: the verdict
column compares medians with the targets of issue 2.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import synth  # noqa: E402  (a sibling module; this file runs as a script)

MECHANISM_ARGS = ("find", "--mechanism", "neural-stimulation", "--year-from", "2015", "--limit", "50")
TEXT_ARGS = ("find", "--text", "range of motion", "--limit", "50")
HELP_TARGET_MS = 120.0
PROCESS_TARGET_MS = 400.0
QUERY_TARGET_MS = 20.0


@dataclass
class Timing:
    label: str
    target_ms: float | None
    samples: list[float] = field(default_factory=list)  # seconds
    note: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    def row(self) -> str:
        median, low, high = self.median_ms, min(self.samples) * 1000, max(self.samples) * 1000
        if self.target_ms is None:
            target, verdict = "baseline", "-"
        else:
            target = f"<= {self.target_ms:.0f} ms"
            verdict = "ok" if median <= self.target_ms else "**MISS**"
        return f"| {self.label} | {median:.1f} | {low:.1f} | {high:.1f} | {target} | {verdict} |"


def evidence_executable() -> list[str]:
    """The console script of the interpreter running this benchmark (the project's venv)."""
    script = Path(sys.executable).with_name("evidence")
    if script.is_file():
        return [str(script)]
    raise SystemExit(f"no `evidence` console script next to {sys.executable}; run `make install` first")


def show_doi(n: int) -> str:
    return f"{synth.DOI_PREFIX}{max(1, n // 2)}"


def process_cases(n: int) -> list[tuple[Timing, list[str]]]:
    evidence = evidence_executable()
    python = sys.executable
    doi = show_doi(n)
    return [
        (Timing("`python -c pass`", None), [python, "-c", "pass"]),
        (Timing('`python -c "import sqlalchemy.orm"`', None), [python, "-c", "import sqlalchemy.orm"]),
        (Timing("`evidence --help`", HELP_TARGET_MS), [*evidence, "--help"]),
        (
            Timing(
                "`evidence find --mechanism neural-stimulation --year-from 2015 --limit 50`",
                PROCESS_TARGET_MS,
            ),
            [*evidence, *MECHANISM_ARGS],
        ),
        (
            Timing('`evidence find --text "range of motion" --limit 50`', PROCESS_TARGET_MS),
            [*evidence, *TEXT_ARGS],
        ),
        (Timing(f"`evidence show {doi}`", PROCESS_TARGET_MS), [*evidence, "show", doi]),
    ]


def _run_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    silent = argv[1:2] == ["-c"]  # the python baselines print nothing; every evidence command does
    if done.returncode != 0 or not (silent or done.stdout.strip()):
        stderr = done.stderr.decode(errors="replace")
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{stderr}")
    return elapsed


def time_processes(db_path: Path, n: int, runs: int, warmup: int) -> list[Timing]:
    cases = process_cases(n)
    with tempfile.TemporaryDirectory(prefix="evidence-bench-home-") as home:
        env = {**os.environ, "EVIDENCE_DB": str(db_path), "EVIDENCE_HOME": home}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for _ in range(warmup):
            for _timing, argv in cases:
                _run_once(argv, env)
        for _ in range(runs):
            for timing, argv in cases:
                timing.samples.append(_run_once(argv, env))
    return [timing for timing, _argv in cases]


def time_queries(db_path: Path, n: int, runs: int) -> tuple[list[Timing], list[str]]:
    from evidence.config import load_settings
    from evidence.query import FindFilters, find_ids, find_studies, show_study
    from evidence.store.db import open_database

    settings = load_settings({"EVIDENCE_HOME": str(db_path.parent), "EVIDENCE_DB": str(db_path)})
    db = open_database(settings)
    mechanism = FindFilters(mechanisms=["neural-stimulation"], year_from=2015)
    text = FindFilters(text="range of motion")
    doi = show_doi(n)
    queries: list[tuple[Timing, Callable[[Any], Any]]] = [
        (
            Timing(
                "query: `find_studies(mechanism=neural-stimulation, year_from=2015, limit=50)`",
                QUERY_TARGET_MS,
            ),
            lambda s: find_studies(s, mechanism, limit=50),
        ),
        (
            Timing('query: `find_studies(text="range of motion", limit=50)`', QUERY_TARGET_MS),
            lambda s: find_studies(s, text, limit=50),
        ),
        (Timing(f"query: `show_study({doi!r})`", QUERY_TARGET_MS), lambda s: show_study(s, doi)),
    ]
    notes = []
    try:
        with db.transaction() as session:
            total = session.execute(synth_count_sql()).scalar_one()
            for label, filters in (
                ("--mechanism neural-stimulation --year-from 2015", mechanism),
                ('--text "range of motion"', text),
            ):
                matched = len(find_ids(session, filters))
                notes.append(
                    f"`find {label}` matches {matched:,} of {total:,} studies "
                    f"({100 * matched / max(total, 1):.1f}%)"
                )
        for timing, query in queries:
            with db.transaction() as session:  # warm-up (statement cache, page cache)
                result = query(session)
            size = len(result) if isinstance(result, list) else 1
            if size == 0:
                raise RuntimeError(f"{timing.label} returned nothing")
            for _ in range(runs):
                started = time.perf_counter()
                with db.transaction() as session:
                    query(session)
                timing.samples.append(time.perf_counter() - started)
    finally:
        db.close()
    return [timing for timing, _query in queries], notes


def synth_count_sql() -> Any:
    from sqlalchemy import text

    return text("SELECT count(*) FROM studies")


def render(
    n: int,
    runs: int,
    query_runs: int,
    db_path: Path,
    processes: list[Timing],
    queries: list[Timing],
    notes: list[str],
) -> str:
    lines = [
        f"## Query benchmark: {n:,} synthetic studies",
        "",
        f"Wall times in ms. Processes: median of {runs} runs after a warm-up; queries: median of "
        f"{query_runs} in-process runs inside `db.transaction()`.",
        "",
        "| command | median | min | max | target | verdict |",
        "|---|---:|---:|---:|---|---|",
        *(t.row() for t in processes),
        *(t.row() for t in queries),
        "",
    ]
    python_ms, sqlalchemy_ms = processes[0].median_ms, processes[1].median_ms
    lines += [
        "| command | ratio to `python -c pass` | ratio to `import sqlalchemy.orm` | "
        "above `import sqlalchemy.orm` |",
        "|---|---:|---:|---:|",
    ]
    for t in processes[2:]:
        lines.append(
            f"| {t.label} | {t.median_ms / python_ms:.2f} | {t.median_ms / sqlalchemy_ms:.2f} | "
            f"{t.median_ms - sqlalchemy_ms:+.1f} ms |"
        )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    lines += [
        "",
        *(f"- {note}" for note in notes),
        f"- library: `{db_path.relative_to(REPO) if db_path.is_relative_to(REPO) else db_path}` "
        f"({db_path.stat().st_size / 1e6:.0f} MB)",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs" + (f", load average {load[0]:.2f} at the end" if load else ""),
        "- reproduce: `make bench` (or `.venv/bin/python tests/bench/bench_query.py --n N --runs R`)",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000, help="studies in the synthetic library")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command (after warm-up)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each command first")
    parser.add_argument("--query-runs", type=int, default=50, help="timed in-process runs of each query")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench-out", help="folder for the cached library and query.md"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the library even if cached")
    args = parser.parse_args(argv)
    if args.n < 2 or args.runs < 1 or args.query_runs < 1 or args.warmup < 0:
        parser.error("--n must be >= 2, --runs and --query-runs >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    out: Path = args.out.resolve()
    db_path = synth.build_library(out / f"library-{args.n}.db", args.n, force=args.rebuild)
    processes = time_processes(db_path, args.n, args.runs, args.warmup)
    queries, notes = time_queries(db_path, args.n, args.query_runs)
    table = render(args.n, args.runs, args.query_runs, db_path, processes, queries, notes)
    (out / "query.md").write_text(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
