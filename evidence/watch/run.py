"""Running saved searches (`evidence watch run`): new works from Crossref become candidates.

A run asks Crossref for the works matching the query and indexed since the last complete run
(`from-index-date`), walking the results with Crossref's deep-paging cursor, at most `max_works` works.
Each page is stored in its own transaction together with the cursor of the next page, so a run that is
interrupted (a failure, `--max`, a kill) keeps every page already stored, and the next run goes on from the
saved cursor; a cursor Crossref no longer accepts (they expire) starts the walk again from the beginning of
the same window, and works already seen are not stored twice.

What a page's work becomes, in this order:
1. seen by this search before: nothing (not counted again);
2. a study of the library (by DOI, then the importer's title / first author / year matcher, which only
   meets studies without a DOI): recorded as a duplicate of it;
3. a candidate already, by DOI (found by another search, or decided before): recorded as a duplicate;
4. otherwise a new pending candidate, with Crossref's record (and its retraction status).
The run takes the `Database` and commits page by page, like `enrich --all`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from evidence.crossref import CrossrefClient, CrossrefWork, CursorRejected, stops_the_run
from evidence.enrich.merge import work_fields
from evidence.errors import CrossrefError
from evidence.importer import library_records
from evidence.matching import DuplicateIndex, Identity
from evidence.store.db import Database
from evidence.store.models import Candidate, Study, WatchRecord, WatchSearch, utcnow
from evidence.watch.searches import get_search

logger = logging.getLogger(__name__)

DEFAULT_MAX = 1000
PAGE_ROWS = 100


@dataclass
class SearchRun:
    """What one search's run did (`watch run` prints one line of it per search)."""

    name: str
    requests: int = 0
    works: int = 0  # works Crossref returned in this run
    new: int = 0  # new candidates
    in_library: int = 0
    earlier_candidates: int = 0
    seen_before: int = 0  # returned again by this search: not counted again
    retracted: int = 0  # of the new candidates
    skipped: int = 0  # items Crossref sent malformed
    resumed: bool = False  # went on from the cursor of an unfinished run
    restarted: bool = False  # that cursor was refused: walked again from the window's start
    complete: bool = False  # reached the last page: the next run asks only for what is newer
    stopped_at_max: bool = False
    error: str | None = None

    def summary(self) -> str:
        parts = [f"{self.new} new"]
        if self.in_library:
            parts.append(f"{self.in_library} already in the library")
        if self.earlier_candidates:
            parts.append(f"{self.earlier_candidates} already candidates")
        if self.seen_before:
            parts.append(f"{self.seen_before} seen before")
        if self.retracted:
            parts.append(f"{self.retracted} of the new retracted")
        if self.skipped:
            parts.append(f"{self.skipped} malformed, skipped")
        how = f"{self.works} works in {self.requests} request{'s' if self.requests != 1 else ''}"
        text = f"{self.name}: {how}: " + ", ".join(parts)
        if self.resumed:
            text += "; went on from the last run's saved cursor" + (
                " (refused, so from the start of the window again)" if self.restarted else ""
            )
        if self.stopped_at_max:
            text += "; stopped at --max, the next run goes on from here"
        if self.error:
            text += f"; stopped: {self.error} (the pages stored are kept; the next run goes on from there)"
        return text


def _library_index(session: Session) -> DuplicateIndex:
    """The library's identities for the importer's title / first author / year matcher. Candidates are
    not in it: every Crossref work has a DOI, and two works with different DOIs are never matched by title
    (the importer's rule: a wrong merge loses a study), so a candidate is a duplicate by its DOI only."""
    index = DuplicateIndex()
    for study_id, _citekey, rec in library_records(session):
        index.add(Identity.of(f"study:{study_id}", rec))
    return index


def _rec(doi: str | None, title: str | None, family: str | None, year: int | None) -> dict[str, Any]:
    return {"doi": doi, "title": title, "year": year, "authors": [{"family": family}] if family else []}


def _first_family(work: CrossrefWork) -> str | None:
    if not work.authors:
        return None
    first = work.authors[0]
    return first.family or first.name


