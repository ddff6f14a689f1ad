"""Benchmark (issue 9, part 2): `evidence import` on generated shapes that cannot be tuned to.

    .venv/bin/python tests/bench/bench_import.py                      # 100,000 records per file
    .venv/bin/python tests/bench/bench_import.py --n 20000 --shapes d,e

For every file of `shapes` (a-f; f is two files, NBIB and RIS) this imports, each time as a fresh
``evidence`` process measured with ``os.wait4`` (wall time, the process's own peak resident memory):

1. the *base* part (``n`` records) into an empty library (``evidence db init --empty``);
2. the *main* part (``n`` other records of the same shape) into that library, which now holds ``n``;

and, in the same session, a bare stdlib-sqlite3 loader of the base file (a regex split of its format,
one ``executemany``) as the yardstick. Then one shape (``--scale``; by default the slowest into an
empty library) imports ``2n`` records of its base part into an empty library: the ratio to the ``n``
import shows how the work grows.

Each import writes ``--report FILE`` (JSON: per record its line, action and the study it ended in, the
possible duplicates listed and the pairs the matcher scored). With the ground truth `shapes` keeps for
each record (the id of its true work), a record that is not its work's first copy is a true duplicate:
recall = true duplicates that ended in the same study as their work's first copy / true duplicates;
precision = merged records (any action but ``added``) whose study was made by a record of their own
work / merged records (a merge into a study already in the library is wrong: the parts share no work).
When ``evidence import`` has no ``--report`` these columns say n/a.

Prints a markdown table and writes it to ``bench-out/import.md``. Never a pass/fail test: the verdicts
compare with the targets of issue 9.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _path in (HERE, REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import shapes  # noqa: E402  (sibling modules; this file runs as a script)
from bench_formats import BARE_LOADER, EVIDENCE, MEMORY_TARGET_MB, measure  # noqa: E402

EMPTY_TARGET_S = 20.0
FULL_TARGET_S = 30.0
SCALE_TARGET = 2.2  # 2n records into an empty library, over n records
PRECISION_TARGET = 0.995
RECALL_TARGET = 0.95

# The yardstick for RIS and NBIB, as BARE_LOADER is for BibTeX: split the records with a regex, pick the
# same five fields, one executemany.
BARE_RIS = r"""
import re, sqlite3, sys
text = open(sys.argv[1], encoding="utf-8").read()
tag = re.compile(r"^(TI|AU|T2|PY|DO)  - (.*)$", re.M)
rows = []
for record in re.split(r"^ER  - *$", text, flags=re.M):
    f = {}
    for name, value in tag.findall(record):
        f.setdefault(name, []).append(value)
    if "TI" in f:
        first = lambda name: f.get(name, [None])[0]
        rows.append((first("TI"), " and ".join(f.get("AU", [])), first("T2"), first("PY"), first("DO")))
db = sqlite3.connect(sys.argv[2])
db.execute("CREATE TABLE s (title, author, journal, year, doi)")
db.executemany("INSERT INTO s VALUES (?, ?, ?, ?, ?)", rows)
db.commit()
"""
BARE_NBIB = r"""
import re, sqlite3, sys
text = open(sys.argv[1], encoding="utf-8").read()
tag = re.compile(r"^(TI|FAU|JT|DP|AID)\s*- (.*)$", re.M)
rows = []
for record in re.split(r"\n\s*\n(?=PMID- )", text):
    f = {}
    for name, value in tag.findall(record.replace("\n      ", " ")):
        f.setdefault(name, []).append(value)
    if "TI" in f:
        first = lambda name: f.get(name, [None])[0]
        doi = next((a[:-5].strip() for a in f.get("AID", []) if a.endswith("[doi]")), None)
        rows.append((first("TI"), " and ".join(f.get("FAU", [])), first("JT"), first("DP"), doi))
