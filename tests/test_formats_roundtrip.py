"""Export -> import per format loses no field that the format can carry (seed library + hard cases)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from evidence.formats import EXPORTERS, IMPORTERS
from evidence.formats.common import StudyRow

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def seed_studies() -> list[StudyRow]:
    studies: list[StudyRow] = json.loads((FIXTURES / "seed_studies.json").read_text(encoding="utf-8"))
    return studies


def hard_studies() -> list[StudyRow]:
    """Studies built to break naive exporters: LaTeX specials, non-ASCII, organisations, retraction."""
    return [
        {
            "id": 901,
            "citekey": "muller2020effects",
            "doi": "10.1016/j.jbmt.2020.01.001_x",
            "pmid": "31234567",
            "pmcid": "PMC7000001",
            "title": (
                "Effects of IASTM & Graston\u00ae on 100% of {braced} cases: $5 #1 a_b ~x ^y \\z in "
                "M\u00fcller's \u0141\u00f3d\u017a cohort \u2013 a McKenzie comparison"
            ),
            "authors": [
                {"family": "M\u00fcller", "given": "J\u00fcrgen", "orcid": "0000-0002-1825-0097"},
                {"family": "\u0141ukasiewicz", "given": "\u00c9milie", "orcid": None},
                {"name": "IASTM Consensus Group & Partners"},
                {"family": "van der Berg", "given": "Anna", "orcid": None},
                {"family": "O'Brien", "given": None, "orcid": None},
            ],
            "journal": "Journal of Bodywork & Movement Therapies",
            "issn": "1360-8592",
            "publisher": "Elsevier BV",
            "year": 2020,
            "volume": "24",
            "issue": "2",
            "pages": "e101-e110",
            "article_number": "e0123456",
            "publication_type": "journal-article",
            "abstract": "Background: 50% of patients.\nMethods: an RCT.",
            "url": "https://example.org/a_b?x=1&y=2",
            "language": "de",
            "design": "rct",
            "level": 2,
            "population": "human",
            "condition": "chronic neck pain, non-specific",
            "body_region": "neck",
            "sample_size": 64,
            "pedro": 8,
            "mechanisms": ["neural-stimulation", "adhesion-breakdown"],
            "claims": [
                {
                    "claim": "pain-modulation",
                    "mechanism": "neural-stimulation",
                    "stance": "supports",
                    "finding": "NPRS fell by 2.1 points (95% CI 1.2 to 3.0); effect gone at 4 weeks.",
                },
                {
                    "claim": "tissue-density",
                    "mechanism": "adhesion-breakdown",
                    "stance": "contradicts",
                    "finding": "Shear-wave stiffness unchanged.",
                },
                {
                    "claim": "proprioception",
                    "mechanism": "neural-stimulation",
                    "stance": "no-effect",
                    "finding": None,
                },
            ],
            "tags": ["graston", "neck", "follow-up:4w"],
            "notes": "=cmd|' /C calc'!A0\nSecond line of notes.",
            "citations": 3,
            "status": "retracted",
            "updates": [
                {
                    "type": "retraction",
                    "doi": "10.1016/j.jbmt.2021.99.999",
                    "date": "2021-05-01",
                    "source": "retraction-watch",
                },
                {
                    "type": "correction",
                    "doi": "10.1016/j.jbmt.2020.88.888",
                    "date": "2020-09-01",
                    "source": "crossref",
                },
            ],
        },
        {
            "id": 902,
            "citekey": None,
            "doi": None,
            "pmid": None,
            "pmcid": None,
            "title": "-2 degrees: @home treatment +plus",
            "authors": [{"name": "World Health Organization"}],
            "journal": None,
            "issn": None,
            "publisher": None,
            "year": None,
            "volume": None,
            "issue": None,
            "pages": None,
            "article_number": None,
            "publication_type": "journal-article",
            "abstract": None,
            "url": None,
            "language": None,
            "design": None,
            "level": None,
            "population": None,
            "condition": None,
            "body_region": None,
            "sample_size": None,
            "pedro": None,
            "mechanisms": [],
            "claims": [],
            "tags": [],
            "notes": None,
            "citations": None,
            "status": "expression-of-concern",
            "updates": [],
        },
    ]


# What each format cannot carry (so the comparison skips it).
NOT_CARRIED: dict[str, set[str]] = {
    "bibtex": {"id", "citations", "orcid"},
    "biblatex": {"id", "citations", "orcid"},
    "ris": {"id", "citations", "orcid"},
    "csljson": {"id"},
    "csv": set(),
}


def normalise(study: StudyRow, fmt: str, *, exported_key: str | None) -> dict[str, Any]:
    drop = NOT_CARRIED[fmt]
    out = {k: copy.deepcopy(v) for k, v in study.items() if k not in drop and k != "_line"}
    if "citekey" in out:
        out["citekey"] = exported_key
    for index, author in enumerate(out.get("authors") or []):
        if "orcid" in drop:
            author.pop("orcid", None)
        if fmt in ("bibtex", "biblatex") and " " in (author.get("family") or "") and not author.get("given"):
            # BibTeX cannot tell "{Family Name}" without a given name from an organisation.
            out["authors"][index] = {"name": author["family"]}
    for key in ("mechanisms", "claims", "tags", "updates"):
        out[key] = out.get(key) or []
    out["status"] = out.get("status") or "ok"
    return out


@pytest.mark.parametrize("fmt", ["bibtex", "biblatex", "ris", "csljson", "csv"])
def test_round_trip_loses_nothing_the_format_carries(fmt: str) -> None:
    studies = seed_studies() + hard_studies()
    buffer = io.StringIO()
    assert EXPORTERS[fmt](studies, buffer) == len(studies)
    reader = IMPORTERS["bibtex" if fmt == "biblatex" else fmt]
    back = list(reader(io.StringIO(buffer.getvalue()), f"export.{fmt}"))
    assert len(back) == len(studies)
    for original, imported in zip(studies, back, strict=True):
        # A study without a citekey gets a made-up one (family + year + first title word) in every format
        # that needs keys; CSV carries the column as it is.
        expected_key = original["citekey"] or (None if fmt == "csv" else "worlddegrees")
        expected = normalise(original, fmt, exported_key=expected_key)
        got = normalise(imported, fmt, exported_key=imported.get("citekey"))
        for key in expected:
            assert got.get(key) == expected[key], f"{fmt} {original['citekey']}: {key}"


def test_line_numbers_point_at_each_record() -> None:
    studies = seed_studies()[:3]
    for fmt in ("bibtex", "ris", "csljson", "csv"):
        buffer = io.StringIO()
        EXPORTERS[fmt](studies, buffer)
        lines = buffer.getvalue().split("\n")
        for study in IMPORTERS[fmt](io.StringIO(buffer.getvalue()), "x"):
            first = lines[study["_line"] - 1]
            assert study["citekey"] in first or first.startswith(("TY  - ", "{")), (fmt, first)


NASTY_NOTE = (
    "First line of the curator's note.\n"
    "ER  - \n"
    "TY  - JOUR\n"
    "\n"
    "@article{x,\n"
    "Sample size: 12\n"
    "Finding on pain-modulation (supports): not really ours\n"
    "N1  - last"
)


@pytest.mark.parametrize("fmt", ["ris", "csljson"])
def test_a_nasty_multi_line_note_round_trips(fmt: str) -> None:
    study = copy.deepcopy(seed_studies()[0])
    study["notes"] = NASTY_NOTE
    study["abstract"] = "Background.\nER  - \n  TY  - JOUR\nEnd."
    buffer = io.StringIO()
    EXPORTERS[fmt]([study], buffer)
    (back,) = IMPORTERS[fmt](io.StringIO(buffer.getvalue()), f"x.{fmt}")
    # RIS values are trimmed by every reader (ours and rispy): a note line keeps its text, not its
    # trailing spaces.
    expected = "\n".join(line.rstrip() for line in NASTY_NOTE.split("\n")) if fmt == "ris" else NASTY_NOTE
    assert back["notes"] == expected
    assert back["abstract"] == study["abstract"]
    assert back["claims"] == study["claims"] and back["sample_size"] == study["sample_size"]


def test_ris_nasty_note_is_one_n1_per_line_for_rispy() -> None:
    import rispy

    study = copy.deepcopy(seed_studies()[0])
    study["notes"] = NASTY_NOTE
    text = io.StringIO()
    EXPORTERS["ris"]([study, seed_studies()[1]], text)
    entries = rispy.loads(text.getvalue())
    assert len(entries) == 2  # nothing in the note ended the record or started another
    notes = entries[0]["notes"]
    tail = notes[notes.index("Notes: First line of the curator's note.") :]
    lines = [line.rstrip() for line in NASTY_NOTE.split("\n")]
    assert tail == ["Notes: " + lines[0], *lines[1:]]


def test_ris_mixed_a1_and_au_keep_the_file_order() -> None:
    text = "TY  - JOUR\nTI  - T\nA1  - First, A\nAU  - Second, B\nA1  - Third, C\nAU  - Fourth, D\nER  - \n"
    (study,) = IMPORTERS["ris"](io.StringIO(text), "x.ris")
    assert [a["family"] for a in study["authors"]] == ["First", "Second", "Third", "Fourth"]