def _store_page(
    session: Session,
    search_id: int,
    works: Sequence[CrossrefWork],
    *,
    next_cursor: str | None,
    run_from: str | None,
    run_started_at: datetime,
    index: DuplicateIndex,
) -> dict[str, int]:
    search = session.get(WatchSearch, search_id)
    if search is None:
        raise CrossrefError("the saved search was removed while it ran")
    counts = dict.fromkeys(("new", "in_library", "earlier_candidates", "seen_before", "retracted"), 0)
    dois = list(dict.fromkeys(w.doi for w in works))
    seen = set(
        session.scalars(
            select(WatchRecord.doi).where(WatchRecord.search_id == search_id, WatchRecord.doi.in_(dois))
        )
    )
    in_library = dict(session.execute(select(Study.doi, Study.id).where(Study.doi.in_(dois))).all())
    candidates = dict(
        session.execute(select(Candidate.doi, Candidate.id).where(Candidate.doi.in_(dois))).all()
    )
    now = utcnow()
    new_rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for work in works:
        doi = work.doi
        if doi in seen:
            counts["seen_before"] += 1
            continue
        seen.add(doi)
        fields = work_fields(work)
        family = _first_family(work)
        if doi not in in_library and doi not in candidates and fields["title"]:
            matched = index.match(
                Identity.of(f"doi:{doi}", _rec(doi, fields["title"], family, fields["year"]))
            )[0]
            if matched:
                in_library[doi] = int(matched.split(":", 1)[1])
        record: dict[str, Any] = {"search_id": search_id, "doi": doi, "seen_at": now, "study_id": None,
                                  "candidate_id": None}  # fmt: skip
        if doi in in_library:
            record["outcome"] = "in-library"
            record["study_id"] = in_library[doi]
            counts["in_library"] += 1
        elif doi in candidates:
            record["outcome"] = "earlier-candidate"
            record["candidate_id"] = candidates[doi]
            counts["earlier_candidates"] += 1
        else:
            new_rows.append(
                {
                    "doi": doi,
                    "search_id": search_id,
                    "title": fields["title"] or f"(no title: {doi})",
                    "first_author": family,
                    "year": fields["year"],
                    "journal": fields["journal"],
                    "abstract": fields["abstract"],
                    "work_type": work.type,
                    "status": work.status,
                    "message": dict(work.raw),
                    "found_at": now,
                    "state": "pending",
                }
            )
            record["outcome"] = "candidate"
            counts["new"] += 1
            counts["retracted"] += work.status == "retracted"
        records.append(record)
    # One INSERT ... RETURNING for the page's candidates and one INSERT for its records, not a flush each.
    ids_by_doi: dict[str, int] = {}
    if new_rows:
        returned = session.execute(
            insert(Candidate).returning(Candidate.id, Candidate.doi, sort_by_parameter_order=True), new_rows
        )
        ids_by_doi = {doi: cid for cid, doi in returned}
    for record in records:
        if record["outcome"] == "candidate":
            record["candidate_id"] = ids_by_doi[record["doi"]]
    if records:
        session.execute(insert(WatchRecord), records)
    search.cursor = next_cursor
    search.run_from = run_from
    search.run_started_at = run_started_at
    session.flush()
    return counts


def _finish(session: Session, search_id: int, *, complete: bool, next_from: str | None) -> None:
    search = session.get(WatchSearch, search_id)
    if search is None:
        return
    search.last_run_at = utcnow()
    if complete:
        search.cursor = None
        search.next_from = next_from
        search.run_from = None
        search.run_started_at = None


OnPage = Callable[[str, int], None]


