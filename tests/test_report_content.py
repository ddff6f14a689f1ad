"""The report's content, computed from rows: verdicts counted from the data, flags never counted, each study
numbered once in the order the page shows it, chart data that adds up to the tables."""

from __future__ import annotations

from typing import Any

from evidence.formats.common import status_label
from evidence.report.content import (
    Entry,
    build_report,
    claim_verdict,
    evidence_map,
    mechanism_verdict,
    studies_by_year,
)

_IDS = iter(range(1, 10_000))


def study(
    population: str | None,
    design: str,
    level: int,
    links: list[tuple[str, str]],
    *,
    status: str = "ok",
    year: int = 2020,
) -> dict[str, Any]:
    sid = next(_IDS)
    return {
        "id": sid,
        "citekey": f"s{sid}",
        "population": population,
        "design": design,
        "level": level,
        "year": year,
        "status": status,
        "updates": [],
        "claims": [
            {"claim": c, "mechanism": None, "stance": s, "finding": f"finding {sid}"} for c, s in links
        ],
    }


def entries(*studies: dict[str, Any]) -> list[Entry]:
    return [Entry(s, s["claims"][0]["stance"], None, status_label(s)) for s in studies]


def report_of(studies: list[dict[str, Any]], **kw: Any) -> Any:
    return build_report(studies, title="t", generated="2026-01-01", library="lib", **kw)


def test_the_verdict_names_the_strongest_human_evidence_and_who_supports() -> None:
    """The issue's own example: human RCTs no better than sham, the support from animal work."""
    rows = [
        study("human", "rct", 2, [("pain-modulation", "no-effect")]),
        study("human", "rct", 2, [("pain-modulation", "no-effect")]),
        *(study("animal", "animal-study", 5, [("pain-modulation", "supports")]) for _ in range(4)),
    ]
    assert claim_verdict(entries(*rows)) == (
        "6 studies: 4 support and 2 show no effect. The strongest human evidence is level 2: 2 RCTs "
        "(both show no effect). None of the supporting studies is in humans: 4 animal studies."
    )


def test_a_flagged_study_is_listed_and_never_counted() -> None:
    good = study("human", "systematic-review", 1, [("blood-flow", "no-effect")])
    retracted = study("human", "rct", 2, [("blood-flow", "supports")], status="retracted")
    concern = study("animal", "animal-study", 5, [("blood-flow", "supports")], status="expression-of-concern")
    verdict = claim_verdict(entries(good, retracted, concern))
    assert verdict.startswith("1 study: 1 shows no effect. The strongest human evidence is level 1")
    assert "support" not in verdict.split(".")[0]  # no support counted
    assert verdict.endswith("1 expression of concern and 1 retracted studies are listed but not counted.")
    assert claim_verdict(entries(retracted)) == (
        "No study in good standing bears on this claim. 1 retracted study is listed but not counted."
    )


def test_support_split_across_populations_and_mixed_human_evidence() -> None:
    rows = [
        study("human", "rct", 2, [("proprioception", "supports")]),
        study("human", "rct", 2, [("proprioception", "contradicts")]),
        study("animal", "animal-study", 5, [("proprioception", "supports")]),
        study(None, "case-series", 4, [("proprioception", "supports")]),
    ]
    assert claim_verdict(entries(*rows)) == (
        "4 studies: 3 support and 1 contradicts. The strongest human evidence is level 2: 2 RCTs (1 supports "
        "and 1 contradicts). Supporting studies: 1 human, 1 animal and 1 with no population recorded."
    )
    only_animals = claim_verdict(entries(rows[2]))
    assert only_animals == (
        "1 study: 1 supports. No human study. None of the supporting studies is in humans: 1 animal study."
    )


def test_a_study_counts_once_per_mechanism_and_mixed_when_its_claims_disagree() -> None:
    both = study("human", "rct", 2, [("pain-modulation", "supports"), ("proprioception", "no-effect")])
    one = study("animal", "animal-study", 5, [("pain-modulation", "supports")])
    report = report_of([both, one])
    (section,) = report.sections
    assert section.key == "neural-stimulation"
    assert [c.name for c in section.claims] == ["pain-modulation", "proprioception"]
    assert (
        mechanism_verdict(section.claims)
        == section.verdict
        == (
            "2 studies (1 human and 1 animal) across 2 claims: 1 supports and 1 is mixed "
            "(1 study whose claims point different ways counts as mixed)."
        )
    )


def test_filters_keep_only_the_links_they_name_and_list_the_rest_as_unlinked() -> None:
    both = study("human", "rct", 2, [("pain-modulation", "supports"), ("blood-flow", "no-effect")])
    other = study("human", "rct", 2, [("blood-flow", "supports")])
    bare = study("human", "case-report", 4, [])
    report = report_of([both, other, bare], mechanisms=["neural-stimulation"])
    assert [c.name for c in report.claims] == ["pain-modulation"]
    assert [e.study["id"] for e in report.unlinked] == [other["id"], bare["id"]]
    by_claim = report_of([both, other, bare], by="claim")
    assert [s.title for s in by_claim.sections] == ["Pain gate / pain modulation", "Blood flow and perfusion"]
    assert all(s.single_claim and len(s.claims) == 1 for s in by_claim.sections)


def test_document_order_numbers_each_study_once_in_first_shown_order() -> None:
    a = study("animal", "animal-study", 5, [("blood-flow", "supports")])
    b = study("human", "rct", 2, [("pain-modulation", "supports"), ("blood-flow", "no-effect")])
    c = study("human", "rct", 2, [("pain-modulation", "contradicts")])
    report = report_of([a, b, c])
    # pain-modulation first (vocabulary order): b, c; then blood-flow: b again (level 2), a.
    assert [s["id"] for s in report.document_order()] == [b["id"], c["id"], a["id"]]


def test_chart_data_adds_up_to_the_tables() -> None:
    rows = [
        study("human", "rct", 2, [("pain-modulation", "supports")], year=2019),
        study("human", "rct", 2, [("pain-modulation", "supports")], year=2019),
        study("animal", "animal-study", 5, [("pain-modulation", "no-effect")], year=2012),
        study("human", "rct", 2, [("tissue-density", "supports")], status="retracted", year=2012),
    ]
    report = report_of(rows)
    cells = evidence_map(report)
    assert [(c.claim, c.level, c.stance, c.population, c.count) for c in cells] == [
        ("pain-modulation", 2, "supports", "human", 2),
        ("pain-modulation", 5, "no-effect", "animal", 1),
    ]  # the retracted study is in a table, flagged, and on no chart
    counted = sum(len(c.counted) for c in report.claims)
    assert sum(c.count for c in cells) == counted == 3
    years = studies_by_year(report)
    assert [(y.claim, y.year, y.count, y.best_level) for y in years] == [
        ("pain-modulation", 2012, 1, 5),
        ("pain-modulation", 2019, 2, 2),
    ]
    assert "1 study is retracted" in report.summary
