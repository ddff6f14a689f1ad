"""One clinician of the concurrency test: 25 writes through the CLI, each a command of its own.

    python tests/concurrency_worker.py WORKER TARGETS_JSON [edit]

EVIDENCE_DB and EVIDENCE_CROSSREF_URL come from the environment. Each command runs as a user would run
it (click's runner, a new engine each time); the worker prints one JSON object: the commands that
failed, with what the user saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from click.testing import CliRunner

from cli import cli

WRITES = 25


def commands(worker: int, targets: dict[str, list[str]], *, edit: bool = False) -> list[list[str]]:
    """Five of each kind of write, interleaved. Every worker notes, tags and enriches the same studies,
    and adds studies whose citekeys collide (same author, year and first title word). With ``edit``,
    the fifth write edits the study the worker just added (found by its DOI) instead of enriching."""
    shared = targets["shared"][0]
    out: list[list[str]] = []
    for k in range(WRITES // 5):
        n = f"w{worker}-{k}"
        added = ["add", "--title", f"Concurrent trial {n}", "--author", "Doe, Jane", "--year", "2024"]
        out.append([*added, "--doi", f"10.5555/concurrent.{n}"] if edit else added)
        out.append(
            ["link", targets["link"][worker * 5 + k], "--claim", "pain-modulation", "--stance", "mixed"]
        )
        out.append(["tag", shared, "-t", f"tag-{n}"])
        out.append(["note", shared, "-m", f"note {n}"])
        if edit:
            out.append(["edit", f"10.5555/concurrent.{n}", "--pages", f"{k + 1}-{k + 9}"])
        else:
            out.append(["enrich", targets["enrich"][k], "--quiet"])
    return out


def main() -> None:
    worker, targets = int(sys.argv[1]), json.loads(sys.argv[2])
    edit = sys.argv[3:] == ["edit"]
    runner = CliRunner()
    failures = []
    for args in commands(worker, targets, edit=edit):
        result = runner.invoke(cli, args, catch_exceptions=True)
        problem = result.exit_code != 0 or "Error" in result.stderr or result.exception is not None
        if problem:
            failures.append({"args": args, "exit": result.exit_code, "stderr": result.stderr[-500:]})
    print(json.dumps({"worker": worker, "failures": failures}))


if __name__ == "__main__":
    main()
