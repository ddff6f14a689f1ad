"""The cache of Crossref's answers: one row per DOI asked, so that asking again costs nothing.

Table ``crossref_cache`` holds the DOI, the fetch time, a ``status`` and the raw work message. A DOI already
cached costs no request unless ``refresh=True``, and so does a DOI Crossref said it does not know
(``status="not-found"``, no message): asking again every run would cost two requests (the batch and the
confirming ``/works/{doi}``) to learn the same thing. Citation searches are not cached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from evidence import ids
from evidence.crossref import CrossrefClient, CrossrefWork, parse_work, unreachable
from evidence.errors import BadResponse, CrossrefError, DoiNotFound
from evidence.sequences import chunks
from evidence.store.models import CACHE_FOUND, CACHE_NOT_FOUND, CrossrefCache, utcnow

logger = logging.getLogger(__name__)

#: DOIs per ``IN (...)`` look-up: far below SQLite's bound-parameter limit.
_LOOKUP_SIZE = 500
T = TypeVar("T")


@dataclass(frozen=True)
class CachedMessage:
    """One cached answer: Crossref's work message, or ``None`` when Crossref had no record of the DOI."""

    doi: str
    fetched_at: datetime
    message: Mapping[str, Any] | None

    @property
    def found(self) -> bool:
        return self.message is not None

    def not_found(self) -> DoiNotFound:
        return DoiNotFound(
            f"Crossref has no record of DOI {self.doi} (as of {self.fetched_at.date().isoformat()}, from the "
            "cache; --refresh asks again)",
            doi=self.doi,
        )


def cached_messages(session: Session, dois: Iterable[str]) -> dict[str, CachedMessage]:
    """The cached answers for ``dois`` (normalised), by DOI; DOIs never asked are simply not in the dict."""
    found: dict[str, CachedMessage] = {}
    for row in _in_chunks(
        session, dois, lambda chunk: select(CrossrefCache).where(CrossrefCache.doi.in_(chunk))
    ):
        message = row.message if row.status == CACHE_FOUND else None
        found[row.doi] = CachedMessage(row.doi, row.fetched_at, message)
    return found


def cached_dois(session: Session, dois: Iterable[str]) -> set[str]:
    """Which of ``dois`` (normalised) the cache has an answer for, without loading the answers."""
    return set(
        _in_chunks(session, dois, lambda chunk: select(CrossrefCache.doi).where(CrossrefCache.doi.in_(chunk)))
    )


def _in_chunks(session: Session, dois: Iterable[str], query: Callable[[list[str]], Select[T]]) -> Iterator[T]:
    """The rows of ``query(chunk)`` for each chunk of ``dois`` (duplicates asked once)."""
    for chunk in chunks(dict.fromkeys(dois), _LOOKUP_SIZE):
        yield from session.scalars(query(chunk))


def store_message(session: Session, doi: str, message: Mapping[str, Any], fetched_at: datetime) -> None:
    """Insert or replace the cached message of ``doi`` (the DOI that was asked for, normalised)."""
    _store(session, doi, CACHE_FOUND, dict(message), fetched_at)


def store_not_found(session: Session, doi: str, fetched_at: datetime) -> None:
    """Remember that Crossref had no record of ``doi`` at ``fetched_at`` (so the next run does not ask)."""
    _store(session, doi, CACHE_NOT_FOUND, None, fetched_at)


def _store(
    session: Session, doi: str, status: str, message: dict[str, Any] | None, fetched_at: datetime
) -> None:
    row = session.get(CrossrefCache, doi)
    if row is None:
        session.add(CrossrefCache(doi=doi, fetched_at=fetched_at, status=status, message=message))
    else:
        row.status, row.message, row.fetched_at = status, message, fetched_at


def fetch_work_cached(
    session: Session, client: CrossrefClient, doi: str, *, refresh: bool = False
) -> tuple[CrossrefWork, datetime, bool]:
    """One work, from the cache unless ``refresh``; ``(work, fetched_at, from_cache)``.

    A fetched work is written to the cache in ``session``. Crossref errors are raised; "Crossref cannot be
    reached" comes as the one-line ``unreachable`` error. A cached "not found" is not trusted here: a user
    adding one DOI by hand may just have registered it, and one request is cheap.
    """
    key = ids.normalize_doi(doi)
    if not refresh:
        cached = cached_messages(session, [key]).get(key)
        if cached is not None and cached.message is not None:
            try:
                return parse_work(cached.message), cached.fetched_at, True
            except BadResponse:
                logger.warning("the cached Crossref record of %s is unreadable; fetching it again", key)
    try:
        work = client.fetch_work(key)
    except CrossrefError as exc:
        raise unreachable(exc) from exc
    now = utcnow()
    store_message(session, key, work.raw, now)
    return work, now, False
