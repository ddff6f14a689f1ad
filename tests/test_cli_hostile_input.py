"""Regression tests for the failures a new user found (issue 13): files that crashed the importer or were
imported with a silent choice, values too long to show, control characters, files that are not text.
Each failure is one `Error: FILE:LINE: ...` line, exit 1 and an unchanged library; each silent choice a
warning naming its line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import db_execute, dump_tables, run, run_json


def _refused(source: Path, library_url: str) -> str:
    """Import ``source``, which must fail with one line and change nothing; that line."""
    run("find", "--limit", "1")  # the library made and seeded first
    before = dump_tables(library_url)
    result = run("import", str(source), expect=1)
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert dump_tables(library_url) == before
    return result.stderr.removeprefix("Error: ").rstrip("\n")


def _import_warnings(source: Path, text: str) -> list[str]:
    """Write ``text`` to ``source``, import it (it must succeed) and return the warnings it printed,
    each with ``{}`` for the file's name."""
    source.write_text(text, encoding="utf-8")
    stderr = run("import", str(source)).stderr
    return [line.strip().replace(str(source), "{}") for line in stderr.splitlines() if ": warning: " in line]


def test_csl_json_nested_a_thousand_levels_is_one_line(tmp_path: Path, library_url: str) -> None:
    # Was a RecursionError traceback from the json module.
    deep = tmp_path / "deep.json"
    deep.write_text('[{"title": "Deep", "note": ' + "[" * 1000 + "]" * 1000 + "}]", encoding="utf-8")
    assert _refused(deep, library_url) == f"{deep}:1: objects and arrays nested deeper than 20 levels"
    top = tmp_path / "top.json"
    top.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert "nested deeper than 20 levels" in _refused(top, library_url)


@pytest.mark.parametrize("limit", ["9223372036854775808", "18446744073709551616", "9" * 40])
def test_a_limit_past_64_bits_is_every_match(limit: str) -> None:
    # Was OverflowError (SQLite) and "bigint out of range" (PostgreSQL).
    assert len(run_json("find", "--limit", limit)) == 49


def test_a_title_or_abstract_past_its_limit_is_refused_with_its_line(
    tmp_path: Path, library_url: str
) -> None:
    source = tmp_path / "big.bib"
    source.write_text(
        "@article{fine,\n title={A fine title},\n year={2020}\n}\n"
        "@article{big,\n title={" + "word " * 2_000_000 + "},\n year={2020}\n}\n",
        encoding="utf-8",
    )
    message = _refused(source, library_url)
    assert message.startswith(f"{source}:5: title is 9,999,999 characters long")
    assert "(2,000)" in message and len(message) < 300
    abstract = tmp_path / "abstract.ris"
    abstract.write_text(f"TY  - JOUR\nTI  - Long\nAB  - {'a' * 100_001}\nER  - \n", encoding="utf-8")
    assert "abstract is 100,001 characters long" in _refused(abstract, library_url)
    # At the limits a study comes in.
    edge = tmp_path / "edge.ris"
    edge.write_text(f"TY  - JOUR\nTI  - {'t' * 2000}\nAB  - {'a ' * 50_000}\nER  - \n", encoding="utf-8")
    run("import", str(edge))
    assert run_json("show", "anon" + "t" * 40)["title"] == "t" * 2000  # its citekey fits its column
    assert len(run_json("find", "--text", "t" * 20)) == 0  # one long token, not a word match
    result = run("add", "--title", "x" * 2001, expect=1)
    assert "title is 2,001 characters long" in result.stderr


@pytest.mark.sqlite_only(reason="a value written past the limits by hand; PostgreSQL's tsvector refuses it")
def test_a_library_holding_a_10_mb_title_still_lists_shows_and_round_trips(
    tmp_path: Path, library_url: str
) -> None:
    # A library filled before the limits: find took 50 s (rich laid out 10 MB), show 18 s, and the CSV
    # that export wrote could not be read back (the csv module's 128 KiB cell limit).
    huge = "word " * 2_000_000
    run("find", "--limit", "1")  # the library made and seeded first
    db_execute(library_url, "UPDATE studies SET title = :t WHERE citekey = 'crothers2016spinal'", t=huge)
    started = time.perf_counter()
    table = run("find", "--limit", "60").stdout
    shown = run("show", "crothers2016spinal").stdout
    assert time.perf_counter() - started < 10
    assert len(table) < 200_000 and "\u2026" in table
    assert "more characters: show --format json has them" in shown and len(shown) < 10_000
    assert run_json("show", "crothers2016spinal")["title"] == huge
    exported = tmp_path / "all.csv"
    run("export", "--to", "csv", "-o", str(exported))
    result = run("--db", str(tmp_path / "other.db"), "import", str(exported), expect=1)
    assert "field larger than field limit" not in result.stderr
    assert "title is 9,999,999 characters long" in result.stderr and f"{exported}:" in result.stderr


