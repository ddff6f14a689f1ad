"""Import identity as a user sees it: templated titles kept apart, variants merged, possible duplicates
listed with FILE:LINE (and in `--report` JSON), then `evidence duplicates` and `evidence merge`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import db_rows, run, run_json

# One research group, one year, one template: five distinct trials, then true duplicates written otherwise.
FILE = """\
@article{a, title={Effects of IASTM on pain in knee osteoarthritis: a randomized controlled trial},
  author={Wang, Anna B. and Li, Q.}, year={2020}, journal={J Man Ther}, keywords={knee}}
@article{b, title={Effects of IASTM on pain in hip osteoarthritis: a randomized controlled trial},
  author={Wang, A. B.}, year={2020}}
@article{c, title={Effects of IASTM on function in knee osteoarthritis: a randomized controlled trial},
  author={Wang, A. B.}, year={2020}}
@article{d, title={Effects of IASTM on pain in knee osteoarthritis: a randomized controlled trial},
  author={Wang, C.}, year={2020}}
@article{e, title={Effects of IASTM on pain in knee osteoarthritis: trial 2},
  author={Wang, A. B.}, year={2020}}
@article{f, title={EFFECTS OF IASTM ON PAIN IN KNEE OSTEOARTHRITIS: A RANDOMISED CONTROLLED TRIAL.},
  author={Wang, A.}, year={2020}, volume={12}}
@article{g, title={Effects of IASTM on pain in knee osteoarthritis}, author={Wáng, Anna}, year={2020},
  pages={1-9}}
@article{h, title={Effects of IASTM on pian in knee osteoarthritis: a randomized controlled trial},
  author={Wang, A. B.}, year={2020}}
@article{i, title={Effects of IASTM on pain in hip osteoarthritis}, author={Wang, Anna}, year={2020},
  issue={3}}
