"""The enrich run: many studies filled in from Crossref, in committed chunks, resumable, reported per study.

``enrich`` is the deliberate exception to "services never commit" (STYLE.md): it takes a ``Database`` and
commits one transaction per chunk of up to 50 studies (one Crossref batch), so that an interrupted run
keeps what it finished and a re-run resumes (the cache makes the finished part free). Requests are sent
outside any transaction, so a slow Crossref never holds the database's write lock. Each study gets a
``StudyOutcome``; the run, an ``EnrichReport``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evidence import records
from evidence.crossref import CrossrefClient, CrossrefWork, parse_work, stops_the_run, unreachable
from evidence.enrich.cache import cached_dois, cached_messages, store_message, store_not_found
from evidence.enrich.merge import Conflict, merge_work
from evidence.errors import BadResponse, CrossrefError, DoiNotFound, InvalidValue
from evidence.sequences import chunks
from evidence.store.db import Database
from evidence.store.models import Study, utcnow

#: Studies per committed chunk; equal to the Crossref batch so that one chunk costs at most one request.
CHUNK_SIZE = 50
Outcome = Literal["enriched", "unchanged", "not-found", "failed", "no-doi"]
#: ``on_progress(outcome, done, total)``: called once per study, after its chunk is committed.
Progress = Callable[["StudyOutcome", int, int], None]


@dataclass
class StudyOutcome:
    """What enrichment (or the update check) did to one study."""

    id: int
    citekey: str
    doi: str | None
    outcome: Outcome
    filled: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    status: str = "ok"
    previous_status: str = "ok"
    updates: list[dict[str, Any]] = field(default_factory=list)
    detail: str | None = None
    from_cache: bool = False

    @property
    def problem(self) -> bool:
        return self.outcome in ("failed", "not-found")

    def row(self) -> dict[str, Any]:
        detail = self.detail
        if self.from_cache and detail is None:
            detail = "from the cache"
        return {
            "id": self.id,
            "citekey": self.citekey,
            "doi": self.doi,
            "outcome": self.outcome,
            "filled": self.filled,
            "updated": self.updated,
            "conflicts": [c.describe() for c in self.conflicts],
            "status": self.status,
            "updates": self.updates,
            "detail": detail,
        }


@dataclass
class EnrichReport:
    items: list[StudyOutcome]
    requests_sent: int = 0
    responses_429: int = 0
    from_cache: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for item in self.items if item.outcome == outcome)

    @property
    def conflicts(self) -> int:
        return sum(len(item.conflicts) for item in self.items)

    @property
    def failed(self) -> bool:
        """Anything that needs the user: a failure, or a DOI Crossref does not know."""
        return any(item.problem for item in self.items)

    def summary(self) -> str:
        parts = [
            f"{self.count(outcome)} {outcome.replace('-', ' ')}"
            for outcome in ("enriched", "unchanged", "not-found", "failed", "no-doi")
            if self.count(outcome) or outcome in ("enriched", "failed")
        ]
        parts.append(f"{self.conflicts} conflicts kept")
        return (
            ", ".join(parts)
            + f"; {self.requests_sent} requests to Crossref, {self.from_cache} studies from the cache"
        )


@dataclass(frozen=True)
class _Target:
    position: int
    id: int
    citekey: str
    doi: str | None


def _targets(session: Session, refs: Sequence[str] | None) -> list[_Target]:
    if refs is None:
        rows = session.execute(select(Study.id, Study.citekey, Study.doi).order_by(Study.id)).all()
        return [_Target(i, r.id, r.citekey, r.doi) for i, r in enumerate(rows)]
    targets: list[_Target] = []
    seen: set[int] = set()
    for ref in refs:
        study = records.resolve_ref(session, ref)  # RecordNotFound before any request
        if study.id not in seen:
            seen.add(study.id)
            targets.append(_Target(len(targets), study.id, study.citekey, study.doi))
    return targets


def enrich(
    db: Database,
    client: CrossrefClient,
    refs: Sequence[str] | None = None,
    *,
    refresh: bool = False,
    cache_only: bool = False,
    facts_only: bool = False,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Progress | None = None,
) -> EnrichReport:
    """Fill in what Crossref knows for ``refs`` (every study when ``None``), committing per chunk.

    DOIs not in the cache (all of them with ``refresh``) are fetched ``chunk_size`` per request; cached
    ones cost nothing, including DOIs Crossref said it does not know (``not-found`` again, from the
    cache). ``cache_only`` sends no request at all: a DOI never fetched is reported as failed ("not in the
    cache"). Fetched chunks go first, so that when Crossref cannot be reached at all the run
    stops before changing anything (raising the one-line ``unreachable`` error). Once Crossref fails
    mid-run, no further requests are sent: the remaining uncached studies are reported as failed, the
    cached ones are still merged, and what was committed stays. ``facts_only`` updates only status,
    updates, citations and references (``check_updates``).
    """
    if not 1 <= chunk_size <= CHUNK_SIZE:
        raise InvalidValue(f"a chunk holds 1 to {CHUNK_SIZE} studies, not {chunk_size}")
    if refresh and cache_only:
        raise InvalidValue("refresh asks Crossref again; cache_only never asks: not both")
    requests_before, throttled_before = client.requests_sent, client.responses_429
    with db.transaction() as session:
        targets = _targets(session, refs)
        with_doi = [t for t in targets if t.doi]
        in_cache = set() if refresh else cached_dois(session, [str(t.doi) for t in with_doi])

    outcomes: list[StudyOutcome] = []

    def report(outcome: StudyOutcome) -> None:
        outcomes.append(outcome)
        if on_progress is not None:
            on_progress(outcome, len(outcomes), len(targets))

    for target in targets:
        if not target.doi:
            report(
                StudyOutcome(
                    target.id,
                    target.citekey,
                    None,
                    "no-doi",
                    detail="no DOI: try `evidence resolve --missing`",
                )
            )

    to_fetch = [] if cache_only else [t for t in with_doi if t.doi not in in_cache]
    cached = [t for t in with_doi if t.doi in in_cache or cache_only]
    stopped: CrossrefError | None = None
    committed = False
    plan = [(chunk, True) for chunk in chunks(to_fetch, chunk_size)]
    plan += [(chunk, False) for chunk in chunks(cached, chunk_size)]
    for chunk, fetch in plan:
        fetched: dict[str, CrossrefWork | CrossrefError] = {}
        if fetch and stopped is None:
            fetched = client.fetch_works([str(t.doi) for t in chunk], confirm_missing=True)
            failures = [r for r in fetched.values() if isinstance(r, CrossrefError) and stops_the_run(r)]
            if failures:
                stopped = failures[0]
                if not committed and not any(isinstance(r, CrossrefWork) for r in fetched.values()):
                    raise unreachable(stopped)
        chunk_outcomes = _merge_chunk(
            db, chunk, fetched, stopped, facts_only=facts_only, cache_only=cache_only
        )
        committed = True
        for outcome in chunk_outcomes:
            report(outcome)

    order = {t.id: t.position for t in targets}
    outcomes.sort(key=lambda o: order[o.id])
    return EnrichReport(
        outcomes,
        requests_sent=client.requests_sent - requests_before,
        responses_429=client.responses_429 - throttled_before,
        from_cache=sum(1 for o in outcomes if o.from_cache),
    )


def _merge_chunk(
    db: Database,
    chunk: Sequence[_Target],
    fetched: Mapping[str, CrossrefWork | CrossrefError],
    stopped: CrossrefError | None,
    *,
    facts_only: bool,
    cache_only: bool = False,
) -> list[StudyOutcome]:
    """One transaction: cache what was fetched (works and not-found answers), merge every study, commit.
    Run again when another client's write overtook it (`Database.write`): on PostgreSQL two clinicians
    enriching the same study, or caching the same DOI, at once; SQLite lets one writer in at a time."""
    return db.write(
        lambda session: _merge_in(
            session, chunk, fetched, stopped, facts_only=facts_only, cache_only=cache_only
        )
    )


def _merge_in(
    session: Session,
    chunk: Sequence[_Target],
    fetched: Mapping[str, CrossrefWork | CrossrefError],
    stopped: CrossrefError | None,
    *,
    facts_only: bool,
    cache_only: bool,
) -> list[StudyOutcome]:
    outcomes: list[StudyOutcome] = []
    now = utcnow()
    for doi, answer in fetched.items():
        if isinstance(answer, CrossrefWork):
            store_message(session, doi, answer.raw, now)
        elif isinstance(answer, DoiNotFound):
            store_not_found(session, doi, now)
    cache = cached_messages(session, [str(t.doi) for t in chunk if str(t.doi) not in fetched])
    studies = {
        s.id: s
        for s in session.scalars(
            select(Study).where(Study.id.in_([t.id for t in chunk])).options(selectinload(Study.authors))
        )
    }
    for target in chunk:
        doi = str(target.doi)
        study = studies.get(target.id)
        if study is None:  # removed meanwhile (another process)
            continue
        outcome = StudyOutcome(target.id, target.citekey, doi, "unchanged", previous_status=study.status)
        result: CrossrefWork | CrossrefError | None = fetched.get(doi)
        checked_at = now
        if result is None and doi in cache:
            entry = cache[doi]
            checked_at = entry.fetched_at
            outcome.from_cache = True
            if entry.message is None:
                result = entry.not_found()
            else:
                try:
                    result = parse_work(entry.message)
                except BadResponse as exc:
                    result = exc
        if result is None and cache_only:
            outcome.outcome = "failed"
            outcome.detail = "not in the cache: never fetched from Crossref (ask without --cached)"
        elif result is None:
            assert stopped is not None
            outcome.outcome = "failed"
            outcome.detail = f"not attempted: {unreachable(stopped)}"
        elif isinstance(result, DoiNotFound):
            outcome.outcome = "not-found"
            outcome.detail = str(result)
        elif isinstance(result, CrossrefError):
            outcome.outcome = "failed"
            outcome.detail = str(result)
        else:
            merged = merge_work(session, study, result, checked_at, facts_only=facts_only)
            outcome.filled, outcome.updated, outcome.conflicts = (
                merged.filled,
                merged.updated,
                merged.conflicts,
            )
            if merged.filled or merged.updated:
                outcome.outcome = "enriched"
        outcome.status = study.status
        outcome.updates = list(study.updates or [])
        outcomes.append(outcome)
    return outcomes
