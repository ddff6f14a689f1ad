"""Small helpers shared by the CLI tests."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from click.testing import CliRunner, Result

from cli import cli


def run(*args: str, input: str | None = None, expect: int | None = 0) -> Result:
    """Invoke the CLI in-process; assert the exit code unless ``expect`` is None."""
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--format", "json").stdout)


def modules_imported_by(code: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of `candidates` are in sys.modules after running `code` in a fresh interpreter."""
    check = f"{code}\nimport sys\nprint(','.join(m for m in {candidates!r} if m in sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    return [m for m in result.stdout.strip().split(",") if m]
