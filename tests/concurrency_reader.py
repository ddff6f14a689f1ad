"""A clinician reading while others write: `find` or `export` in a loop until a stop file appears.

    python tests/concurrency_reader.py find|export STOP_FILE

Every study it sees whose title starts "Concurrent trial" must be whole: its author and year with it
(they are written in one transaction). Prints one JSON object: how many reads, what was wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from click.testing import CliRunner

from cli import cli


def main() -> None:
    kind, stop = sys.argv[1], Path(sys.argv[2])
    runner = CliRunner()
    reads, problems = 0, []
    args = (
        ["find", "--text", "concurrent trial", "--format", "json"]
        if kind == "find"
        else ["export", "--to", "csljson"]
    )
    while not stop.exists() or reads == 0:
        result = runner.invoke(cli, args, catch_exceptions=True)
        reads += 1
        if result.exit_code != 0 or (result.stderr.strip() and "exported" not in result.stderr):
            problems.append({"exit": result.exit_code, "stderr": result.stderr[-500:]})
            continue
        for item in json.loads(result.stdout or "[]"):
            title = item.get("title") or ""
            if not title.startswith("Concurrent trial"):
                continue
            authors = item.get("authors") if kind == "find" else item.get("author")
            year = item.get("year") if kind == "find" else (item.get("issued") or {}).get("date-parts")
            if not authors or not year:
                problems.append({"half-written": title, "authors": authors, "year": year})
    print(json.dumps({"reader": kind, "reads": reads, "problems": problems[:20]}))


if __name__ == "__main__":
    main()
