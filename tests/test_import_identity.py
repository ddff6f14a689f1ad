"""Import: identifiers filled into a pending record stay unique, and an identifier match with a different
title or first author is reported (one of the two identifiers is probably a typo)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run, run_json

COLLIDE = """\
@article{a1, title={Brand new study of scraping}, author={Zed, Anna}, year={2021}, doi={10.5555/new.1}}
@article{a2, title={Brand new study of scraping}, author={Zed, Anna}, year={2021}, doi={10.5555/new.1},
  pmid={19574659}}
@article{b1, title={Another new study of scraping}, author={Yu, Bo}, year={2021}}
@article{b2, title={Another new study of scraping}, author={Yu, Bo}, year={2021}, doi={10.5555/zzz}}
@article{b3, title={Unrelated paper about knees}, author={Xi, Cy}, year={2020}, doi={10.5555/zzz}}
@article{c1, title={Completely different title about rats}, author={Someone, Else}, year={1999},
  doi={10.1097/00005768-199703000-00005}}
"""


def test_identifier_collisions_are_conflicts_not_crashes(tmp_path: Path) -> None:
    before = {r["citekey"]: r for r in run_json("find")}
    source = tmp_path / "collide.bib"
    source.write_text(COLLIDE, encoding="utf-8")
    result = run("import", str(source))
    err = result.stderr
    assert "2 added" in err
    assert "collide.bib:2: conflict with a1: pmid: 19574659 belongs to another study; not filled" in err
    assert "collide.bib:6: conflict with b1: title:" in err and "(same DOI: check it)" in err
    assert "collide.bib:7: conflict with davidson1997rat: title:" in err
    assert "first author differs from the library's" in err
    after = {r["citekey"]: r for r in run_json("find")}
    assert set(after) - set(before) == {"a1", "b1"}
    assert after["a1"]["pmid"] is None
    assert after["b1"]["doi"] == "10.5555/zzz"
    assert after["davidson1997rat"]["title"] == before["davidson1997rat"]["title"]


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    source = tmp_path / "empty.bib"
    source.write_text("", encoding="utf-8")
    result = run("import", str(source), "--format", "bibtex")
    assert "0 records" in result.stderr
    assert "warning: no records found" in result.stderr
