"""Crossref: the only package that talks to habanero (and reads httpx2's exception classes).

Its modules, each with one story:

- ``parse``: the pure ``parse_work(message) -> CrossrefWork`` and the frozen types it returns.
- ``client``: ``CrossrefClient``, habanero behind typed calls: one work, batches of up to 50 DOIs,
  free-text citation searches and deep-paged searches a page at a time, every request throttled and
  retried.
- ``throttle``: the pool limits, the rate limiter and the retry policy, and the headers that steer them.
- ``failures``: every habanero / httpx2 failure translated, per DOI, into ``evidence.errors``, and what a
  failure means for a run (``stops_the_run``, ``unreachable``).

habanero and httpx2 are imported inside functions only, so that ``import evidence.crossref`` stays cheap.
The names below are the package's API; import them from ``evidence.crossref``.
"""

from __future__ import annotations

from evidence.crossref.client import (
    MAX_BATCH,
    MAX_REFUSED_SINGLES,
    CrossrefClient,
    CursorRejected,
    OnResult,
    WorkPage,
)
from evidence.crossref.failures import FailureKind, Route, stops_the_run, unreachable
from evidence.crossref.parse import (
    Author,
    ClinicalTrial,
    CrossrefWork,
    PartialDate,
    Relation,
    UpdateType,
    WorkStatus,
    WorkUpdate,
    jats_to_text,
    normalise_orcid,
    normalise_update_type,
    parse_date_parts,
    parse_work,
)
from evidence.crossref.throttle import (
    POLITE_POOL,
    PUBLIC_POOL,
    PoolLimits,
    RateLimiter,
    RetryPolicy,
    parse_rate_limit,
    parse_retry_after,
)

__all__ = [
    "MAX_BATCH",
    "MAX_REFUSED_SINGLES",
    "POLITE_POOL",
    "PUBLIC_POOL",
    "Author",
    "ClinicalTrial",
    "CrossrefClient",
    "CrossrefWork",
    "CursorRejected",
    "FailureKind",
    "OnResult",
    "PartialDate",
    "PoolLimits",
    "RateLimiter",
    "Relation",
    "RetryPolicy",
    "Route",
    "UpdateType",
    "WorkPage",
    "WorkStatus",
    "WorkUpdate",
    "jats_to_text",
    "normalise_orcid",
    "normalise_update_type",
    "parse_date_parts",
    "parse_rate_limit",
    "parse_retry_after",
    "parse_work",
    "stops_the_run",
    "unreachable",
]
