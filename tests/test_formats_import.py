"""Importers: NBIB (continuation lines, publication types), BibTeX grammar, malformed files naming the
line, format detection, and the layout rules of evidence.formats."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from evidence.errors import ImportFormatError
from evidence.formats import IMPORTERS, detect_format, read_file
from evidence.formats.nbib import design_for_publication_types
from tests.helpers import modules_imported_by

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def read(fmt: str, text: str) -> list[dict[str, Any]]:
    return list(IMPORTERS[fmt](io.StringIO(text), f"sample.{fmt}"))


# --- NBIB ----------------------------------------------------------------------------------------


def test_nbib_sample_with_continuation_lines_and_publication_types() -> None:
    studies = list(read_file(FIXTURES / "pubmed_sample.nbib"))
    assert [s["pmid"] for s in studies] == ["22851875", "21276190", "30797743", "22196431"]
    assert [s["_line"] for s in studies] == [1, 32, 54, 73]
    bayliss, braun, nazari, bove = studies
    assert bayliss["title"] == (
        "Treatment of a patient with post-natal chronic calf pain utilizing instrument-assisted soft tissue "
        "mobilization: a case study."
    )
    assert bayliss["abstract"].endswith("pain and function improved.")
    assert bayliss["authors"][0] == {"family": "Bayliss", "given": "Amy J", "orcid": None}
    assert bayliss["authors"][3] == {"family": "Loghmani", "given": "M Terry", "orcid": None}
    assert len(bayliss["authors"]) == 4  # FAU, not FAU + AU
    assert bayliss["journal"] == "The Journal of manual & manipulative therapy"
    assert (bayliss["year"], bayliss["volume"], bayliss["issue"]) == (2011, "19", "3")
    assert bayliss["pages"] == "127-134"  # PubMed's 127-34 expanded
    assert bayliss["doi"] == "10.1179/2042618611Y.0000000006"
    assert bayliss["issn"] == "1066-9817" and bayliss["pmcid"] == "PMC0000001" and bayliss["language"] == "en"
    assert (bayliss["design"], bayliss["level"]) == ("case-report", 4)
    assert (braun["design"], braun["level"], braun["population"]) == ("rct", 2, "human")
    assert braun["pages"] == "362-369" and braun["authors"][1]["family"] == "Lüdtke"
    assert nazari["design"] == "systematic-review" and nazari["doi"] == "10.1016/j.apmr.2019.01.017"
    assert nazari["title"].endswith("in Athletes: A Systematic Review.")
    assert bove["design"] is None and bove["population"] == "animal"
    assert bove["authors"] == [
        {"family": "Bove", "given": "GM", "orcid": None},
        {"family": "Chapelle", "given": "SL", "orcid": None},
        {"name": "Example Adhesion Study Group"},
    ]


@pytest.mark.parametrize(
    ("types", "design"),
    [
        (["Journal Article", "Randomized Controlled Trial"], "rct"),
        (["Clinical Trial", "Randomized Controlled Trial"], "rct"),
        (["Controlled Clinical Trial"], "non-randomised-controlled-trial"),
        (["Clinical Trial"], "non-randomised-controlled-trial"),
        (["Review", "Systematic Review"], "systematic-review"),
        (["Meta-Analysis"], "systematic-review"),
        (["Review"], "narrative-review"),
        (["Case Reports"], "case-report"),
        (["Observational Study"], "cohort"),
        (["Editorial"], "expert-opinion"),
        (["Journal Article", "Comparative Study"], None),
    ],
)
def test_publication_type_to_design(types: list[str], design: str | None) -> None:
    assert design_for_publication_types(types) == design


# --- BibTeX grammar ------------------------------------------------------------------------------

GRAMMAR = r"""
Text outside entries is a comment.
@string{jbmt = "Journal of Bodywork and Movement Therapies"}
@comment{ignored @article{not, title={x}} }
@preamble{"\newcommand{\noopsort}[1]{}"}
@Article(paren2012,
  Author = "Smith, John and {\"O}zt{\"u}rk, Ay{\c{s}}e and {Clinical Group}",
  TITLE = "A {"}quoted{"} title on {IASTM}",
  journal = jbmt,
  year = 2012,
  month = mar,
  pages = "10--20",
  note = "Printed " # jbmt # " note",
)
@misc{nofields,
  title = {Only a title},
}
@article{last,
  title = {Line one
    @continues here},
  author = {Doe, Jane}}
