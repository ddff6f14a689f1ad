"""The library commands as a user drives them, on an empty library made with `db init --empty`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evidence.store.db import HEAD_REVISION
from tests.helpers import run, run_json


@pytest.fixture
def empty_library(library_url: str) -> str:
    run("db", "init", "--empty")
    return library_url


def add_rct(*extra: str) -> dict[str, object]:
    args = [
        "add",
        "--title",
        "Instrument-assisted soft tissue mobilization and hamstring range of motion",
        "--author",
        "Doe, Jane",
        "--author",
        "Müller, Jörg",
        "--year",
        "2020",
        "--journal",
        "J Sport Rehabil",
        "--design",
        "rct",
        "--population",
        "human",
        "--pedro",
        "7",
        "--doi",
        "https://doi.org/10.1000/ABC.1",
        "--pmid",
        "12345678",
        "--claim",
        "mechanoreceptor-rom",
        "--stance",
        "supports",
        "--finding",
        "Hamstring ROM rose after one session",
        "--tag",
        "graston",
        *extra,
    ]
    return json.loads(run(*args, "--format", "json").stdout)


def test_add_validates_normalises_and_derives_level(empty_library: str) -> None:
    study = add_rct()
    assert study["doi"] == "10.1000/abc.1"
    assert study["pmid"] == "12345678"
    assert study["citekey"] == "doe2020instrumentassisted"
    assert study["level"] == 2 and study["level_overridden"] is False
    assert study["authors"] == [
        {"family": "Doe", "given": "Jane", "orcid": None},
        {"family": "Müller", "given": "Jörg", "orcid": None},
    ]
    assert study["claims"] == [
        {
            "claim": "mechanoreceptor-rom",
            "mechanism": "neural-stimulation",
            "stance": "supports",
            "finding": "Hamstring ROM rose after one session",
        }
    ]
    assert study["mechanisms"] == ["neural-stimulation"]
    assert study["tags"] == ["graston"]
    assert study["source"] == "manual"
    assert study["verification"]["doi"] == "unverified"


def test_duplicate_doi_is_refused_and_nothing_written(empty_library: str) -> None:
    add_rct()
    result = run("add", "--title", "Another", "--doi", "10.1000/abc.1", expect=1)
    assert "already in the library" in result.stderr and "doe2020instrumentassisted" in result.stderr
    assert len(run_json("find")) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--year", "20x"], "year must be a whole number"),
        (["--year", "1500"], "out of range"),
        (["--pedro", "11"], "PEDro score must be from 0 to 10"),
        (["--pedro", "seven"], "PEDro score must be a whole number"),
        (["--level", "9"], "OCEBM level must be from 1 to 5"),
        (["--claim", "pain-modulation"], "--claim needs --stance"),
    ],
)
def test_bad_values_give_one_line_error_and_change_nothing(
    empty_library: str, args: list[str], message: str
) -> None:
    result = run("add", "--title", "T", *args, expect=1)
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert run_json("find") == []


@pytest.mark.parametrize(
    ("args", "valid"),
    [
        (["find", "--mechanism", "magic"], "neural-stimulation"),
        (["find", "--claim", "magic"], "tissue-density"),
        (["find", "--stance", "maybe"], "no-effect"),
        (["find", "--design", "anecdote"], "systematic-review"),
        (["add", "--title", "T", "--doi", "11.2/x"], "not a DOI"),
        (["add", "--title", "T", "--pmid", "12ab"], "not a PMID"),
    ],
)
def test_unknown_names_and_bad_identifiers_are_usage_errors(
    empty_library: str, args: list[str], valid: str
) -> None:
    result = run(*args, expect=2)
    assert valid in result.stderr


def test_find_filters_combine(empty_library: str) -> None:
    add_rct()
    run(
        "add",
        "--title",
        "Rat tendon healing after augmented soft tissue mobilization",
        "--author",
        "Rat, A",
        "--year",
        "1997",
        "--design",
        "animal-study",
        "--population",
        "animal",
        "--claim",
        "collagen-repair",
        "--stance",
        "supports",
        "--tag",
        "mechanistic",
    )
    run(
        "add",
        "--title",
        "Graston no better than sham for thoracic pain",
        "--author",
        "Sham, B",
        "--year",
        "2016",
        "--design",
        "rct",
        "--population",
        "human",
        "--pedro",
        "8",
        "--claim",
        "pain-modulation",
        "--stance",
        "contradicts",
        "--condition",
        "thoracic spine pain",
    )

    def ids(*args: str) -> list[str]:
        return [r["citekey"] for r in run_json("find", *args)]

    assert ids("--mechanism", "inflammatory-healing") == ["rat1997rat"]
    assert ids("--population", "human", "--sort", "year") == ["doe2020instrumentassisted", "sham2016graston"]
    assert ids("--claim", "pain-modulation", "--stance", "supports") == []
    assert ids("--mechanism", "neural-stimulation", "--stance", "contradicts") == ["sham2016graston"]
    assert ids("--max-level", "2", "--min-pedro", "8") == ["sham2016graston"]
    assert ids("--year-from", "2000", "--year-to", "2018") == ["sham2016graston"]
    assert ids("--condition", "thoracic") == ["sham2016graston"]
    assert ids("--tag", "mechanistic") == ["rat1997rat"]
    # Strongest level first, then newest.
    assert ids("--design", "animal-study", "--design", "rct", "--sort", "level", "--limit", "2") == [
        "doe2020instrumentassisted",
        "sham2016graston",
    ]
    assert ids("--sort", "pedro") == ["sham2016graston", "doe2020instrumentassisted", "rat1997rat"]
    assert ids("--text", "tendon healing") == ["rat1997rat"]
    result = run("find", "--sort", "relevance", expect=1)
    assert "--sort relevance needs --text" in result.stderr


def test_fts_stays_in_sync_after_edit_note_and_remove(empty_library: str) -> None:
    add_rct()
    assert len(run_json("find", "--text", "hamstring")) == 1
    run("edit", "doe2020instrumentassisted", "--title", "Calf stiffness after scraping")
    assert run_json("find", "--text", "hamstring") == []
    assert len(run_json("find", "--text", "calf stiffness")) == 1
    run("note", "10.1000/abc.1", "-m", "Useful for the plantar fascia handout")
    assert len(run_json("find", "--text", "plantar fascia")) == 1
    run("remove", "pmid:12345678", "--yes")
    assert run_json("find", "--text", "calf") == []
    assert run_json("find", "--text", "plantar") == []


def test_fts_phrases_and_punctuation_are_safe(empty_library: str) -> None:
    add_rct()
    assert len(run_json("find", "--text", '"range of motion"')) == 1
    assert run_json("find", "--text", '"motion of range"') == []
    # FTS5 operators and punctuation are taken as words, never as query syntax.
    assert len(run_json("find", "--text", "range (motion) AND* ^hamstring")) == 1
    assert run_json("find", "--text", "range AND nonexistentword") == []
    result = run("find", "--text", "()", expect=1)
    assert "no words to search for" in result.stderr


def test_show_text_and_json(empty_library: str) -> None:
    add_rct()
    text = run("show", "doe2020instrumentassisted").stdout
    assert "Randomised controlled trial; OCEBM level 2" in text
    assert "SUPPORTS" in text and "mechanoreceptor-rom" in text
    assert "not verified" in text
    shown = run_json("show", "12345678")
    for field in (
        "id",
        "citekey",
        "doi",
        "pmid",
        "title",
        "authors",
        "journal",
        "year",
        "volume",
        "issue",
        "pages",
        "design",
        "level",
        "population",
        "condition",
        "pedro",
        "mechanisms",
        "claims",
    ):
        assert field in shown
    result = run("show", "nosuchkey", expect=1)
    assert "no study matches 'nosuchkey'" in result.stderr


def test_edit_marks_fields_as_manual_and_level_follows_design(empty_library: str) -> None:
    add_rct()
    run("edit", "doe2020instrumentassisted", "--design", "cohort")
    study = run_json("show", "doe2020instrumentassisted")
    assert study["level"] == 3
    run("edit", "doe2020instrumentassisted", "--level", "4")
    study = run_json("show", "doe2020instrumentassisted")
    assert study["level"] == 4 and study["level_overridden"] is True
    run("edit", "doe2020instrumentassisted", "--clear", "level")
    study = run_json("show", "doe2020instrumentassisted")
    assert study["level"] == 3 and study["level_overridden"] is False
    assert study["field_sources"]["design"] == "manual"
    result = run("edit", "doe2020instrumentassisted", expect=1)
    assert "nothing to change" in result.stderr


def test_remove_asks_first(empty_library: str) -> None:
    add_rct()
    result = run("remove", "doe2020instrumentassisted", input="n\n", expect=1)
    assert "not removed" in result.stderr
    assert len(run_json("find")) == 1
    run("remove", "doe2020instrumentassisted", input="y\n")
    assert run_json("find") == []


def test_tags_links_and_notes(empty_library: str) -> None:
    add_rct()
    run("tag", "doe2020instrumentassisted", "-t", "Handout", "-t", "graston")
    assert run_json("show", "doe2020instrumentassisted")["tags"] == ["graston", "handout"]
    run("untag", "doe2020instrumentassisted", "-t", "graston")
    assert run_json("show", "doe2020instrumentassisted")["tags"] == ["handout"]
    run(
        "link",
        "doe2020instrumentassisted",
        "--claim",
        "tissue-density",
        "--stance",
        "no-effect",
        "--finding",
        "Stiffness unchanged",
    )
    run("link", "doe2020instrumentassisted", "--claim", "mechanoreceptor-rom", "--stance", "mixed")
    claims = {c["claim"]: c for c in run_json("show", "doe2020instrumentassisted")["claims"]}
    assert claims["tissue-density"]["stance"] == "no-effect"
    assert claims["mechanoreceptor-rom"]["stance"] == "mixed"
    # The old finding argued for "supports"; a new stance without a finding must not keep it.
    assert claims["mechanoreceptor-rom"]["finding"] is None
    run("unlink", "doe2020instrumentassisted", "--claim", "tissue-density")
    result = run("unlink", "doe2020instrumentassisted", "--claim", "tissue-density", expect=1)
    assert "is not linked" in result.stderr
    run("note", "doe2020instrumentassisted", "-m", "first")
    run("note", "doe2020instrumentassisted", "-m", "second")
    assert run_json("show", "doe2020instrumentassisted")["notes"] == "first\n\nsecond"


def test_listing_formats_and_output_file(empty_library: str, tmp_path: Path) -> None:
    add_rct()
    csv_text = run("find", "--format", "csv", "--columns", "citekey,authors,claims").stdout
    assert csv_text.splitlines() == [
        "citekey,authors,claims",
        'doe2020instrumentassisted,"Doe, Jane; Müller, Jörg",mechanoreceptor-rom:supports',
    ]
    ndjson = run("find", "--format", "ndjson").stdout.splitlines()
    assert len(ndjson) == 1 and json.loads(ndjson[0])["pedro"] == 7
    target = tmp_path / "out.json"
    result = run("find", "--format", "json", "-o", str(target))
    assert result.stdout == "" and "wrote 1 rows" in result.stderr
    assert json.loads(target.read_text())[0]["doi"] == "10.1000/abc.1"
    result = run("find", "--columns", "nope", expect=1)
    assert "unknown column 'nope'" in result.stderr
    missing = tmp_path / "no" / "such" / "dir.csv"
    result = run("find", "--format", "csv", "-o", str(missing), expect=1)
    assert not missing.exists()


def test_claims_mechanisms_and_summary(empty_library: str) -> None:
    add_rct()
    run(
        "add",
        "--title",
        "Rat tendon",
        "--author",
        "Rat, A",
        "--year",
        "1997",
        "--design",
        "animal-study",
        "--population",
        "animal",
        "--claim",
        "collagen-repair",
        "--claim",
        "mechanoreceptor-rom",
        "--stance",
        "supports",
    )
    claims = {c["claim"]: c for c in run_json("claims")}
    rom = claims["mechanoreceptor-rom"]
    assert rom["supports"] == 2 and rom["human"]["supports"] == 1 and rom["animal"]["supports"] == 1
    assert rom["by_level"]["2"]["supports"] == 1 and rom["by_level"]["5"]["supports"] == 1
    assert claims["collagen-repair"]["animal"]["supports"] == 1
    assert "h1 a1" in run("claims", "--wide").stdout
    only = run_json("claims", "--mechanism", "inflammatory-healing")
    assert {c["mechanism"] for c in only} == {"inflammatory-healing"}
    mechanisms = {m["mechanism"]: m for m in run_json("mechanisms")}
    assert mechanisms["neural-stimulation"]["studies"] == 2
    assert mechanisms["inflammatory-healing"]["animal"] == 1
    pivot = run_json("summary")
    assert {
        "mechanism": "neural-stimulation",
        "design": "rct",
        "supports": 1,
        "contradicts": 0,
        "mixed": 0,
        "no-effect": 0,
        "total": 1,
    } in pivot
    by_level = run_json("summary", "--by", "level")
    assert any(row["level"] == "5" and row["mechanism"] == "inflammatory-healing" for row in by_level)
    csv_header = run("claims", "--format", "csv").stdout.splitlines()[0]
    assert "supports_human" in csv_header and "level1_supports" in csv_header


@pytest.mark.sqlite_only(reason="the default library is a file in the home folder, and --db takes a path")
def test_db_path_honours_option_env_and_home(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("db", "path").stdout.strip() == f"sqlite:///{isolated_home / 'evidence.db'}"
    other = tmp_path / "clinic.db"
    assert run("--db", str(other), "db", "path").stdout.strip() == f"sqlite:///{other}"
    monkeypatch.setenv("EVIDENCE_DB", "sqlite:///" + str(other))
    assert run("db", "path").stdout.strip() == f"sqlite:///{other}"


def test_empty_library_is_not_seeded_later(empty_library: str) -> None:
    assert run_json("find") == []
    # It reads the revision through its own transaction (a second connection once waited 15 s for it).
    assert f"schema at revision {HEAD_REVISION}; 0 studies" in run("db", "upgrade").stderr
    assert run_json("find") == []
