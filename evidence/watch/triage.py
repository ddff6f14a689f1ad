"""Screening the candidates (`evidence triage`): list the pending ones, include, exclude, undo.

Including makes the candidate a study from Crossref's record (`enrich.add.add_work`: provenance per
field, DOI verified), tagged `watch:NAME` after the search that found it, with the claim, stance, finding
and design given. Excluding keeps the decision with its reason and date, so an excluded work never comes
back as new (a later run finds it among the candidates and counts it as a duplicate). Undo puts a
decision back to pending; undoing an include removes the study it made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence import ids
from evidence.crossref import parse_work
from evidence.enrich.add import add_work
from evidence.errors import InvalidIdentifier, InvalidValue
from evidence.query import show_study
from evidence.records import remove_study
from evidence.store.models import Candidate, Study, WatchSearch, utcnow
from evidence.watch.searches import get_search

REASONS: tuple[str, ...] = (
    "not-iastm",
    "not-a-study",
    "wrong-population",
    "wrong-outcome",
    "duplicate",
    "no-full-text",
    "other:TEXT",
)
ABSTRACT_PREVIEW = 160
LIST_FIELDS: tuple[str, ...] = (
    "id", "doi", "year", "journal", "first_author", "title", "abstract", "status", "search", "found",
)  # fmt: skip


def check_reason(reason: str) -> str:
    value = reason.strip()
    if value.lower().startswith("other:"):
        text = " ".join(value[6:].split())
        if not text:
            raise InvalidValue("--reason other:TEXT needs the text, e.g. other:conference-abstract")
        if len(text) > 200:
            raise InvalidValue(f"the text of --reason other: is at most 200 characters, not {len(text)}")
        return f"other:{text}"
    if value.lower() in REASONS[:-1]:
        return value.lower()
    shown = value if len(value) <= 80 else value[:80] + "…"
    raise InvalidValue(f"unknown reason {shown!r}; expected one of {', '.join(REASONS)}")


def resolve_candidate(session: Session, ref: str) -> Candidate:
    """A candidate by its number (as `evidence triage` lists it) or its DOI."""
    text = ref.strip()
    found: Candidate | None = None
    if text.isdigit():
        found = session.get(Candidate, int(text)) if len(text) < 19 else None
    else:
        try:
            doi = ids.normalize_doi(text)
        except InvalidIdentifier:
            raise InvalidValue(f"a candidate is its number or DOI, not {text[:80]!r}") from None
        found = session.scalar(select(Candidate).where(Candidate.doi == doi))
    if found is None:
        raise InvalidValue(f"no candidate {text[:80]!r} (`evidence triage` lists them by number)")
    return found


_LISTED = (
    Candidate.id, Candidate.doi, Candidate.year, Candidate.journal, Candidate.first_author, Candidate.title,
    Candidate.abstract, Candidate.status, Candidate.found_at, Candidate.state, Candidate.reason,
    Candidate.decided_at, Candidate.study_id,
)  # fmt: skip


def _row(values: Any, search: str | None, *, preview: bool) -> dict[str, Any]:
    """A listing row from a candidate (or a row of its `_LISTED` columns): never Crossref's whole record."""
    abstract = values.abstract
    if preview and abstract and len(abstract) > ABSTRACT_PREVIEW:
        abstract = abstract[:ABSTRACT_PREVIEW].rsplit(" ", 1)[0] + " …"
    return {
        "id": values.id,
        "doi": values.doi,
        "year": values.year,
        "journal": values.journal,
        "first_author": values.first_author,
        "title": values.title,
        "abstract": abstract,
        "status": values.status,
        "search": search,
        "found": values.found_at.date().isoformat(),
        "state": values.state,
        "reason": values.reason,
        "decided": values.decided_at.date().isoformat() if values.decided_at else None,
        "study_id": values.study_id,
    }


def pending(
    session: Session, *, searches: Sequence[str] = (), limit: int | None = None, preview: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """The pending candidates, oldest first (at most `limit`), and how many are pending in all."""
    stmt = select(*_LISTED, WatchSearch.name).outerjoin(WatchSearch, WatchSearch.id == Candidate.search_id)
    count = select(func.count()).select_from(Candidate)
    where = [Candidate.state == "pending"]
    if searches:
        where.append(Candidate.search_id.in_([get_search(session, n).id for n in searches]))
    stmt = stmt.where(*where).order_by(Candidate.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = [_row(row, row.name, preview=preview) for row in session.execute(stmt)]
    return rows, int(session.scalar(count.where(*where)) or 0)


def include(
    session: Session,
    ref: str,
    *,
    claims: Sequence[str] = (),
    stance: str | None = None,
    finding: str | None = None,
    design: str | None = None,
) -> dict[str, Any]:
    """Make a pending candidate a study; returns the study as `show` sees it."""
    candidate = resolve_candidate(session, ref)
    _check_pending(candidate)
    search = session.get(WatchSearch, candidate.search_id) if candidate.search_id else None
    name = search.name if search else "removed-search"
    work = parse_work(candidate.message)
    today = utcnow()
    note = (
        f"Found by the saved Crossref search {name!r} on {candidate.found_at.date().isoformat()}; "
        f"included from triage on {today.date().isoformat()}."
    )
    fields: dict[str, Any] = {"notes": note}
    if design:
        fields["design"] = design
    study = add_work(
        session,
        work,
        candidate.found_at,
        fields=fields,
        claims=claims,
        stance=stance,
        finding=finding,
        tags=[f"watch:{name}"],
    )
    candidate.state, candidate.reason, candidate.decided_at, candidate.study_id = (
        "included",
        None,
        today,
        study.id,
    )
    session.flush()
    return show_study(session, f"id:{study.id}")


def exclude(session: Session, ref: str, reason: str) -> dict[str, Any]:
    candidate = resolve_candidate(session, ref)
    checked = check_reason(reason)
    _check_pending(candidate)
    candidate.state, candidate.reason, candidate.decided_at = "excluded", checked, utcnow()
    session.flush()
    return _row(candidate, candidate.search.name if candidate.search else None, preview=True)


def undo(session: Session, ref: str) -> dict[str, Any]:
    """Put a decided candidate back to pending; an include's study is removed from the library."""
    candidate = resolve_candidate(session, ref)
    if candidate.state == "pending":
        raise InvalidValue(f"candidate {candidate.id} is pending: there is no decision to undo")
    undone: dict[str, Any] = {"id": candidate.id, "was": candidate.state, "reason": candidate.reason}
    if candidate.state == "included" and candidate.study_id is not None:
        study = session.get(Study, candidate.study_id)
        if study is not None:
            undone["removed_study"] = study.citekey
            remove_study(session, study)
    candidate.state, candidate.reason, candidate.decided_at, candidate.study_id = "pending", None, None, None
    session.flush()
    return undone


def _check_pending(candidate: Candidate) -> None:
    if candidate.state == "pending":
        return
    when = candidate.decided_at.date().isoformat() if candidate.decided_at else "earlier"
    how = f"excluded ({candidate.reason})" if candidate.state == "excluded" else "included"
    raise InvalidValue(
        f"candidate {candidate.id} was already {how} on {when}; `evidence triage undo {candidate.id}` first"
    )
