"""Regression tests from the review of the library CLI: races, verification after edits, errors as one
line, output files, filter semantics."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.helpers import run, run_json


def test_hand_edit_of_an_identifier_drops_its_verification() -> None:
    before = run_json("show", "crothers2016spinal")
    assert before["verification"]["doi"] == "verified"
    run("edit", "crothers2016spinal", "--doi", "10.9999/typo.123", "--year", "2017")
    after = run_json("show", "10.9999/typo.123")
    assert after["verification"]["doi"] == "unverified"
    assert after["verification"]["bibliographic"] == "unverified"
    assert after["verification"]["authors"] == before["verification"]["authors"]
    assert "10.9999/typo.123  [not verified]" in run("show", "10.9999/typo.123").stdout


def test_relinking_with_a_new_stance_drops_the_old_finding() -> None:
    run("link", "crothers2016spinal", "--claim", "pain-modulation", "--stance", "supports")
    link = run_json("show", "crothers2016spinal")["claims"][0]
    assert link["stance"] == "supports" and link["finding"] is None


@pytest.mark.parametrize(
    "ref",
    # Past a 32-bit id (PostgreSQL's INTEGER refused to compare them) and past a 64-bit one.
    ["99999999999", "id:2147483648", "99999999999999999999", "id:9223372036854775808", "²", "٣", "id:²"],
)
def test_odd_references_are_a_one_line_not_found(ref: str) -> None:
    result = run("show", ref, expect=1)
    assert result.stderr.startswith("Error: no study matches")
    assert result.stderr.count("\n") == 1


def test_percent_encoded_doi_url_is_understood() -> None:
    shown = run_json("show", "https://doi.org/10.1186%2Fs12998-016-0096-9")
    assert shown["citekey"] == "crothers2016spinal"


def test_output_to_a_folder_or_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = run("claims", "--format", "csv", "-o", str(tmp_path), expect=1)
    assert "is a folder" in result.stderr and result.stderr.count("\n") == 1
    result = run("claims", "-o", str(tmp_path / "nope" / "x.csv"), expect=1)
    assert "does not exist" in result.stderr


def test_output_keeps_permissions_and_writes_devices_directly(tmp_path: Path) -> None:
    target = tmp_path / "perm.csv"
    target.write_text("old")
    target.chmod(0o644)
    run("claims", "--format", "csv", "-o", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_text().startswith("claim,")
    run("claims", "--format", "csv", "-o", os.devnull)
    assert stat.S_ISCHR(Path(os.devnull).stat().st_mode)


def test_unopenable_database_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("--db", str(blocker / "sub" / "lib.db"), "find", expect=1)
    assert result.stderr.startswith("Error: cannot open") and result.stderr.count("\n") == 1
    # A database other than SQLite and PostgreSQL is refused with the supported list (README, PostgreSQL).
    result = run("--db", "postgresql+nosuchdriver://u@127.0.0.1:1/x", "find", expect=1)
    assert result.stderr.startswith("Error: unsupported database 'postgresql+nosuchdriver'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_claim_and_mechanism_are_separate_conditions() -> None:
    both = {
        r["citekey"]
        for r in run_json("find", "--claim", "tissue-density", "--mechanism", "neural-stimulation")
    }
    assert any(k.startswith("ikeda2019") for k in both)
    for row in run_json("find", "--claim", "tissue-density", "--mechanism", "neural-stimulation"):
        assert "tissue-density" in {c["claim"] for c in row["claims"]}
        assert "neural-stimulation" in row["mechanisms"]


def test_tag_filter_normalises_like_tagging() -> None:
    run("tag", "crothers2016spinal", "-t", "Hand Out")
    assert [r["citekey"] for r in run_json("find", "--tag", "Hand Out")] == ["crothers2016spinal"]


def test_a_limit_past_any_library_is_every_match() -> None:
    # Past a 64-bit LIMIT: SQLite raised OverflowError, PostgreSQL "bigint out of range".
    assert len(run_json("find", "--limit", "99999999999999999999")) == 49
    assert len(run_json("find", "--text", "knee", "--limit", "99999999999999999999")) == 4


def test_title_sort_and_tags_are_in_code_point_order() -> None:
    # PostgreSQL would sort by the database's collation, which need not be SQLite's code point order.
    rows = run_json("find", "--sort", "title")
    titles = [r["title"].lower() for r in rows]
    assert titles == sorted(titles) and len(titles) == 49
    tags = ["design:survey", "design:-survey", "Zeta", "alpha"]
    run("tag", "crothers2016spinal", *(f"--tag={t}" for t in tags))
    shown = run_json("show", "crothers2016spinal")["tags"]
    assert shown == sorted(shown) and {"alpha", "design:-survey", "design:survey", "zeta"} <= set(shown)


def test_a_nul_character_is_refused_with_its_line_and_nothing_is_imported(tmp_path: Path) -> None:
    # SQLite stored it, PostgreSQL refused the whole import with a database error.
    source = tmp_path / "utf16ish.ris"
    source.write_text(
        "TY  - JOUR\nTI  - Fine\nER  - \n\nTY  - JOUR\nTI  - Bro\x00ken\nER  - \n", encoding="utf-8"
    )
    before = len(run_json("find"))
    result = run("import", str(source), expect=1)
    assert (
        result.stderr
        == f"Error: {source}:5: title holds a NUL character (\\x00), which a library cannot store\n"
    )
    assert len(run_json("find")) == before


def test_a_value_longer_than_its_column_is_skipped_by_import_and_refused_by_add(tmp_path: Path) -> None:
    # VARCHAR(n) is a limit on PostgreSQL only: SQLite kept a 40-character volume, PostgreSQL refused it.
    source = tmp_path / "long.ris"
    volume = "v" * 40
    source.write_text(
        f"TY  - JOUR\nTI  - Scraping with a long volume\nAU  - Doe, J\nPY  - 2020\nVL  - {volume}\n"
        "IS  - 3\nER  - \n",
        encoding="utf-8",
    )
    result = run("import", str(source))
    assert result.stderr.splitlines()[1:] == [
        f"  {source}:1: warning: skipped volume '{volume}' (longer than 32 characters)"
    ]
    study = run_json("show", "doe2020scraping")
    assert (study["volume"], study["issue"]) == (None, "3")
    result = run("add", "--title", "T", "--volume", volume, expect=1)
    assert result.stderr == f"Error: volume '{volume}' is longer than 32 characters\n"
    result = run("add", "--title", "T", "--author", "F" * 300 + ", J", expect=1)
    assert "an author's family name" in result.stderr and "longer than 255 characters" in result.stderr
    assert run_json("find", "--text", "T") == []


def test_like_wildcards_are_literal_and_empty_text_is_refused() -> None:
    assert run_json("find", "--condition", "%") == []
    assert run_json("find", "--condition", "_") == []
    result = run("find", "--text", "   ", expect=1)
    assert "has no words" in result.stderr


def test_empty_result_writes_header_and_message_on_stderr() -> None:
    result = run("find", "--year-from", "2099", "--format", "csv", "--columns", "citekey,year")
    assert result.stdout == "citekey,year\n"
    result = run("find", "--year-from", "2099")
    assert result.stdout == "" and "no studies match" in result.stderr
    result = run("find", "--year-from", "2099", "--columns", "bogus", expect=1)
    assert "unknown column 'bogus'" in result.stderr


def test_summary_counts_a_study_once_per_mechanism_like_mechanisms() -> None:
    mechanisms = {m["mechanism"]: m["studies"] for m in run_json("mechanisms")}
    totals: dict[str, int] = {}
    for row in run_json("summary"):
        totals[row["mechanism"]] = totals.get(row["mechanism"], 0) + row["total"]
    assert totals == mechanisms
    assert {row["level"] for row in run_json("summary", "--by", "level")} <= {
        "1",
        "2",
        "3",
        "4",
        "5",
        "unknown",
    }


def test_init_empty_refuses_a_library_with_studies() -> None:
    run_json("find")
    result = run("db", "init", "--empty", expect=1)
    assert "already holds 49 studies" in result.stderr


def test_remove_with_nobody_to_answer_removes_nothing() -> None:
    result = run("remove", "crothers2016spinal", input="", expect=1)
    assert "rerun with --yes" in result.stderr
    run("show", "crothers2016spinal")


def test_author_without_family_name_is_refused() -> None:
    result = run("add", "--title", "T", "--author", ",", expect=1)
    assert "has no family name" in result.stderr


# Several processes opening a new library at once, and writing to it at once: tests/test_concurrency.py.


def test_hand_added_journal_study_is_an_article_with_plain_pages(isolated_home: object) -> None:
    run(
        "add",
        "--title",
        "Scraping and calf pain",
        "--author",
        "Ødegård, Ø",
        "--year",
        "2023",
        "--journal",
        "J Sport Rehabil",
        "--pages",
        "1\u201310",
    )
    study = run_json("show", "odegard2023scraping")
    assert study["pages"] == "1-10"
    assert study["publication_type"] == "journal-article"
