"""Crossref in the library: add by DOI or citation, resolve studies without a DOI, enrich, check updates.

Its modules, each with one story:

- ``cache``: the cache of Crossref's answers (``crossref_cache``), so that asking again costs nothing.
- ``merge``: a Crossref work merged into a study field by field, with provenance; curated values are
  reported as conflicts and kept.
- ``citations``: free-text citations matched to Crossref works on title, first author and year, never on
  Crossref's score alone.
- ``add``: a new study by DOI or by citation, and a DOI for each study without one.
- ``run``: ``enrich``, many studies in committed chunks of up to 50 (one Crossref batch), resumable,
  reported per study.
- ``updates``: ``check_updates``, the retraction check.

How a Crossref failure is worded, and whether it stops a run, is the Crossref package's decision
(``evidence.crossref.unreachable`` / ``stops_the_run``). The names below are this package's API: import
them from ``evidence.enrich``.
"""

from __future__ import annotations

from evidence.config import Settings
from evidence.crossref import CrossrefClient, unreachable
from evidence.enrich.add import (
    CitationAdd,
    MissingDoi,
    StudyOptions,
    add_by_citation,
    add_by_doi,
    add_work,
    citation_text,
    resolve_missing,
)
from evidence.enrich.cache import (
    CachedMessage,
    cached_dois,
    cached_messages,
    fetch_work_cached,
    store_message,
    store_not_found,
)
from evidence.enrich.citations import (
    MIN_GAP,
    MIN_TITLE_COVERAGE,
    TITLE_THRESHOLD,
    Candidate,
    CitationDecision,
    TitleMatch,
    YearCheck,
    citation_years,
    decide,
    resolve_citation,
    score_candidate,
)
from evidence.enrich.merge import (
    Conflict,
    MergeResult,
    fold,
    merge_work,
    same_value,
    update_dicts,
    work_authors,
    work_facts,
    work_fields,
)
from evidence.enrich.run import CHUNK_SIZE, EnrichReport, Outcome, Progress, StudyOutcome, enrich
from evidence.enrich.updates import UpdateCheck, check_updates


def make_client(settings: Settings) -> CrossrefClient:
    """The Crossref client for one command (pool limits, retries and batching from ``evidence.crossref``).

    The CLI calls it through this package, so tests swap the client here (``monkeypatch.setattr``).
    """
    return CrossrefClient(settings)


__all__ = [
    "CHUNK_SIZE",
    "MIN_GAP",
    "MIN_TITLE_COVERAGE",
    "TITLE_THRESHOLD",
    "CachedMessage",
    "Candidate",
    "CitationAdd",
    "CitationDecision",
    "Conflict",
    "EnrichReport",
    "MergeResult",
    "MissingDoi",
    "Outcome",
    "Progress",
    "StudyOptions",
    "StudyOutcome",
    "TitleMatch",
    "UpdateCheck",
    "YearCheck",
    "add_by_citation",
    "add_by_doi",
    "add_work",
    "cached_dois",
    "cached_messages",
    "check_updates",
    "citation_text",
    "citation_years",
    "decide",
    "enrich",
    "fetch_work_cached",
    "fold",
    "make_client",
    "merge_work",
    "resolve_citation",
    "resolve_missing",
    "same_value",
    "score_candidate",
    "store_message",
    "store_not_found",
    "unreachable",
    "update_dicts",
    "work_authors",
    "work_facts",
    "work_fields",
]
