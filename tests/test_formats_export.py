"""Every export read back by an independent reader (bibtexparser, rispy, json + CSL rules, pandas, openpyxl)
and compared field by field; escaping, retraction marking, formula injection, stable citekeys."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_formats_roundtrip import hard_studies, seed_studies

from evidence.errors import ExportError
from evidence.formats import BINARY_FORMATS, EXPORT_FORMATS, EXPORTERS, IMPORTERS, export_studies
from evidence.formats.common import StudyRow, empty_study, evidence_keywords
from evidence.formats.latex import decode, escape
from evidence.formats.tabular import guard_cell


def export(fmt: str, studies: list[StudyRow]) -> str:
    buffer = io.StringIO()
    EXPORTERS[fmt](studies, buffer)
    return buffer.getvalue()


def studies() -> list[StudyRow]:
    return seed_studies() + hard_studies()


# --- BibTeX / BibLaTeX through bibtexparser 2 ------------------------------------------------------


def parse_bib(text: str) -> Any:
    import bibtexparser
    from bibtexparser import middlewares

    library = bibtexparser.parse_string(  # type: ignore[attr-defined]
        text, append_middleware=[middlewares.SeparateCoAuthors(), middlewares.SplitNameParts()]
    )
    assert not library.failed_blocks, [b.error for b in library.failed_blocks]
    return library


@pytest.mark.parametrize("fmt", ["bibtex", "biblatex"])
def test_bibtex_read_by_bibtexparser_field_by_field(fmt: str) -> None:
    data = studies()
    library = parse_bib(export(fmt, data))
    entries = library.entries
    assert len(entries) == len(data)
    assert len({e.key for e in entries}) == len(data), "citekeys must be unique"
    journal, year = ("journaltitle", "date") if fmt == "biblatex" else ("journal", "year")
    for study, entry in zip(data, entries, strict=True):
        fields = entry.fields_dict
        assert entry.entry_type == "article"
        if study["citekey"]:
            assert entry.key == study["citekey"]
        assert decode(fields["title"].value) == study["title"]
        if study["journal"]:
            assert decode(fields[journal].value) == study["journal"]
            assert ("journal" if fmt == "biblatex" else "journaltitle") not in fields
        if study["year"]:
            assert fields[year].value == str(study["year"])
        if study["volume"]:
            assert decode(fields["volume"].value) == study["volume"]
        if study["issue"]:
            # biblatex: `number` for an issue number, `issue` for a designation such as "Supplement_1";
            # bibtex: `number` beside a volume, `issue` (ignored by bibtex) without one.
            numeric = study["issue"].isdigit()
            if fmt == "biblatex":
                field = "number" if numeric else "issue"
            else:
                field = "number" if study["volume"] else "issue"
            assert decode(fields[field].value) == study["issue"], field
        for key in ("doi", "issn"):
            if study[key]:
                assert fields[key].value == study[key], key
        if study["pages"]:
            assert fields["pages"].value == study["pages"].replace("-", "--")
        names = fields["author"].value if study["authors"] else []
        assert len(names) == len(study["authors"])
        for author, name in zip(study["authors"], names, strict=True):
            last = " ".join(name.von + name.last)
            if "name" in author:  # an organisation: one brace group, never split
                assert last.startswith("{") and last.endswith("}") and not name.first
                assert decode(last) == author["name"]
            else:
                assert decode(last) == author["family"]
                assert decode(" ".join(name.first)) == (author["given"] or "")
        keywords = (
            [k.strip() for k in decode(fields["keywords"].value).split(",")] if "keywords" in fields else []
        )
        assert keywords == evidence_keywords(study)


def test_bibtex_escapes_letters_and_biblatex_keeps_utf8() -> None:
    hard = hard_studies()[:1]
    bibtex, biblatex = export("bibtex", hard), export("biblatex", hard)
    assert set(bibtex) - set(map(chr, range(128))) == {"\u00ae"}  # only the registered sign stays UTF-8
    assert r"M{\"u}ller, J{\"u}rgen" in bibtex and r"{\L}ukasiewicz, {\'E}milie" in bibtex
    assert "cohort -- a" in bibtex and "cohort \u2013 a" in biblatex
    assert "Müller, Jürgen" in biblatex and "Łukasiewicz, Émilie" in biblatex
    for text in (bibtex, biblatex):
        assert r"100\% of \{braced\} cases: \$5 \#1 a\_b" in text
        assert r"\textasciitilde{}x \textasciicircum{}y \textbackslash{}z" in text
        assert "{IASTM Consensus Group \\& Partners}" in text  # organisation in extra braces
        assert "{IASTM}" in text and "{McKenzie}" in text  # capitals protected from the style
        assert "pages = {e101--e110}" in text
        assert "10.1016/j.jbmt.2020.01.001_x" in text  # DOI verbatim
    assert "number = {2}" in bibtex and "number = {2}" in biblatex
    assert "issue = {Suppl 1}" in export("biblatex", [hard[0] | {"issue": "Suppl 1"}])
    assert "eprinttype = {pubmed}" in biblatex and "pmid = {31234567}" in bibtex
    assert "langid = {german}" in biblatex


def test_retraction_is_carried_in_every_format(tmp_path: Path) -> None:
    retracted = hard_studies()[:1]
    notice = "RETRACTED: see 10.1016/j.jbmt.2021.99.999 (2021-05-01) [retraction-watch]"
    for fmt in EXPORT_FORMATS:
        if fmt in BINARY_FORMATS:
            continue
        text = export(fmt, retracted)
        assert notice in text, fmt
        if fmt != "csv":
            assert "status:retracted" in text, fmt
        else:
            assert ",retracted," in text
    eoc = export("ris", hard_studies()[1:])
    assert "KW  - status:expression-of-concern" in eoc and "N1  - EXPRESSION OF CONCERN." in eoc


# --- RIS through rispy ---------------------------------------------------------------------------


def test_ris_read_by_rispy_field_by_field() -> None:
    import rispy

    data = studies()
    text = export("ris", data)
    records = rispy.loads(text)
    assert len(records) == len(data)
    for study, record in zip(data, records, strict=True):
        assert record["type_of_reference"] == "JOUR"
        assert record["title"] == study["title"]
        assert record.get("secondary_title") == study["journal"]
        assert record.get("year") == (str(study["year"]) if study["year"] else None)
        assert record.get("volume") == study["volume"]
        assert record.get("number") == study["issue"]
        assert record.get("doi") == study["doi"]
        assert record.get("issn") == study["issn"]
        if study["pages"]:
            first, _, last = study["pages"].partition("-")
            assert record["start_page"] == first
            assert record.get("end_page") == (last or None)
        expected_authors = [
            a["name"] if "name" in a else f"{a['family']}, {a['given'] or ''}".rstrip()
            for a in study["authors"]
        ]
        assert record.get("authors", []) == expected_authors
        assert record.get("keywords", []) == evidence_keywords(study)
        for claim in study["claims"]:
            if claim["finding"]:
                line = (
                    f"Finding on {claim['claim']} ({claim['stance']}): {' '.join(claim['finding'].split())}"
                )
                assert line in record["notes"]


# --- CSL-JSON: json + the CSL field rules --------------------------------------------------------


def test_csljson_follows_the_csl_rules() -> None:
    data = studies()
    items = json.loads(export("csljson", data))
    assert isinstance(items, list) and len(items) == len(data)
    assert len({i["id"] for i in items}) == len(items)
    string_variables = {
        "title",
        "container-title",
        "volume",
        "issue",
        "page",
        "DOI",
        "PMID",
        "PMCID",
        "ISSN",
        "publisher",
        "URL",
        "language",
        "abstract",
        "keyword",
        "note",
        "number",
        "citation-key",
    }
    for study, item in zip(data, items, strict=True):
        assert item["type"] == "article-journal"
        for variable in string_variables & item.keys():
            assert isinstance(item[variable], str), variable
        assert item["title"] == study["title"]
        assert item.get("container-title") == study["journal"]
        if study["year"]:
            assert item["issued"] == {"date-parts": [[study["year"]]]}  # never an invented month or day
        else:
            assert "issued" not in item
        assert item.get("page") == study["pages"]
        assert item.get("DOI") == study["doi"]
        for author, name in zip(study["authors"], item.get("author", []), strict=True):
            if "name" in author:
                assert name == {"literal": author["name"]}
            else:
                assert name["family"] == author["family"]
                assert name.get("given") == author["given"]
                assert set(name) <= {"family", "given"}
        keywords = item.get("keyword", "")
        assert [k.strip() for k in keywords.split(",") if k.strip()] == evidence_keywords(study)


# --- CSV / XLSX through pandas and openpyxl ------------------------------------------------------


def test_csv_read_by_pandas_one_row_per_study() -> None:
    import pandas as pd

    data = studies()
    frame = pd.read_csv(io.StringIO(export("csv", data)), dtype=str, keep_default_na=False)
    assert len(frame) == len(data)
    for study, (_, row) in zip(data, frame.iterrows(), strict=True):
        assert row["title"].lstrip("'") == study["title"]
        assert row["doi"] == (study["doi"] or "")
        assert row["year"] == (str(study["year"]) if study["year"] else "")
        assert row["mechanisms"] == "; ".join(study["mechanisms"])
        assert row["claims"] == "; ".join(f"{c['claim']}:{c['stance']}" for c in study["claims"])
        assert row["pages"] == (study["pages"] or "")


def test_formula_injection_is_neutralised_and_numbers_stay_numbers(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    study = hard_studies()[1] | {
        "title": '=HYPERLINK("http://evil","x")',
        "journal": "+SUM(A1)",
        "condition": "@cmd",
        "notes": "\tTabbed",
        "body_region": "-3",
        "volume": "-1+1",
        "issue": "'quoted",
    }
    assert guard_cell("=1+1") == "'=1+1" and guard_cell("-3") == "-3" and guard_cell("safe") == "safe"
    csv_text = export("csv", [study])
    assert "'=HYPERLINK" in csv_text and "'+SUM(A1)" in csv_text and "'@cmd" in csv_text
    assert "'\tTabbed" in csv_text and "'-1+1" in csv_text and "''quoted" in csv_text
    assert "'-2 degrees" not in csv_text  # the title above replaced it
    path = tmp_path / "studies.xlsx"
    EXPORTERS["xlsx"]([study, seed_studies()[1]], path)
    sheet = load_workbook(path).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    rows = [dict(zip(header, (c for c in row), strict=True)) for row in sheet.iter_rows(min_row=2)]
    for row in rows:
        for cell in row.values():
            assert cell.data_type != "f", f"formula cell {cell.coordinate}: {cell.value}"
    assert rows[0]["title"].value == '\'=HYPERLINK("http://evil","x")'
    assert rows[0]["body_region"].value == "-3"
    # Numbers are numbers (Excel keeps every number as a double; openpyxl reads these back as 2011.0).
    assert rows[1]["year"].value == 2011 and rows[1]["year"].data_type == "n"
    assert rows[1]["level"].value == 4 and rows[1]["sample_size"].data_type == "n"


TRICKY_TEXT = [
    "plain", "a, comma", 'a "quote"', "line\nbreak", "both\r\n", " spaced ", "Müller \u2013 ≥ 😀",
    "tab\there", '"', ",", "_x0041_", "a < b & c > d",
]  # fmt: skip


def test_csv_is_what_the_csv_module_writes_for_the_same_cells() -> None:
    import csv

    from evidence.formats.tabular import COLUMNS, row_cells, write_csv

    studies = [{**empty_study(), "title": text, "notes": text[::-1], "year": 2011 if n % 2 else None}
               for n, text in enumerate(TRICKY_TEXT)]  # fmt: skip
    written = io.StringIO()
    assert write_csv(studies, written) == len(studies)
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(row_cells(s) for s in studies)
    assert written.getvalue() == expected.getvalue()


def ooxml_unescape(text: str) -> str:
    """What Excel and LibreOffice show for a cell's stored text: OOXML (ECMA-376 ST_Xstring) writes a
    carriage return as `_x000D_` and a literal `_x0041_` as `_x005F_x0041_`; openpyxl does not decode
    them, so the tests do."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def test_ooxml_unescape_reads_what_excel_reads() -> None:
    assert ooxml_unescape("both_x000D_\n") == "both\r\n"
    assert ooxml_unescape("_x005F_x0041_") == "_x0041_"