"""


def test_bibtex_grammar_subset() -> None:
    paren, misc, last = read("bibtex", GRAMMAR)
    assert paren["citekey"] == "paren2012" and paren["_line"] == 6
    assert paren["authors"] == [
        {"family": "Smith", "given": "John", "orcid": None},
        {"family": "Öztürk", "given": "Ayşe", "orcid": None},
        {"name": "Clinical Group"},
    ]
    assert paren["title"] == 'A "quoted" title on IASTM'
    assert paren["journal"] == "Journal of Bodywork and Movement Therapies"
    assert paren["year"] == 2012 and paren["pages"] == "10-20"
    assert paren["notes"] == "Printed Journal of Bodywork and Movement Therapies note"
    assert misc["title"] == "Only a title" and misc["publication_type"] is None
    assert last["title"] == "Line one @continues here" and last["_line"] == 18


@pytest.mark.parametrize(
    ("fmt", "text", "line", "expected"),
    [
        (
            "bibtex",
            "@article{a,\n  title = {ok},\n  year = {2011}\n  pages = {1}\n}\n",
            3,
            "expected ',' or '}'",
        ),
        ("bibtex", "@article{a,\n  title = {never closed,\n  year = 2011,\n", 1, "never closed"),
        ("bibtex", "\n\n@article{a,\n  author = {X, Y},\n}\n", 3, "no title"),
        ("bibtex", "@article{a,\n  title = {t},\n  year = {soon},\n}\n", 1, "four-digit year"),
        ("bibtex", "@article{a,\n  title = {t},\n  = {x},\n}\n", 3, "field = value"),
        ("ris", "TY  - JOUR\nTI  - a\nER  - \nAU  - Smith, J\n", 4, "expected 'TY  - '"),
        ("ris", "TY  - JOUR\nTI  - a\n\nTY  - JOUR\nER  - \n", 4, "no 'ER  - '"),
        ("ris", "TY  - JOUR\nAU  - Smith, J\nER  - \n", 1, "no title"),
        ("ris", "TY  - JOUR\nTI  - a\n", 1, "never closed"),
        ("ris", "garbage first line\n", 1, "tagged line"),
        ("csljson", '[\n {"id": "a", "title": "t"},\n {"id": "b"}\n]', 3, "no 'title'"),
        ("csljson", '[\n {"id": "a", "title": "t"}\n {"id": "b"}\n]', 3, "expected ',' or ']'"),
        ("csljson", '[\n {"id": "a", "title": "t",\n]', 3, "invalid JSON"),
        ("csljson", '[\n {"id": "a", "title": "t", "author": "Smith"}\n]', 2, "list of names"),
        ("csljson", "<html>", 1, "CSL-JSON array"),
        ("nbib", "PMID- 1\nTI  - t\n\nTI  - orphan\n", 4, "expected 'PMID- '"),
        ("nbib", "PMID- 1\nnot a tag line\n", 2, "MEDLINE line"),
        ("nbib", "PMID- 1\nAU  - Smith J\n", 1, "no title"),
        ("csv", "citekey,doi\nx,10.1/x\n", 1, "'title' column"),
        ("csv", "title,year\nA,2011\nB,twenty\n", 3, "whole number"),
        ("csv", "title,year\nA,2011,extra\n", 2, "expected 2 cells"),
        ("csv", "", 1, "empty"),
    ],
)
def test_malformed_input_names_the_line(fmt: str, text: str, line: int, expected: str) -> None:
    with pytest.raises(ImportFormatError, match=expected) as caught:
        read(fmt, text)
    assert caught.value.line == line
    assert caught.value.path == f"sample.{fmt}"
    assert str(caught.value).startswith(f"sample.{fmt}:{line}: ")


def test_foreign_ris_and_csljson() -> None:
    ris = (
        "TY  - JOUR\nT1  - Foreign title\nA1  - Doe, Jane\nJF  - Some Journal\nY1  - 2019///\n"
        "SP  - 5-9\nDO  - https://doi.org/10.1/ABC\nKW  - Massage\nN1  - Epub ahead of print.\nER  - \n"
    )
    (study,) = read("ris", ris)
    assert study["title"] == "Foreign title" and study["journal"] == "Some Journal" and study["year"] == 2019
    assert study["pages"] == "5-9" and study["doi"] == "10.1/ABC" and study["tags"] == ["Massage"]
    assert study["notes"] == "Epub ahead of print." and study["status"] == "ok"
    csl = (
        '[{"id": "X1", "type": "article-journal", "title": "T", "issued": {"date-parts": [["2018", 5]]},'
        ' "author": [{"family": "Beethoven", "given": "L", "non-dropping-particle": "van"}],'
        ' "keyword": "IASTM, fascia", "note": "PMID: 123"}]'
    )
    (item,) = read("csljson", csl)
    assert item["year"] == 2018 and item["authors"][0]["family"] == "van Beethoven"
    assert item["tags"] == ["IASTM", "fascia"] and item["notes"] == "PMID: 123" and item["citekey"] == "X1"


def test_importers_stream() -> None:
    """A reader yields the first record before it has read the rest of the file."""
    for fmt, first, broken in (
        ("bibtex", "@article{a, title={A}}\n", "@article{b, title={B}\n"),
        ("ris", "TY  - JOUR\nTI  - A\nER  - \n", "TY  - JOUR\nTI  - B\n"),
        ("nbib", "PMID- 1\nTI  - A\n\n", "PMID- 2\nnonsense\n"),
    ):
        records = IMPORTERS[fmt](io.StringIO(first + broken), "x")
        assert next(records)["title"] == "A"
        with pytest.raises(ImportFormatError):
            next(records)


# --- detection -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head", "fmt"),
    [
        ("refs.txt", "% exported\n@article{a,\n title={x}}", "bibtex"),
        ("refs.txt", "\ufeffTY  - JOUR\nTI  - x\n", "ris"),
        ("pubmed.txt", "PMID- 22851875\nOWN - NLM\n", "nbib"),
        ("refs.bib", '[{"id": "a", "title": "x"}]', "csljson"),
        ("export.dat", "id,citekey,doi,title\n1,a,,x\n", "csv"),
        ("empty.ris", "", "ris"),
    ],
)
def test_detect_format_from_content(name: str, head: str, fmt: str) -> None:
    assert detect_format(name, head) == fmt


def test_detect_format_unknown() -> None:
    with pytest.raises(ImportFormatError, match="could not recognise"):
        detect_format("notes.txt", "Dear colleague,\nplease find attached")


def test_read_file_detects_and_reads(tmp_path: Path) -> None:
    path = tmp_path / "download.txt"
    path.write_text("TY  - JOUR\nTI  - Detected\nER  - \n", encoding="utf-8")
    assert [s["title"] for s in read_file(path)] == ["Detected"]
    path.write_bytes(b"TY  - JOUR\nTI  - \xff\xfe\nER  - \n")
    with pytest.raises(ImportFormatError, match="UTF-8"):
        list(read_file(path, "ris"))


# --- layout --------------------------------------------------------------------------------------


def test_formats_import_no_heavy_or_forbidden_modules() -> None:
    heavy = ("click", "sqlalchemy", "evidence.store.models", "pandas", "citeproc", "bibtexparser", "rispy",
             "pylatexenc", "openpyxl", "xlsxwriter", "urllib.request")  # fmt: skip
    assert modules_imported_by("import evidence.formats, evidence.formats.cite", heavy) == []


@pytest.mark.parametrize(
    ("keyword", "field", "value"),
    [
        ("mechanism:neural-stimulation", "mechanisms", ["neural-stimulation"]),
        ("design:rct", "design", "rct"),
        ("level:2", "level", 2),
        ("pedro:7", "pedro", 7),
        ("population:animal", "population", "animal"),
        ("status:retracted", "status", "retracted"),
        ("tag:a:b", "tags", ["a:b"]),
    ],
)
def test_our_own_keywords_are_read(keyword: str, field: str, value: Any) -> None:
    (study,) = read("ris", f"TY  - JOUR\nTI  - T\nKW  - {keyword}\nER  - \n")
    assert study[field] == value


@pytest.mark.parametrize(
    "keyword",
    [
        "Population: older adults",
        "Design: survey",
        "Status: post-operative",
        "Claim: unproven",
        "Mechanism: unknown",
        "mechanism:unknown",
        "design:survey",
        "status:post-operative",
        "claim:unproven",
        "claim:pain-modulation:perhaps",
        "level:0",
        "level:two",
        "pedro:11",
        "population:older adults",
        "design: rct",
    ],
)
def test_keywords_that_only_look_like_ours_stay_tags(keyword: str) -> None:
    (study,) = read("ris", f"TY  - JOUR\nTI  - T\nKW  - {keyword}\nER  - \n")
    assert study["tags"] == [keyword]
    assert study["mechanisms"] == [] and study["claims"] == [] and study["status"] == "ok"
    assert (study["design"], study["level"], study["pedro"], study["population"]) == (None, None, None, None)


def test_note_lines_that_only_look_like_ours_stay_notes() -> None:
    notes = [
        "Finding on MRI: fascia thickened",
        "Sample size: about 40",
        "Finding on fascial-gliding (maybe): x",
    ]
    text = (
        "TY  - JOUR\nTI  - T\n" + "".join(f"N1  - {n}\n" for n in notes) + "N1  - Sample size: 40\nER  - \n"
    )
    (study,) = read("ris", text)
    assert study["notes"] == "\n".join(notes) and study["claims"] == [] and study["sample_size"] == 40


def test_csljson_particles_and_suffix_are_kept_and_round_trip() -> None:
    csl = (
        '[{"id": "b", "title": "T", "author": [{"family": "Beethoven", "given": "Ludwig",'
        ' "dropping-particle": "van"}, {"family": "King", "given": "Martin Luther", "suffix": "Jr."},'
        ' {"family": "Berg", "given": "Anna", "non-dropping-particle": "van der"}]}]'
    )
    (item,) = read("csljson", csl)
    assert [(a["family"], a["given"]) for a in item["authors"]] == [
        ("Beethoven", "Ludwig van"),
        ("King", "Martin Luther, Jr."),
        ("van der Berg", "Anna"),
    ]
    from evidence.formats import EXPORTERS

    buffer = io.StringIO()
    EXPORTERS["csljson"]([item], buffer)
    (back,) = read("csljson", buffer.getvalue())
    assert back["authors"] == item["authors"]


@pytest.mark.parametrize("issued", ['{"date-parts": [["abc"]]}', '{"raw": "no date"}', '"soon"'])
def test_csljson_issued_without_a_year_is_an_error_naming_the_line(issued: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        read("csljson", f'[\n{{"id": "ok", "title": "A"}},\n{{"id": "x", "title": "T", "issued": {issued}}}]')
    assert caught.value.line == 3 and "year" in str(caught.value)


def test_make_citekey_for_an_organisation_named_only_whitespace() -> None:
    from evidence.naming import CitekeyAllocator

    assert (
        CitekeyAllocator().key_for({"authors": [{"name": "   "}], "year": 2020, "title": "Soft tissue"})
        == "anon2020soft"
    )
