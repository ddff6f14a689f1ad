"""The shipped library: first use seeds it, re-seeding adds nothing twice and never overwrites edits."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run, run_json

SEED_COUNT = 49


def test_first_use_seeds_the_library() -> None:
    rows = run_json("find")
    assert len(rows) == SEED_COUNT
    practice = run_json("find", "--tag", "practice-article")
    assert len(practice) == 9
    shown = [run_json("show", r["citekey"]) for r in practice]
    assert all(s["cited_by_practice_article"] for s in shown)
    assert {s["source"] for s in shown} == {"seed"}


def test_seed_is_idempotent_and_keeps_user_edits() -> None:
    run_json("find")
    run("edit", "crothers2016spinal", "--pedro", "8", "--title", "My own title for Crothers")
    run("link", "crothers2016spinal", "--claim", "pain-modulation", "--stance", "mixed")
    run("remove", "bove2012visceral", "--yes")
    result = run("db", "seed")
    # The removed study comes back (an explicit re-seed asks for it); nothing else is added or changed.
    assert "seed: 1 added, 48 already present" in result.stderr
    assert len(run_json("find")) == SEED_COUNT
    crothers = run_json("show", "crothers2016spinal")
    assert crothers["pedro"] == 8 and crothers["title"] == "My own title for Crothers"
    assert crothers["claims"][0]["stance"] == "mixed"
    assert crothers["field_sources"]["title"] == "manual"
    result = run("db", "seed")
    assert "seed: 0 added, 49 already present" in result.stderr


def test_a_study_the_user_already_has_is_not_duplicated(isolated_home: Path) -> None:
    run("db", "init", "--empty")
    run("add", "--title", "My copy of Crothers", "--doi", "10.1186/s12998-016-0096-9")
    result = run("db", "seed")
    assert "48 added, 1 already present" in result.stderr
    assert run_json("show", "10.1186/s12998-016-0096-9")["title"] == "My copy of Crothers"


def test_verification_status_is_kept_and_shown() -> None:
    markovic = [r for r in run_json("find") if r["citekey"].startswith("markovic2015")]
    assert len(markovic) == 1 and markovic[0]["doi"] is None and markovic[0]["pmid"] is None
    shown = run_json("show", markovic[0]["citekey"])
    assert shown["verification"]["doi"] == "not-found"
    assert "searched, not found" in run("show", markovic[0]["citekey"]).stdout
    text = run("show", "crothers2016spinal").stdout
    assert "10.1186/s12998-016-0096-9  [verified]" in text
    assert "erratum" in text.lower()


def test_the_honest_picture_of_inflammatory_healing() -> None:
    claims = {c["claim"]: c for c in run_json("claims", "--mechanism", "inflammatory-healing")}
    support = sum(c["supports"] for c in claims.values())
    animal = sum(c["animal"]["supports"] for c in claims.values())
    assert support and animal / support >= 0.5
    assert all(c["by_level"]["1"]["supports"] == 0 for c in claims.values())
    contradicting = run_json("find", "--claim", "tissue-density", "--stance", "contradicts")
    assert {r["citekey"][:5] for r in contradicting} == {"ikeda"}
