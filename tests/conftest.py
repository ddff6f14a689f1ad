"""Shared fixtures: every test runs against its own EVIDENCE_HOME, never the user's data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "evidence-home"
    home.mkdir()
    monkeypatch.setenv("EVIDENCE_HOME", str(home))
    for name in ("EVIDENCE_DB", "EVIDENCE_MAILTO", "EVIDENCE_CROSSREF_URL", "EVIDENCE_CROSSREF_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    yield home
