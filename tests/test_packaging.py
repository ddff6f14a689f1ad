"""A plain `pip install .` must carry cli.py, the migrations and the seed library."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_wheel_contains_cli_migrations_and_seed_data(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("evidence-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cli.py" in names
    assert "evidence/seed_data/studies.json" in names
    assert "evidence/store/migrations/env.py" in names
    assert "evidence/store/migrations/script.py.mako" in names
    assert "evidence/store/migrations/versions/0001_initial_schema.py" in names
    assert "evidence/report/templates/report.html.j2" in names
    assert "evidence/report/templates/report.css" in names
    for package in ("crossref", "enrich", "formats", "report", "store", "watch"):
        assert f"evidence/{package}/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "evidence = cli:cli" in zipfile.ZipFile(wheel).read(entry_points).decode()
