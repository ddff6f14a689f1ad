"""Saved Crossref searches: add, list, remove (`evidence watch add|list|remove`)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from evidence.errors import InvalidValue, UnknownName
from evidence.store.models import Candidate, WatchRecord, WatchSearch

MAX_QUERY_CHARS = 500
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEFAULT_TYPE = "journal-article"
# Crossref's work types (GET /types); "any" searches them all.
WORK_TYPES: tuple[str, ...] = (
    "journal-article", "posted-content", "proceedings-article", "book-chapter", "book", "monograph",
    "edited-book", "reference-entry", "report", "dissertation", "dataset", "peer-review", "standard",
    "component", "other", "any",
)  # fmt: skip


def _quote(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def check_search_name(name: str) -> str:
    cleaned = name.strip().lower()
    if not NAME_RE.match(cleaned):
        raise InvalidValue(
            f"a search name is 1-64 lower-case letters, digits, '.', '_' or '-', not {_quote(name)}"
        )
    return cleaned


def check_query(query: str) -> str:
    cleaned = " ".join(query.split())
    if not cleaned:
        raise InvalidValue("a saved search needs a query (words Crossref looks for)")
    if len(cleaned) > MAX_QUERY_CHARS:
        raise InvalidValue(
            f"a query is at most {MAX_QUERY_CHARS} characters, not {len(cleaned):,} ({_quote(cleaned)})"
        )
    return cleaned


def check_since(since: str | None) -> str | None:
    if since is None:
        return None
    try:
        day = date.fromisoformat(since.strip())
    except ValueError:
        raise InvalidValue(f"--since must be a date as YYYY-MM-DD, not {_quote(since)}") from None
    if day > date.today():
        raise InvalidValue(f"--since {day.isoformat()} is in the future")
    return day.isoformat()


def check_type(work_type: str | None) -> str | None:
    value = (work_type or DEFAULT_TYPE).strip().lower()
    if value not in WORK_TYPES:
        raise UnknownName("work type", value, WORK_TYPES)
    return None if value == "any" else value


def get_search(session: Session, name: str) -> WatchSearch:
    found = session.scalar(select(WatchSearch).where(WatchSearch.name == name.strip().lower()))
    if found is None:
        known = list(session.scalars(select(WatchSearch.name).order_by(WatchSearch.name)))
        hint = (
            f"; saved searches: {', '.join(known)}" if known else "; none is saved yet (evidence watch add)"
        )
        raise InvalidValue(f"no saved search named {_quote(name)}{hint}")
    return found


def add_search(
    session: Session, name: str, query: str, *, since: str | None = None, work_type: str | None = None
) -> WatchSearch:
    """Save a search; its first run asks for works indexed since `since` (or ever, without)."""
    name = check_search_name(name)
    search = WatchSearch(
        name=name, query=check_query(query), since=check_since(since), work_type=check_type(work_type)
    )
    if session.scalar(select(WatchSearch.id).where(WatchSearch.name == name)) is not None:
        raise InvalidValue(f"a search named {name!r} is already saved (evidence watch list)")
    search.next_from = search.since
    session.add(search)
    session.flush()
    return search


def list_searches(session: Session) -> list[dict[str, Any]]:
    """Each saved search with its last run and what it found (records, new, pending, included, excluded)."""
    records = dict(
        session.execute(select(WatchRecord.search_id, func.count()).group_by(WatchRecord.search_id)).all()
    )
    per_state: dict[int, dict[str, int]] = {}
    for search_id, state, count in session.execute(
        select(Candidate.search_id, Candidate.state, func.count()).group_by(
            Candidate.search_id, Candidate.state
        )
    ):
        if search_id is not None:
            per_state.setdefault(search_id, {})[state] = count
    rows = []
    for s in session.scalars(select(WatchSearch).order_by(WatchSearch.name)):
        states = per_state.get(s.id, {})
        rows.append(
            {
                "name": s.name,
                "query": s.query,
                "since": s.since,
                "type": s.work_type or "any",
                "last_run": s.last_run_at.strftime("%Y-%m-%d %H:%M") if s.last_run_at else None,
                "next_from": s.next_from,
                "unfinished": s.cursor is not None,
                "records": records.get(s.id, 0),
                "candidates": sum(states.values()),
                "pending": states.get("pending", 0),
                "included": states.get("included", 0),
                "excluded": states.get("excluded", 0),
            }
        )
    return rows


def remove_search(session: Session, name: str) -> dict[str, int]:
    """Forget a search and its pending candidates; decided candidates stay (with their decisions), so an
    excluded work never comes back as new, and studies included from it stay in the library."""
    search = get_search(session, name)
    counts = dict(
        session.execute(
            select(
                func.count(case((Candidate.state == "pending", 1))),
                func.count(case((Candidate.state != "pending", 1))),
            ).where(Candidate.search_id == search.id)
        )
        .one()
        ._mapping
    )
    pending, decided = counts.values()
    # Another search's record of one of these candidates keeps its outcome (its candidate_id is set NULL).
    session.execute(delete(Candidate).where(Candidate.search_id == search.id, Candidate.state == "pending"))
    session.execute(delete(WatchRecord).where(WatchRecord.search_id == search.id))
    session.delete(search)
    session.flush()
    return {"pending_removed": int(pending), "decided_kept": int(decided)}