db = sqlite3.connect(sys.argv[2])
db.execute("CREATE TABLE s (title, author, journal, year, doi)")
db.executemany("INSERT INTO s VALUES (?, ?, ?, ?, ?)", rows)
db.commit()
"""
BARE_LOADERS = {"bibtex": BARE_LOADER, "ris": BARE_RIS, "nbib": BARE_NBIB}


@dataclass
class Score:
    """What an import did with a file's true duplicates, from its ``--report``."""

    merged: int  # records whose action is not "added"
    wrong: int  # of those, merged into a study of another work
    duplicates: int  # true duplicates in the file
    found: int  # of those, in the same study as their work's first copy
    possible: int | None
    pairs_scored: int | None
    unmatched: int  # report lines that start no record of the file (should be 0)
    missing: int  # records of the file the report does not list (should be 0)

    @property
    def precision(self) -> float | None:
        return (self.merged - self.wrong) / self.merged if self.merged else None

    @property
    def recall(self) -> float | None:
        return self.found / self.duplicates if self.duplicates else None


def score(report: dict[str, Any], truth: shapes.Truth) -> Score:
    """Precision and recall of one import against the file's ground truth (see the module docstring)."""
    index_of = {line: i for i, line in enumerate(truth.lines)}
    study_of: list[str | None] = [None] * len(truth.works)
    action_of: list[str | None] = [None] * len(truth.works)
    unmatched = 0
    for entry in report.get("records") or ():
        i = index_of.get(entry.get("line"))
        if i is None:
            unmatched += 1
            continue
        study_of[i], action_of[i] = entry.get("study"), entry.get("action")
    made_by: dict[str, str] = {}  # study -> the work of the record that became it
    for i, action in enumerate(action_of):
        study = study_of[i]
        if action == "added" and study is not None:
            made_by.setdefault(study, truth.works[i])
    first_copy: dict[str, int] = {}
    merged = wrong = duplicates = found = 0
    for i, work in enumerate(truth.works):
        if action_of[i] not in (None, "added"):
            merged += 1
            study = study_of[i]
            if study is None or made_by.get(study) != work:
                wrong += 1
        if work in first_copy:
            duplicates += 1
            if study_of[i] is not None and study_of[i] == study_of[first_copy[work]]:
                found += 1
        else:
            first_copy[work] = i
    work = report.get("work") or {}
    possible = report.get("possible_duplicates")
    return Score(
        merged=merged,
        wrong=wrong,
        duplicates=duplicates,
        found=found,
        possible=len(possible) if isinstance(possible, list) else None,
        pairs_scored=work.get("pairs_scored"),
        unmatched=unmatched,
        missing=action_of.count(None),
    )


@dataclass
class Row:
    label: str  # the shape's file
    into: str  # "empty", "100,000", ...
    records: int
    target_s: float | None
    quality: bool  # whether the precision and recall targets apply
    wall_s: float | None = None
    peak_mb: float | None = None
    bare_s: float | None = None
    score: Score | None = None
    scale: float | None = None  # wall time over the n-record import's (the scale row)
    pairs_ratio: float | None = None  # pairs scored over the n-record import's (the scale row)
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        label = self.label + (f" ({'; '.join(self.notes)})" if self.notes else "")
        if self.wall_s is None or self.peak_mb is None:
            return [label, self.into, f"{self.records:,}", "-", "-", "-", "**FAILED**", "-"] + ["-"] * 5
        if self.scale is not None:
            target = f"<= {SCALE_TARGET:g}x the {self.records // 2:,} import"
            ok = self.scale <= SCALE_TARGET and self.peak_mb <= MEMORY_TARGET_MB
            verdict = f"{self.scale:.2f}x " + ("ok" if ok else "**MISS**")
        else:
            target = f"<= {self.target_s:g} s, <= {MEMORY_TARGET_MB:g} MB"
            ok = (
                self.target_s is not None
                and self.wall_s <= self.target_s
                and self.peak_mb <= MEMORY_TARGET_MB
            )
            verdict = "ok" if ok else "**MISS**"
        bare = f"{self.wall_s / self.bare_s:.1f}x ({self.bare_s:.2f} s)" if self.bare_s else "-"
        merged = precision = recall = possible = pairs = "n/a"
        if self.score is not None:
            s = self.score
            merged = f"{s.merged:,} ({s.wrong:,} wrong)"
            precision = self._rate(s.precision, PRECISION_TARGET, "(none merged)")
            recall = self._rate(s.recall, RECALL_TARGET, "(no duplicates)")
            possible = f"{s.possible:,}" if s.possible is not None else "n/a"
            pairs = f"{s.pairs_scored:,}" if isinstance(s.pairs_scored, int) else "n/a"
            if self.pairs_ratio is not None:
                pairs += f" ({self.pairs_ratio:.2f}x)"
        return [
            label,
            self.into,
            f"{self.records:,}",
            f"{self.wall_s:.2f}",
            f"{self.peak_mb:.0f}",
            target,
            verdict,
            bare,
            merged,
            precision,
            recall,
            possible,
            pairs,
        ]

    def _rate(self, value: float | None, target: float, none: str) -> str:
        if value is None:
            return "-" + (f" {none}" if self.quality else "")
        text = f"{100 * value:.2f}%"
        if self.quality:
            text += " ok" if value >= target else " **MISS**"
        return text