def test_a_csv_cell_past_the_csv_modules_default_limit_is_read(tmp_path: Path) -> None:
    source = tmp_path / "wide.csv"
    source.write_text(f'title,authors,comment\nWide row,"Doe, J",{"c" * 200_000}\n', encoding="utf-8")
    run("import", str(source))
    assert [s["title"] for s in run_json("find", "--text", "wide")] == ["Wide row"]


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("nul.bib", "@article{a,\n title={Fine},\n year={2020}\n}\n@article{b,\n title={Bro\x00ken}\n}\n", 5),
        ("nul.csv", 'title,authors\nFine,"Doe, J"\n"Bro\x00ken","Roe, R"\n', 3),
        ("nul.json", '[{"title": "Fine"},\n {"title": "Bro\\u0000ken"}]', 2),
    ],
)
def test_a_nul_character_in_any_format_is_refused_with_its_line(
    tmp_path: Path, library_url: str, name: str, text: str, line: int
) -> None:
    # BibTeX and CSV kept it, and show and the BibTeX export printed it raw.
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    assert _refused(source, library_url) == (
        f"{source}:{line}: title holds a NUL character (\\x00), which a library cannot store"
    )


def test_control_characters_are_stripped_with_a_warning_and_refused_by_add(tmp_path: Path) -> None:
    warnings = _import_warnings(
        tmp_path / "control.bib",
        "@article{bell,\n title={Bell\x07 and \x1b[2Jescape},\n author={Doe, J\x08},\n year={2020},\n"
        " abstract={Tab\tand\nnewline stay}\n}\n",
    )
    assert warnings == [
        "{}:1: warning: stripped control characters from title (a terminal would obey them)",
        "{}:1: warning: stripped control characters from authors (a terminal would obey them)",
    ]
    study = run_json("show", "bell")
    assert study["title"] == "Bell and [2Jescape"
    assert study["abstract"] == "Tab and\nnewline stay"  # no warning: LaTeX spaces a tab, keeps lines
    for exported in (run("show", "bell").stdout, run("export", "--to", "bibtex", "bell").stdout):
        assert not any(ord(c) < 32 and c not in "\t\n" for c in exported)
    result = run("add", "--title", "Red \x1b[31m alert", expect=1)
    assert (
        result.stderr == "Error: title holds a control character ('\\x1b'), which a library does not store\n"
    )
    result = run("note", "bell", "-m", "bad\x00note", expect=1)
    assert "NUL character" in result.stderr


def test_silent_choices_are_warnings_naming_their_line(tmp_path: Path) -> None:
    bibtex = (
        "@article{good1,\n title={First title},\n title={Second title},\n year={2020}\n}\n"
        "@article{good1,\n title={Another study altogether},\n year={2021}\n}\n"
    )
    assert _import_warnings(tmp_path / "twice.bib", bibtex) == [
        "{}:1: warning: field 'title' given twice; kept the first",
        "{}:6: warning: citekey 'good1' is taken already; stored as 'good1a'",
    ]
    assert run_json("show", "good1")["title"] == "First title"
    csl = '[\n{"id": "k", "title": "First", "title": "Last", "type": "article-journal"}\n]\n'
    assert _import_warnings(tmp_path / "twice.json", csl) == [
        "{}:2: warning: key 'title' given twice in one object; kept the last value"
    ]
    nbib = "PMID- 111\nTI  - Whole record\nDP  - 2020\nSO  - J. 2020.\n\nPMID- 222\nTI  - Cut sho"
    assert _import_warnings(tmp_path / "cut.nbib", nbib) == [
        "{}:6: warning: the file ends inside this record (cut short?); imported what it holds: check it"
    ]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "sheet.xlsx",
            b"PK\x03\x04" + bytes(range(256)) * 4,
            "this is a ZIP archive (an Excel .xlsx workbook",
        ),
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "an Office document"),
        ("paper.pdf", b"%PDF-1.7\n\xe2\xe3\xcf\xd3\n" + bytes(range(128, 256)), "this is a PDF"),
        ("utf16.ris", "TY  - JOUR\nTI  - X\nER  - \n".encode("utf-16"), "this is UTF-16 text"),
        ("utf16le.ris", "TY  - JOUR\nTI  - X\nER  - \n".encode("utf-16-le"), ":1: a NUL byte"),
        ("latin1.ris", "TY  - JOUR\nTI  - Caf\xe9\nER  - \n".encode("latin-1"), ":2: expected UTF-8 text"),
    ],
)
def test_a_file_that_is_not_utf8_text_is_named_for_what_it_is(
    tmp_path: Path, library_url: str, name: str, content: bytes, expected: str
) -> None:
    # An xlsx was "expected UTF-8 text (invalid continuation byte)".
    source = tmp_path / name
    source.write_bytes(content)
    message = _refused(source, library_url)
    assert message.startswith(str(source)) and expected in message
