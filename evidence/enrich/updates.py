"""The retraction check: every study with a DOI re-checked for retractions, corrections and concerns.

``check_updates`` is an ``enrich`` run that updates only Crossref's facts (status, updates, citations,
references), fresh from Crossref or from the cache alone; ``UpdateCheck`` says what was flagged, worst
first, and what could not be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from evidence.crossref import CrossrefClient
from evidence.enrich.run import EnrichReport, Progress, StudyOutcome, enrich
from evidence.store.db import Database


@dataclass
class UpdateCheck:
    """``check_updates``: every study with a DOI re-checked for retractions, corrections, concerns."""

    report: EnrichReport
    without_doi: int

    @property
    def flagged(self) -> list[StudyOutcome]:
        """Studies with a retraction, correction or expression of concern, worst first."""
        rank = {"retracted": 0, "expression-of-concern": 1, "corrected": 2}
        items = [o for o in self.report.items if o.outcome in ("enriched", "unchanged") and o.status != "ok"]
        return sorted(items, key=lambda o: (rank.get(o.status, 3), o.id))

    @property
    def checked(self) -> int:
        return sum(1 for o in self.report.items if o.outcome in ("enriched", "unchanged"))

    @property
    def nothing_checked(self) -> bool:
        """Studies with a DOI were there, but not one could be checked: the check did not happen."""
        return bool(self.report.items) and self.checked == 0

    @property
    def failed(self) -> list[StudyOutcome]:
        return [o for o in self.report.items if o.outcome == "failed"]

    @property
    def not_found(self) -> list[StudyOutcome]:
        return [o for o in self.report.items if o.outcome == "not-found"]

    def count(self, status: str) -> int:
        return sum(1 for o in self.flagged if o.status == status)

    def summary(self) -> str:
        text = (
            f"checked {self.checked} studies: {self.count('retracted')} retracted, "
            f"{self.count('corrected')} corrected, {self.count('expression-of-concern')} with an expression "
            f"of concern"
        )
        newly = [o for o in self.flagged if o.status != o.previous_status]
        if newly:
            text += f" ({len(newly)} new since the last check)"
        extra = []
        if self.not_found:
            extra.append(f"{len(self.not_found)} DOIs not in Crossref")
        if self.failed:
            extra.append(f"{len(self.failed)} not checked (Crossref failed)")
        if self.without_doi:
            extra.append(f"{self.without_doi} without a DOI")
        return text + ("; " + ", ".join(extra) if extra else "")


def check_updates(
    db: Database,
    client: CrossrefClient,
    *,
    refresh: bool = True,
    on_progress: Progress | None = None,
) -> UpdateCheck:
    """Re-check ``updated-by`` for every study with a DOI: fresh from Crossref, or with ``refresh=False``
    from the cache only (no request at all; a DOI never fetched is reported as not checked).

    Updates only Crossref's facts (status, updates, citations, references); commits per chunk like
    ``enrich``. Raises the one-line ``unreachable`` error if Crossref cannot be reached at all.
    """

    report = enrich(
        db,
        client,
        None,
        refresh=refresh,
        cache_only=not refresh,
        facts_only=True,
        on_progress=on_progress,
    )
    without = [o for o in report.items if o.outcome == "no-doi"]
    report.items = [o for o in report.items if o.outcome != "no-doi"]
    return UpdateCheck(report, len(without))
