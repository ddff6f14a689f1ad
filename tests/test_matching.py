"""The duplicate matcher (evidence.matching): identity, not resemblance; and work that grows linearly.

The near-duplicate cases are those of benchmark shape e (tests/bench): variants of one work that must be
merged, and templated distinct works by one group in one year that must not be.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from evidence.matching import DuplicateIndex, Identity, canonical_title, canonical_titles, compare
from tests.helpers import run

TITLE = "Effects of instrument-assisted soft tissue mobilisation on pain in knee osteoarthritis"


def rec(
    title: str = TITLE, family: str = "Wang", given: str | None = "A. B.", year: int | None = 2020, **ids: Any
) -> dict[str, Any]:
    authors = [{"family": family, "given": given}] if family else []
    return {"title": title, "authors": authors, "year": year, **ids}


def verdict(a: dict[str, Any], b: dict[str, Any]) -> str:
    return compare(Identity.of("a", a), Identity.of("b", b)).kind


SAME = [
    pytest.param(rec(TITLE.upper()), id="case"),
    pytest.param(rec(TITLE + "."), id="trailing period"),
    pytest.param(rec(TITLE.replace("soft tissue", "soft-tissue")), id="hyphen"),
    pytest.param(rec(TITLE.replace("instrument-assisted", "instrument assisted")), id="hyphen dropped"),
    pytest.param(rec(TITLE.replace("mobilisation", "mobilization")), id="British/American -ise"),
    pytest.param(rec(TITLE + ": a randomized controlled trial"), id="subtitle added"),
    pytest.param(rec(TITLE, given="Anna B."), id="given name vs initials"),
    pytest.param(rec(TITLE, given="A"), id="fewer initials"),
    pytest.param(rec(TITLE, given=None), id="no given name"),
    pytest.param(rec(TITLE, family="WANG"), id="family case"),
    pytest.param(
        rec("Effects of instrument-assisted soft tissue mobilisation on pain in knee osteoarthritis"),
        id="identical",
    ),
]


@pytest.mark.parametrize("other", SAME)
def test_variants_of_one_work_are_the_same(other: dict[str, Any]) -> None:
    assert verdict(rec(), other) == "same"


def test_british_and_american_spelling_are_one() -> None:
    british = rec("Randomised trial of IASTM: behaviour, haemorrhage and oedema in paediatric centres")
    american = rec("Randomized trial of IASTM: behavior, hemorrhage & edema in pediatric centers")
    assert verdict(british, american) == "same"
    modelling = rec("Modelling the fibre layers of the fascia: a catalogue of tissue ageing")
    assert (
        verdict(modelling, rec("Modeling the fiber layers of the fascia: a catalog of tissue aging"))
        == "same"
    )


def test_diacritics_and_and_versus_ampersand() -> None:
    a = rec("Müller's fascia & tendon study of gua sha in élite athletes", family="Müller")
    b = rec("Mullers fascia and tendon study of gua sha in elite athletes", family="Mueller")
    assert verdict(a, b) == "same"


DISTINCT = [
    pytest.param(rec(TITLE.replace("knee", "hip")), id="condition"),
    pytest.param(rec(TITLE.replace("pain", "function")), id="outcome"),
    pytest.param(rec(TITLE.replace("knee osteoarthritis", "lateral epicondylitis")), id="condition words"),
    pytest.param(
        rec(TITLE.replace("instrument-assisted soft tissue mobilisation", "foam rolling")), id="intervention"
    ),
    pytest.param(rec(TITLE, given="C."), id="initials differ"),
    pytest.param(rec(TITLE, given="A. C."), id="second initial differs"),
    pytest.param(rec(TITLE, family="Li"), id="another first author"),
    pytest.param(rec(TITLE, year=2015), id="years apart"),
    pytest.param(rec(TITLE, doi="10.5555/b"), id="different DOIs"),
]


@pytest.mark.parametrize("other", DISTINCT)
def test_one_content_word_author_or_identifier_makes_another_work(other: dict[str, Any]) -> None:
    base = rec(doi="10.5555/a") if other.get("doi") else rec()
    assert verdict(base, other) == "distinct"


def test_numbered_trials_and_subtitles_that_differ_are_distinct() -> None:
    assert verdict(rec(TITLE + ": trial 2"), rec(TITLE + ": trial 3")) == "distinct"
    assert verdict(rec(TITLE + " (part 1)"), rec(TITLE + " (part 2)")) == "distinct"
    assert (
        verdict(rec(TITLE + ": a pilot study"), rec(TITLE + ": a randomized controlled trial")) == "distinct"
    )


POSSIBLE = [
    pytest.param(rec(TITLE.replace("osteoarthritis", "osteoarthritsi")), id="swapped letters"),
    pytest.param(rec(TITLE.replace("mobilisation", "mobilisaton")), id="letter dropped"),
    pytest.param(rec(TITLE, year=2021), id="a year apart"),
    pytest.param(rec(TITLE, given="Jonathan"), id="given names differ"),
    pytest.param(rec(TITLE, family="", given=None), id="no authors on one"),
    pytest.param(rec("The " + TITLE), id="an article more"),
]


@pytest.mark.parametrize("other", POSSIBLE)
def test_between_the_two_is_possible_never_same(other: dict[str, Any]) -> None:
    base = rec(given="Jon") if other["authors"] and other["authors"][0]["given"] == "Jonathan" else rec()
    assert verdict(base, other) == "possible"


def test_canonical_spelling() -> None:
    assert canonical_title("Randomised, Controlled!  Trial & Behaviour.") == (
        "randomised controled trial and behavior"
    )
    assert canonical_title("Randomized controlled trial and behavior") == canonical_title(
        "randomised controlled trial & behaviour"
    )
    assert canonical_title("Four hours for your toe") == "four hours for your toe"  # short words stay
    assert canonical_titles("IASTM: a review")[1] == ""  # too short to stand as a title
    assert canonical_titles(TITLE + ": a randomized controlled trial")[1] == canonical_title(TITLE)


def test_index_merges_exact_and_lists_possible_without_merging() -> None:
    index = DuplicateIndex()
    index.add(Identity.of("id:1", rec()))
    assert index.match(Identity.of("#1", rec(TITLE.upper() + ".")))[0] == "id:1"
    key, _how, possible = index.match(Identity.of("#2", rec(TITLE, year=2021)))
    assert key is None and [p.other for p in possible] == ["id:1"]
    assert index.match(Identity.of("#3", rec(TITLE.replace("knee", "hip"))))[0] is None


def test_a_title_without_its_subtitle_between_two_works_is_not_merged() -> None:
    index = DuplicateIndex()
    index.add(Identity.of("id:1", rec(TITLE + ": a pilot study")))
    index.add(Identity.of("id:2", rec(TITLE + ": a randomized controlled trial")))
    key, _how, possible = index.match(Identity.of("#1", rec(TITLE)))
    assert key is None and sorted(p.other for p in possible) == ["id:1", "id:2"]


def test_identifiers_that_differ_are_never_scored() -> None:
    index = DuplicateIndex()
    for n in range(50):
        index.add(Identity.of(f"id:{n}", rec(doi=f"10.5555/{n}")))
    key, _how, _possible = index.match(Identity.of("#1", rec(doi="10.5555/new")))
    assert key is None and index.stats.candidates == 0


def test_typos_are_found_by_the_neighbourhood_pass() -> None:
    index = DuplicateIndex()
    index.add(Identity.of("id:1", rec()))
    for n, word in enumerate(["hip", "ankle", "shoulder", "wrist", "elbow", "neck"]):
        index.add(Identity.of(f"id:{n + 2}", rec(TITLE.replace("knee", word))))
    typo = Identity.of("#1", rec(TITLE.replace("osteoarthritis", "osteoarthritsi")))
    assert index.match(typo)[0] is None
    index.add(typo)
    found = index.neighbours(wanted=["#1"])
    assert [(p.key, p.other) for p in found] in ([("#1", "id:1")], [("id:1", "#1")])


# --- the work done, counted ------------------------------------------------------------------------------

CONDITIONS = (
    "knee osteoarthritis",
    "hip osteoarthritis",
    "lateral epicondylitis",
    "plantar fasciitis",
    "low back pain",
    "neck pain",
    "shoulder impingement",
    "achilles tendinopathy",
)
OUTCOMES = (
    "pain",
    "range of motion",
    "grip strength",
    "function",
    "disability",
    "proprioception",
    "muscle stiffness",
    "balance",
)
TOOLS = ("IASTM", "the Graston technique", "gua sha", "a stainless-steel tool", "foam rolling")
DESIGNS = ("a randomized controlled trial", "a pilot study", "a crossover trial", "trial 2", "trial 3")


def one_surname_file(path: Path, n: int) -> int:
    """`n` BibTeX records by first authors all named Wang, all from 2020, titles from one template (the
    same title again under other initials: another Wang's trial); every 10th record repeats an earlier
    work, written otherwise (a true duplicate). Returns the number of distinct works."""
    combos = list(itertools.product(TOOLS, OUTCOMES, CONDITIONS, DESIGNS))
    entries: list[str] = []
    distinct: list[tuple[str, str]] = []
    for i in range(n):
        if i % 10 == 9:
            title, given = distinct[i // 3]
            title = title.replace("randomized", "randomised").upper()
        else:
            tool, outcome, condition, design = combos[len(distinct) % len(combos)]
            title = f"Effects of {tool} on {outcome} in {condition}: {design}"
            given = "ABCDEFGHJK"[len(distinct) // len(combos)] + "."
            distinct.append((title, given))
        entries.append(f"@article{{r{i}, title={{{title}}}, author={{Wang, {given}}}, year={{2020}}}}")
    path.write_text("\n".join(entries) + "\n", encoding="utf-8")
    return len(distinct)


def test_one_surname_one_year_costs_a_small_multiple_of_the_records(tmp_path: Path) -> None:
    n = 5000
    source, report = tmp_path / "wang2020.bib", tmp_path / "report.json"
    works = one_surname_file(source, n)
    run("db", "init", "--empty")
    result = run("import", str(source), "--report", str(report))
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["counts"]["added"] == works, result.stderr
    assert data["counts"]["duplicate-in-file"] == n - works
    work = data["work"]
    # Every record meets only its own title in the hash look-ups, and at most 2 x WINDOW neighbours.
    assert work["candidates"] <= 2 * n
    assert work["pairs_scored"] <= 8 * n
    assert data["possible_duplicates"] == []  # templated titles differ in words: nothing to ask about