"""


def test_templated_works_stay_apart_and_variants_merge(tmp_path: Path) -> None:
    source, report_path = tmp_path / "group.bib", tmp_path / "report.json"
    source.write_text(FILE, encoding="utf-8")
    run("db", "init", "--empty")
    result = run("import", str(source), "--report", str(report_path))
    err = result.stderr.splitlines()
    assert err[0].endswith(
        "9 records: 7 added, 0 merged into library studies, 0 already in the library unchanged, "
        "2 duplicates within the file, 0 conflicts, 3 possible duplicates (imported as new)"
    )
    assert f"  {source}:15: possible duplicate of a (line 1), imported as h " in "\n".join(err)
    report = json.loads(report_path.read_text(encoding="utf-8"))
    became = {r["line"]: (r["action"], r["study"]) for r in report["records"]}
    assert became == {
        1: ("added", "a"),
        3: ("added", "b"),
        5: ("added", "c"),
        7: ("added", "d"),  # another Wang
        9: ("added", "e"),  # a numbered trial
        11: ("duplicate-in-file", "a"),  # case, British spelling, trailing period, one initial
        # Without its subtitle it could be a (": a randomized controlled trial") or e (": trial 2").
        13: ("added", "g"),
        15: ("added", "h"),  # a typo: asked about, not merged
        17: ("duplicate-in-file", "b"),  # subtitle dropped, given name written out
    }
    ambiguous = "same title without a subtitle as works with different subtitles"
    assert [
        (p["line"], p["study"], p["resembles"], p["resembles_line"], p["why"])
        for p in report["possible_duplicates"]
    ] == [
        (13, "g", "a", 1, ambiguous),
        (13, "g", "e", 9, ambiguous),
        (15, "h", "a", 1, "titles differ by one letter or two ('pain' / 'pian')"),
    ]
    assert report["work"]["records"] == 9
    studies = {s["citekey"]: s for s in run_json("find")}
    assert set(studies) == {"a", "b", "c", "d", "e", "g", "h"}
    assert json.loads(run("show", "a", "--format", "json").stdout)["volume"] == "12"
    assert json.loads(run("show", "b", "--format", "json").stdout)["issue"] == "3"


def test_dry_run_lists_the_same_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "group.bib"
    source.write_text(FILE, encoding="utf-8")
    run("db", "init", "--empty")
    result = run("import", str(source), "--dry-run")
    assert "duplicate-in-file -> a by title+author+year" in result.stderr
    assert "possible duplicate of a (line 1), imported as h" in result.stderr
    assert run_json("find") == []


def add(title: str, author: str, *extra: str) -> None:
    run("add", "--title", title, "--author", author, "--year", "2019", *extra)


def test_duplicates_lists_pairs_and_merge_joins_them(tmp_path: Path) -> None:
    run("db", "init", "--empty")
    add("Gua sha and muscle stiffness in runners", "Nielsen, Arya", "--tag", "runners",
        "--claim", "tissue-density", "--stance", "supports")  # fmt: skip
    add("Gua Sha & muscle stiffness in runners.", "Nielsen, A.", "--tag", "gua-sha",
        "--journal", "J Bodyw Mov Ther", "--claim", "blood-flow", "--stance", "mixed")  # fmt: skip
    run("note", "nielsen2019guaa", "-m", "From a colleague")
    add("Gua sha and muscle stiffness in rowers", "Nielsen, A.")
    pairs = run_json("duplicates")
    assert pairs == [
        {
            "kind": "likely",
            "study": "nielsen2019gua",
            "other": "nielsen2019guaa",
            "why": "title+author+year (same title)",
            "study_title": "Gua sha and muscle stiffness in runners",
            "other_title": "Gua Sha & muscle stiffness in runners.",
        }
    ]
    table = run("duplicates").stdout
    assert "nielsen2019guaa" in table and "likely" in table

    result = run("merge", "nielsen2019gua", "nielsen2019guaa", "--yes")
    assert result.stderr.startswith("merged nielsen2019guaa into nielsen2019gua; filled ")
    merged = json.loads(run("show", "nielsen2019gua", "--format", "json").stdout)
    assert merged["journal"] == "J Bodyw Mov Ther"
    assert sorted(merged["tags"]) == ["gua-sha", "runners"]
    assert sorted(c["claim"] for c in merged["claims"]) == ["blood-flow", "tissue-density"]
    assert "From a colleague" in merged["notes"]
    assert {s["citekey"] for s in run_json("find")} == {"nielsen2019gua", "nielsen2019guab"}
    assert run("duplicates").stderr == "no duplicates found\n"


def test_merge_refuses_without_an_answer_or_a_second_study(tmp_path: Path) -> None:
    run("db", "init", "--empty")
    add("One study", "Doe, J")
    add("One study", "Doe, J")
    before = run_json("find")
    result = run("merge", "doe2019one", "doe2019onea", expect=1)
    assert "not merged: nobody answered; rerun with --yes" in result.stderr
    assert run("merge", "doe2019one", "doe2019one", "--yes", expect=1).stderr == (
        "Error: doe2019one and doe2019one are the same study (doe2019one)\n"
    )
    assert "no study" in run("merge", "doe2019one", "nosuchkey", "--yes", expect=1).stderr.lower()
    assert run_json("find") == before


def test_merge_conflicting_stances_keeps_the_first_and_says_so() -> None:
    run("db", "init", "--empty")
    add("Sham-controlled IASTM trial", "Doe, J", "--citekey", "first",
        "--claim", "pain-modulation", "--stance", "supports")  # fmt: skip
    add("Sham-controlled IASTM trial", "Doe, J", "--citekey", "second",
        "--claim", "pain-modulation", "--stance", "no-effect")  # fmt: skip
    result = run("merge", "first", "second", "--yes")
    assert "  conflict: claim pain-modulation: library says supports, file says no-effect" in result.stderr
    shown = json.loads(run("show", "first", "--format", "json").stdout)
    assert [(c["claim"], c["stance"]) for c in shown["claims"]] == [("pain-modulation", "supports")]


def test_import_report_as_a_real_subprocess(tmp_path: Path, library_url: str) -> None:
    """End to end: the installed entry point on the test's library, the report read back by json."""
    source, report_path = tmp_path / "group.bib", tmp_path / "r.json"
    source.write_text(FILE, encoding="utf-8")
    evidence = [sys.executable, "-c", "from cli import cli; cli()", "--db", library_url]
    subprocess.run([*evidence, "db", "init", "--empty"], check=True, capture_output=True)
    done = subprocess.run(
        [*evidence, "import", str(source), "--report", str(report_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "3 possible duplicates" in done.stderr
    assert json.loads(report_path.read_text(encoding="utf-8"))["counts"]["added"] == 7
    assert db_rows(library_url, "SELECT count(*) FROM studies") == [(7,)]


def test_a_report_that_cannot_be_written_undoes_the_import(tmp_path: Path) -> None:
    source = tmp_path / "group.bib"
    source.write_text(FILE, encoding="utf-8")
    run("db", "init", "--empty")
    result = run("import", str(source), "--report", str(tmp_path / "no-such-folder" / "r.json"), expect=1)
    assert result.stderr.startswith("Error: ") and "no-such-folder" in result.stderr
    assert run_json("find") == []


def test_a_duplicate_of_a_record_inserted_earlier_is_counted_within_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Record 3 finds record 1's study by the DOI record 2 gave it, after record 1 was inserted: still a
    duplicate within the file, not a study the library already had."""
    import evidence.importer as importer

    monkeypatch.setattr(importer, "CHUNK", 1)  # every record inserted before the next one is read
    source = tmp_path / "three.bib"
    source.write_text(
        "@article{one, title={Gua sha and fascia}, author={Doe, J}, year={2020}}\n"
        "@article{two, title={Gua sha and fascia}, author={Doe, J}, year={2020}, doi={10.5555/gs}}\n"
        "@article{three, title={Gua sha and the fascia layers}, author={Roe, K}, year={2021},\n"
        "  doi={10.5555/gs}}\n",
        encoding="utf-8",
    )
    run("db", "init", "--empty")
    result = run("import", str(source))
    assert (
        "3 records: 1 added, 0 merged into library studies, 0 already in the library unchanged, "
        in result.stderr
    )
    assert "2 duplicates within the file" in result.stderr