def has_report_option(env: dict[str, str]) -> bool:
    """Whether this `evidence import` writes a JSON report (`--report FILE`)."""
    done = subprocess.run(
        [EVIDENCE, "import", "--help"], env=env, capture_output=True, text=True, check=False
    )
    return "--report" in done.stdout


class Session:
    """One benchmark run: a scratch folder, an empty library to copy, the `evidence` environment."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {**os.environ, "EVIDENCE_HOME": str(work / "home")}
        self.env.pop("EVIDENCE_DB", None)
        self.reports = has_report_option(self.env)
        self.empty = work / "empty.db"
        subprocess.run(
            [EVIDENCE, "--db", str(self.empty), "db", "init", "--empty"],
            env=self.env,
            check=True,
            capture_output=True,
        )

    def fresh_library(self, name: str) -> Path:
        db = self.work / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.empty}{suffix}")
            if source.exists():
                shutil.copyfile(source, f"{db}{suffix}")
        return db

    def drop_library(self, db: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)

    def import_file(
        self, row: Row, db: Path, made: shapes.Generated, fmt: str, *, dry_run: bool = False
    ) -> None:
        """Import a file into a library, filling the row's time, memory and score."""
        report = self.work / "report.json"
        report.unlink(missing_ok=True)
        args = [EVIDENCE, "--db", str(db), "import", str(made.path), "--format", fmt, "--quiet"]
        args += ["--dry-run"] if dry_run else []
        if self.reports:
            args += ["--report", str(report)]
        try:
            row.wall_s, row.peak_mb = measure(args, env=self.env)
        except RuntimeError as exc:
            row.notes.append(str(exc).strip().splitlines()[-1][:200])
            return
        if self.reports:
            row.score = score(json.loads(report.read_text(encoding="utf-8")), made.truth())
            if row.score.unmatched or row.score.missing:
                row.notes.append(
                    f"report: {row.score.unmatched} lines start no record, {row.score.missing} records "
                    f"not listed"
                )

    def bare(self, made: shapes.Generated, fmt: str) -> float:
        target = self.work / "bare.db"
        target.unlink(missing_ok=True)
        wall, _ = measure(
            [sys.executable, "-c", BARE_LOADERS[fmt], str(made.path), str(target)], env=self.env
        )
        target.unlink(missing_ok=True)
        return wall


