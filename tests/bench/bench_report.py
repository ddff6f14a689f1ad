"""`evidence report` speed: the seed library and synthetic libraries of 1,000 and 10,000 studies, each a
fresh process, against `evidence find` on the same library in the same run (the ratio is what to compare
across machines); then where the time of the largest goes, measured in one process.

    .venv/bin/python tests/bench/bench_report.py [--n 10000] [--repeat 3] [--pdf]

Targets (issue 11): the seed library's report in 2 s or less, 10,000 studies in 15 s or less.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

TARGETS = {"seed": 2.0, 10_000: 15.0}


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_of(args: list[str], env: dict[str, str], repeat: int) -> float:
    return statistics.median(timed(args, env) for _ in range(repeat))


def breakdown(db: Path) -> dict[str, float]:
    """Seconds per stage of one report, in this process: rows, content, references (citeproc), page."""
    from evidence.config import load_settings
    from evidence.formats.cite import render_entries
    from evidence.library import open_library
    from evidence.query import FindFilters, find_ids, iter_study_rows
    from evidence.report import render_html
    from evidence.report.content import build_report

    database = open_library(load_settings({}).with_db(f"sqlite:///{db}"), seed=False)
    stages: dict[str, float] = {}
    with database.sessions() as session:
        start = time.perf_counter()
        rows = list(iter_study_rows(session, find_ids(session, FindFilters(), sort="level")))
        stages["read the rows"] = time.perf_counter() - start
        start = time.perf_counter()
        report = build_report(rows, title="t", generated="2026-01-01", library="bench")
        stages["content and verdicts"] = time.perf_counter() - start
        start = time.perf_counter()
        citations = render_entries(report.document_order(), "american-medical-association", "html")
        stages["references (citeproc-py)"] = time.perf_counter() - start
        by_id = dict(zip((s["id"] for s in report.document_order()), citations, strict=True))
        for entry in report.entries():
            entry.citation = by_id[entry.study["id"]]
        start = time.perf_counter()
        render_html(report)
        stages["charts and page (matplotlib, Jinja2)"] = time.perf_counter() - start
    database.close()
    return stages


def run(n: int, repeat: int, pdf: bool, out: Path) -> str:
    import synth

    evidence = [str(Path(sys.executable).with_name("evidence"))]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "EVIDENCE_HOME": home}
        seed_db = Path(home) / "evidence.db"
        subprocess.run([*evidence, "db", "init"], env=env, check=True, capture_output=True)
        libraries: list[tuple[str | int, Path]] = [("seed", seed_db)]
        for size in sorted({1000, n}):
            libraries.append((size, synth.build_library(out / f"report-{size}.db", size, progress=False)))
        rows = []
        for label, db in libraries:
            base = [*evidence, "--db", str(db)]
            report = median_of([*base, "report", "-o", str(Path(home) / "r.html")], env, repeat)
            find = median_of([*base, "find", "--limit", "50"], env, repeat)
            target = TARGETS.get(label)
            verdict = "" if target is None else ("met" if report <= target else "missed")
            name = "seed library (49)" if label == "seed" else f"{label:,} synthetic studies"
            rows.append(
                f"| {name} | {report:.2f} | {find:.2f} | {report / find:.1f}x | "
                f"{'' if target is None else f'≤ {target:g} s'} | {verdict} |"
            )
        if pdf:
            pdf_s = median_of([*evidence, "report", "--pdf", "-o", str(Path(home) / "r.pdf")], env, repeat)
            rows.append(f"| seed library, `--pdf` | {pdf_s:.2f} | | | | |")
        stages = breakdown(libraries[-1][1])
    total = sum(stages.values())
    lines = [
        "## The evidence report",
        "",
        f"Median of {repeat} fresh processes each; `find --limit 50` on the same library in the same run for "
        f"the ratio. {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| library | `report` s | `find` s | ratio | target | verdict |",
        "|---|---:|---:|---:|---|---|",
        *rows,
        "",
        f"Where the {libraries[-1][0]:,}-study report's time goes (one process, after imports):",
        "",
        "| stage | s | share |",
        "|---|---:|---:|",
        *(f"| {k} | {v:.2f} | {v / total:.0%} |" for k, v in stages.items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=10_000, help="studies in the largest library")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the median is shown")
    parser.add_argument("--pdf", action="store_true", help="also time the seed library's PDF")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out", help="where the libraries are kept")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    table = run(args.n, args.repeat, args.pdf, args.out)
    (args.out / "report.md").write_text(table, encoding="utf-8")
    print(table)
    return table


if __name__ == "__main__":
    main()
