"""PRISMA 2020 counts for the saved searches (`evidence prisma`): identification, screening, inclusion.

For the searches chosen (all, without names):
* records identified: each distinct work a search returned, per search (a work found by two searches is
  a record of each, as PRISMA counts records per source);
* duplicates removed: records that were a library study already, or a candidate of an earlier search;
* records screened: the candidates those searches found first, each with its decision;
* excluded, with the count per reason; awaiting screening; included, and of those linked to a claim.
identified = duplicates removed + screened, and screened = excluded + pending + included (a test sums
them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from evidence.store.models import Candidate, StudyClaim, WatchRecord, WatchSearch
from evidence.watch.searches import get_search


def prisma_counts(session: Session, names: Sequence[str] = ()) -> dict[str, Any]:
    searches = (
        [get_search(session, n) for n in dict.fromkeys(names)]
        if names
        else list(session.scalars(select(WatchSearch).order_by(WatchSearch.name)))
    )
    chosen = [s.id for s in searches]
    per_search = dict(
        session.execute(
            select(WatchRecord.search_id, func.count())
            .where(WatchRecord.search_id.in_(chosen))
            .group_by(WatchRecord.search_id)
        ).all()
    )
    outcomes = Counter(
        dict(
            session.execute(
                select(WatchRecord.outcome, func.count())
                .where(WatchRecord.search_id.in_(chosen))
                .group_by(WatchRecord.outcome)
            ).all()
        )
    )
    states: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for state, reason, count in session.execute(
        select(Candidate.state, Candidate.reason, func.count())
        .where(Candidate.search_id.in_(chosen))
        .group_by(Candidate.state, Candidate.reason)
    ):
        states[state] += count
        if state == "excluded":
            reasons[reason or "no reason recorded"] += count
    linked = session.scalar(
        select(func.count())
        .select_from(Candidate)
        .where(
            Candidate.search_id.in_(chosen),
            Candidate.state == "included",
            exists().where(StudyClaim.study_id == Candidate.study_id),
        )
    )
    return {
        "searches": [{"name": s.name, "records": per_search.get(s.id, 0)} for s in searches],
        "identified": sum(per_search.values()),
        "duplicates": outcomes["in-library"] + outcomes["earlier-candidate"],
        "duplicates_in_library": outcomes["in-library"],
        "duplicates_earlier_candidates": outcomes["earlier-candidate"],
        "screened": sum(states.values()),
        "excluded": states["excluded"],
        "excluded_by_reason": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "pending": states["pending"],
        "included": states["included"],
        "included_linked": int(linked or 0),
    }


def prisma_rows(counts: dict[str, Any]) -> list[dict[str, Any]]:
    """The counts as a listing, one PRISMA box (or its detail) per row: stage, detail, count."""
    rows: list[dict[str, Any]] = [
        {"stage": "identified", "detail": "records from Crossref", "count": counts["identified"]}
    ]
    rows += [
        {"stage": "identified", "detail": f"search {s['name']}", "count": s["records"]}
        for s in counts["searches"]
    ]
    removed = "duplicates removed"
    rows += [
        {"stage": removed, "detail": "all", "count": counts["duplicates"]},
        {"stage": removed, "detail": "already in the library", "count": counts["duplicates_in_library"]},
        {
            "stage": removed,
            "detail": "found by an earlier search",
            "count": counts["duplicates_earlier_candidates"],
        },
        {"stage": "screened", "detail": "records screened", "count": counts["screened"]},
        {"stage": "excluded", "detail": "all", "count": counts["excluded"]},
    ]
    rows += [{"stage": "excluded", "detail": r, "count": n} for r, n in counts["excluded_by_reason"].items()]
    rows += [
        {"stage": "awaiting screening", "detail": "pending", "count": counts["pending"]},
        {"stage": "included", "detail": "studies included", "count": counts["included"]},
        {"stage": "included", "detail": "linked to a claim", "count": counts["included_linked"]},
    ]
    return rows