def test_xlsx_cells_keep_their_text(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from evidence.formats.tabular import COLUMNS, write_xlsx

    text = [*TRICKY_TEXT, "ctrl\x01\x0b", "=1+1"]
    studies = [{**empty_study(), "title": t, "year": 2011} for t in text]
    path = tmp_path / "cells.xlsx"
    assert write_xlsx(studies, path) == len(text)
    sheet = load_workbook(path).worksheets[0]
    title = COLUMNS.index("title")
    values = [ooxml_unescape(row[title].value) for row in sheet.iter_rows(min_row=2)]
    assert values == [*TRICKY_TEXT, "ctrl", "'=1+1"]
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    assert {row[COLUMNS.index("year")].value for row in sheet.iter_rows(min_row=2)} == {2011}


def test_xlsx_read_by_pandas(tmp_path: Path) -> None:
    import pandas as pd

    data = studies()
    path = tmp_path / "all.xlsx"
    assert export_studies(data, "xlsx", path) == len(data)
    frame = pd.read_excel(path, dtype=object, engine="calamine")
    assert len(frame) == len(data)
    assert list(frame["citekey"][:3]) == [s["citekey"] for s in data[:3]]
    assert frame["title"][1] == data[1]["title"]
    # Also to a binary stream.
    stream = io.BytesIO()
    EXPORTERS["xlsx"](data[:2], stream)
    assert stream.getvalue().startswith(b"PK")


def test_xlsx_to_stdout_is_refused() -> None:
    for target in (sys.stdout, "-", io.StringIO()):
        with pytest.raises(ExportError, match="binary"):
            EXPORTERS["xlsx"](seed_studies()[:1], target)


def test_bibtex_authors_joined_escape_is_each_name_escaped() -> None:
    # format_entry escapes the usual people (family and given names) in one call: the same text as
    # escaping each name, whatever the names hold.
    from evidence.formats.bibtex import _authors, _name
    from evidence.formats.latex import escape_ascii, escape_utf8

    names = [
        {"family": "Müller", "given": "Jörg", "orcid": None},
        {"family": "O'Brien-Smith", "given": "A--B", "orcid": None},
        {"family": "van der Berg", "given": "Łukasz", "orcid": None},
        {"family": "Percent%", "given": "Under_score & Co", "orcid": None},
        {"family": "Tilde~", "given": "Hat^ {braced}", "orcid": None},
        {"family": "Smith and Sons", "given": "X", "orcid": None},
        {"family": "Comma, Family", "given": "Y", "orcid": None},
        {"family": "Two Words", "given": None, "orcid": None},
        {"name": "World Health Organization"},
        {"family": "Lone{brace", "given": "Z", "orcid": None},
    ]
    for esc in (escape_ascii, escape_utf8):
        for start in range(len(names)):
            for group in (names[start:], names[start : start + 1], names[start : start + 3]):
                assert _authors(group, esc) == " and ".join(_name(a, esc) for a in group), group


def test_unknown_export_format() -> None:
    with pytest.raises(ExportError, match="unknown export format"):
        export_studies([], "docx", io.StringIO())


def test_citekeys_are_stable_and_unique() -> None:
    twin = hard_studies()[1]
    text = export("bibtex", [twin, twin, twin | {"citekey": "dup"}, twin | {"citekey": "dup"}])
    keys = [line.split("{", 1)[1].rstrip(",") for line in text.splitlines() if line.startswith("@")]
    assert keys == ["worlddegrees", "worlddegreesa", "dup", "dupa"]
    assert export("bibtex", [twin]) == export("bibtex", [twin])


def test_exports_are_empty_but_valid_for_no_studies() -> None:
    assert json.loads(export("csljson", [])) == []
    assert export("bibtex", []) == "" and export("ris", []) == ""
    assert export("csv", []).startswith("id,citekey,doi")


# --- classic bibtex, when installed --------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bibtex") is None, reason="bibtex (texlive-binaries) not installed")
def test_bibtex_runs_without_warnings(tmp_path: Path) -> None:
    data = studies()
    (tmp_path / "refs.bib").write_text(export("bibtex", data), encoding="utf-8")
    keys = [
        line.split("{", 1)[1].rstrip(",")
        for line in export("bibtex", data).splitlines()
        if line.startswith("@")
    ]
    aux = "".join(f"\\citation{{{k}}}\n" for k in keys) + "\\bibstyle{plain}\n\\bibdata{refs}\n"
    (tmp_path / "paper.aux").write_text(aux, encoding="ascii")
    result = subprocess.run(["bibtex", "paper"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    # The only warnings allowed are about data the seed library really lacks (no volume, no year...).
    allowed = ("Warning--empty ",)
    problems = [
        line
        for line in result.stdout.splitlines()
        if "arning" in line and not line.startswith(allowed) and not line.startswith("(There were")
    ]
    assert not problems and "error" not in result.stdout.lower(), result.stdout
    bbl = (tmp_path / "paper.bbl").read_text(encoding="utf-8")
    assert bbl.count("\\bibitem") == len(data)
    assert "RETRACTED: see 10.1016/j.jbmt.2021.99.999" in bbl


@pytest.mark.skipif(shutil.which("bibtex") is None, reason="bibtex (texlive-binaries) not installed")
@pytest.mark.parametrize("style", ["plain", "unsrt", "abbrv"])
def test_bibtex_seed_library_export_has_no_warnings(tmp_path: Path, style: str) -> None:
    # Several seed studies have an issue but no volume: `number` alone makes the standard styles warn
    # "there's a number but no volume", so the issue travels in `issue` (ignored by bibtex, read back).
    text = export("bibtex", seed_studies())
    assert "  issue = {" in text
    (tmp_path / "refs.bib").write_text(text, encoding="utf-8")
    (tmp_path / "paper.aux").write_text(
        f"\\citation{{*}}\n\\bibstyle{{{style}}}\n\\bibdata{{refs}}\n", encoding="ascii"
    )
    result = subprocess.run(["bibtex", "paper"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert [line for line in result.stdout.splitlines() if "Warning--" in line] == [], result.stdout
    back = list(IMPORTERS["bibtex"](io.StringIO(text), "refs.bib"))
    assert [s["issue"] for s in back] == [s["issue"] for s in seed_studies()]


@pytest.mark.parametrize(
    "text",
    [
        "one { unpaired",
        "} first",
        "{a} and {b}",
        "a--b---c",
        "\\{x\\}",
        "50% & $3 # _ ~ ^ \\",
        "\u00c6r\u00f8 \u0152uvre \u0131i \u00df",
    ],
)
def test_latex_escape_decodes_back(text: str) -> None:
    for ascii_only in (True, False):
        escaped = escape(text, ascii_only=ascii_only)
        assert decode(escaped) == text, escaped
        depth = 0
        for char in escaped:  # bibtex counts every brace, escaped or not: they must balance
            depth += {"{": 1, "}": -1}.get(char, 0)
            assert depth >= 0
        assert depth == 0


def test_citekeys_lose_the_characters_a_bibtex_key_cannot_hold() -> None:
    from evidence.naming import CitekeyAllocator

    for bad in ("a b", "a,b", "a{b", "a\\b", "a~b", 'a"b', "a\u00a0b"):
        assert CitekeyAllocator().key_for({"citekey": bad, "title": "t"}) != bad
    assert CitekeyAllocator().key_for({"citekey": "müller2011:x_y.z-1", "title": "t"}) == "müller2011:x_y.z-1"
