"""The installed `evidence` command as a real subprocess on a temporary database."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def evidence(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("evidence", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, str(Path(__file__).parent.parent / "cli.py")]
    result = subprocess.run(
        [*command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check:
        assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    environ["EVIDENCE_HOME"] = str(tmp_path / "home")
    environ["EVIDENCE_DB"] = str(tmp_path / "e2e.db")
    return environ


def test_fresh_library_query_edit_and_errors(env: dict[str, str], tmp_path: Path) -> None:
    rows = json.loads(
        evidence("find", "--mechanism", "inflammatory-healing", "--format", "json", env=env).stdout
    )
    assert rows and all("inflammatory-healing" in r["mechanisms"] for r in rows)
    assert (tmp_path / "e2e.db").exists()

    evidence(
        "add",
        "--title",
        "Scraping and calf perfusion",
        "--author",
        "Roe, R",
        "--year",
        "2024",
        "--design",
        "case-series",
        "--population",
        "human",
        "--claim",
        "blood-flow",
        "--stance",
        "supports",
        env=env,
    )
    shown = json.loads(evidence("show", "roe2024scraping", "--format", "json", env=env).stdout)
    assert shown["level"] == 4

    bad = evidence("add", "--title", "x", "--pedro", "12", env=env, check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "Error: PEDro score must be from 0 to 10, not 12"
    assert "Traceback" not in bad.stderr

    usage = evidence("find", "--stance", "sort-of", env=env, check=False)
    assert usage.returncode == 2 and "supports" in usage.stderr

    # No stdin in CI: remove without --yes must refuse, not hang, and change nothing.
    refused = evidence("remove", "roe2024scraping", env=env, check=False)
    assert refused.returncode == 1
    evidence("show", "roe2024scraping", env=env)


def test_help_lists_every_command(env: dict[str, str]) -> None:
    out = evidence("--help", env=env).stdout
    for name in (
        "find",
        "show",
        "add",
        "edit",
        "remove",
        "tag",
        "untag",
        "link",
        "unlink",
        "note",
        "mechanisms",
        "claims",
        "summary",
        "db",
    ):
        assert f"  {name}" in out


def test_export_to_stdout_is_utf8_whatever_the_terminal_encoding(env: dict[str, str]) -> None:
    """A citation file is UTF-8 (biber, Zotero and pandoc read it so), also on a latin-1 or ASCII stdout."""
    expected = evidence("export", "--to", "biblatex", env=env).stdout
    assert not expected.isascii()  # accented names: the bytes below would differ if re-encoded
    for encoding in ("latin-1", "ascii"):
        result = subprocess.run(
            [sys.executable, str(Path(__file__).parent.parent / "cli.py"), "export", "--to", "biblatex"],
            env={**env, "PYTHONIOENCODING": encoding},
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=True,
        )
        assert result.stdout.decode("utf-8") == expected