def run_search(
    database: Database,
    client: CrossrefClient,
    name: str,
    *,
    max_works: int = DEFAULT_MAX,
    rows: int = PAGE_ROWS,
    on_page: OnPage | None = None,
) -> SearchRun:
    """Run one saved search (see the module's story). A Crossref failure ends the run with `error` set
    and every page stored before it kept; nothing is written before the first page arrives."""
    with database.transaction() as session:
        search = get_search(session, name)
        resuming = search.cursor is not None and search.run_started_at is not None
        plan = _Plan(
            search_id=search.id,
            query=search.query,
            work_type=search.work_type,
            run_from=search.run_from if resuming else search.next_from,
            started=search.run_started_at if resuming and search.run_started_at else utcnow(),
            index=_library_index(session),
        )
        cursor = search.cursor if resuming and search.cursor else "*"
    run = SearchRun(search.name, resumed=resuming)
    sent_before = client.requests_sent
    try:
        _walk(database, client, run, plan, cursor, max_works=max_works, rows=rows, on_page=on_page)
    finally:
        run.requests = client.requests_sent - sent_before
    next_from = plan.started.date().isoformat()
    database.write(lambda s: _finish(s, plan.search_id, complete=run.complete, next_from=next_from))
    return run


@dataclass(frozen=True)
class _Plan:
    """What a run asks for: the search, the window (works indexed since `run_from`), when it began."""

    search_id: int
    query: str
    work_type: str | None
    run_from: str | None
    started: datetime
    index: DuplicateIndex


def _walk(
    database: Database,
    client: CrossrefClient,
    run: SearchRun,
    plan: _Plan,
    cursor: str,
    *,
    max_works: int,
    rows: int,
    on_page: OnPage | None,
) -> None:
    """Page after page until the last, `max_works`, or a failure; each page stored in its transaction."""
    while True:
        wanted = min(rows, max_works - run.works)
        if wanted <= 0:
            run.stopped_at_max = True
            break
        filters = {"from-index-date": plan.run_from or "", "type": plan.work_type or ""}
        try:
            page = client.search_page(plan.query, cursor=cursor, rows=wanted, filters=filters)
        except CursorRejected:
            if run.restarted:
                run.error = "Crossref refused the search's cursor twice"
                break
            logger.info("Crossref refused the saved cursor of %s; walking again from the start", run.name)
            run.restarted, cursor = True, "*"
            continue
        except CrossrefError as exc:
            run.error = str(exc)
            if stops_the_run(exc):
                raise SearchStopped(run, exc) from exc
            break
        run.works += len(page.works)
        run.skipped += page.skipped
        last = not page.works or page.next_cursor is None or len(page.works) + page.skipped < wanted
        if page.works or page.skipped:

            def store(session: Session, page: Any = page, last: bool = last) -> dict[str, int]:
                return _store_page(
                    session,
                    plan.search_id,
                    page.works,
                    next_cursor=None if last else page.next_cursor,
                    run_from=plan.run_from,
                    run_started_at=plan.started,
                    index=plan.index,
                )

            for key, value in database.write(store).items():
                setattr(run, key, getattr(run, key) + value)
            if on_page is not None:
                on_page(run.name, run.works)
        if last:
            run.complete = True
            break
        cursor = page.next_cursor or "*"


class SearchStopped(CrossrefError):
    """Crossref cannot be used now (offline, 5xx, 429): the run of every later search is not attempted."""

    def __init__(self, run: SearchRun, cause: CrossrefError) -> None:
        super().__init__(str(cause), reason=cause.reason)
        self.run = run
        self.cause = cause


def run_searches(
    database: Database,
    client: CrossrefClient,
    names: Iterable[str] = (),
    *,
    max_works: int = DEFAULT_MAX,
    rows: int = PAGE_ROWS,
    on_page: OnPage | None = None,
) -> tuple[list[SearchRun], CrossrefError | None]:
    """Run the named saved searches (all of them, without names), in name order. Unknown names are refused
    before any request. Returns each run, and the error that stopped them all (offline...), if one did."""
    with database.transaction() as session:
        wanted = [get_search(session, n).name for n in names] or list(
            session.scalars(select(WatchSearch.name).order_by(WatchSearch.name))
        )
    runs: list[SearchRun] = []
    for name in dict.fromkeys(wanted):
        try:
            runs.append(run_search(database, client, name, max_works=max_works, rows=rows, on_page=on_page))
        except SearchStopped as stopped:
            runs.append(stopped.run)
            return runs, stopped.cause
    return runs, None