def run(n: int, labels: list[str], out_dir: Path, scale: str) -> str:
    files = [spec for spec in shapes.FILES if spec.label in labels]
    started = time.perf_counter()
    generated = 0.0
    rows: list[Row] = []
    by_label: dict[str, Row] = {}
    with tempfile.TemporaryDirectory(prefix="bench-import-", dir=out_dir) as tmp:
        session = Session(Path(tmp))
        for spec in files:
            base = shapes.generate(spec, n, "base", out_dir)
            main = shapes.generate(spec, n, "main", out_dir)
            generated += base.seconds + main.seconds
            print(f"== {spec.label}: importing {n:,} + {n:,} records", file=sys.stderr, flush=True)
            db = session.fresh_library(spec.label)
            empty = Row(spec.label, "empty", n, EMPTY_TARGET_S, spec.quality)
            session.import_file(empty, db, base, spec.fmt)
            empty.bare_s = session.bare(base, spec.fmt)
            full = Row(spec.label, f"{n:,}", n, FULL_TARGET_S, spec.quality, bare_s=empty.bare_s)
            if empty.wall_s is not None:
                session.import_file(full, db, main, spec.fmt)
            else:
                full.notes.append("no library: the import into an empty one failed")
            session.drop_library(db)
            rows += [empty, full]
            by_label[spec.label] = empty
        measured = {label: row for label, row in by_label.items() if row.wall_s is not None}
        if scale == "auto" and measured:
            scale = max(measured, key=lambda label: measured[label].wall_s or 0.0)
        if scale in measured:
            spec = next(s for s in files if s.label == scale)
            double = shapes.generate(spec, 2 * n, "base", out_dir)
            generated += double.seconds
            print(f"== {spec.label}: importing {2 * n:,} records", file=sys.stderr, flush=True)
            db = session.fresh_library(f"{spec.label}-double")
            row = Row(spec.label, "empty", 2 * n, None, spec.quality)
            session.import_file(row, db, double, spec.fmt)
            session.drop_library(db)
            # --dry-run does all the work and rolls back: it reports the merges in the same budget.
            dry = Row(spec.label, "empty, --dry-run", n, EMPTY_TARGET_S, spec.quality)
            db = session.fresh_library(f"{spec.label}-dry")
            session.import_file(dry, db, shapes.generate(spec, n, "base", out_dir), spec.fmt, dry_run=True)
            session.drop_library(db)
            row.bare_s = session.bare(double, spec.fmt)
            single = measured[scale]
            if row.wall_s is not None and single.wall_s:
                row.scale = row.wall_s / single.wall_s
                double_pairs = row.score.pairs_scored if row.score else None
                single_pairs = single.score.pairs_scored if single.score else None
                if isinstance(double_pairs, int) and isinstance(single_pairs, int) and single_pairs:
                    row.pairs_ratio = double_pairs / single_pairs
            rows += [row, dry]
    return render(rows, n, session.reports, generated, time.perf_counter() - started)


def render(rows: list[Row], n: int, reports: bool, generated: float, total: float) -> str:
    lines = [
        f"## Import: generated shapes, {n:,} records per file",
        "",
        "Every import is a fresh `evidence` process (peak = its own largest resident memory, or that of "
        f"any one of its workers). *into empty*: the file's base part into an empty library; *into {n:,}*: "
        f"another {n:,} records of the same shape (no work in common) into that library. The last row "
        f"imports twice as many records of one shape into an empty library; its ratio is to the {n:,} "
        "import's (the pairs scored too). *to bare*: wall time over a bare sqlite3 loader of the same "
        "base file, run in the same session. *merged*: records the import merged (wrong: into a study "
        "of another work); precision and recall are against the ground truth of `tests/bench/shapes.py` "
        f"(targets on e and f: >= {100 * PRECISION_TARGET:g}% and >= {100 * RECALL_TARGET:g}%); "
        "*possible dups*: the possible duplicates the report lists; *pairs scored*: the matcher's work "
        "(`work.pairs_scored`). "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}; the run took {total:.0f} s"
        + (f" ({generated:.0f} s generating files)." if generated else " (files reused)."),
        "",
    ]
    if not reports:
        lines += [
            "`evidence import` has no `--report` yet: precision, recall and the matcher's work are n/a.",
            "",
        ]
    lines += [
        "| shape | into | records | wall s | peak MB | target | verdict | to bare | merged | precision | "
        "recall | possible dups | pairs scored |",
        "|---|---|---:|---:|---:|---|---|---|---:|---|---|---:|---:|",
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000, help="records per file (default 100,000)")
    parser.add_argument(
        "--shapes", default=",".join(shapes.SHAPES), help="shapes to run, comma-separated (default all: a-f)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench-out", help="output folder")
    parser.add_argument(
        "--scale",
        default="auto",
        help="file to import at 2n records (a, b, c, d, e, f-nbib, f-ris; auto: the slowest into an empty "
        "library; none: skip)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    wanted = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = sorted(set(wanted) - {*shapes.SHAPES, *(f.label for f in shapes.FILES)})
    if unknown:
        raise SystemExit(f"unknown shape: {', '.join(unknown)} (known: {', '.join(shapes.SHAPES)})")
    labels = [f.label for f in shapes.FILES if f.shape in wanted or f.label in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    table = run(args.n, labels, args.out, args.scale)
    (args.out / "import.md").write_text(table, encoding="utf-8")
    print(table)
    return table


if __name__ == "__main__":
    main()
