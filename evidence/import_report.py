"""What an import did, record by record: the outcomes, the possible duplicates, the summary lines the
CLI prints and the JSON `import --report` writes. Plain data; no database."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from evidence.matching import MatchStats

ACTIONS = ("added", "merged", "unchanged", "duplicate-in-file")
SHOWN_POSSIBLE = 50  # possible duplicates listed in the summary (all of them in the JSON report)


@dataclass
class ImportOutcome:
    line: int | None
    title: str
    action: str  # added | merged | duplicate-in-file | unchanged
    study: str | None = None  # citekey or "#n" of the study it went into
    matched_by: str | None = None
    filled: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


@dataclass
class PossibleDuplicate:
    """A record imported as new that may be a study the library (or the file) already has."""

    line: int | None
    study: str  # citekey it was imported as
    resembles: str  # citekey of the study it may duplicate
    resembles_line: int | None  # that study's line when it came from the same file
    why: str


@dataclass
class ImportReport:
    path: str
    outcomes: list[ImportOutcome] = field(default_factory=list)
    keep_outcomes: bool = True
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    warnings: list[tuple[int | None, str]] = field(default_factory=list)  # (line, what was skipped)
    possible_duplicates: list[PossibleDuplicate] = field(default_factory=list)
    work: MatchStats = field(default_factory=MatchStats)

    def record(self, outcome: ImportOutcome) -> None:
        self.counts[outcome.action] += 1
        # A large import keeps only the interesting outcomes in memory.
        if self.keep_outcomes or outcome.action != "added":
            self.outcomes.append(outcome)

    @property
    def added(self) -> int:
        return self.counts["added"]

    @property
    def merged(self) -> int:
        return self.counts["merged"]

    @property
    def conflicts(self) -> list[ImportOutcome]:
        return [o for o in self.outcomes if o.conflicts]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary_lines(self, *, dry_run: bool = False) -> list[str]:
        """What the import did (or, for a dry run, would do): one count line, then one line per value
        skipped (a warning), then one line per conflict."""
        counts = self.counts
        conflicts = sum(len(o.conflicts) for o in self.outcomes)
        head = f"{'dry run, nothing written: would import' if dry_run else 'imported'} {self.path}: "
        head += (
            f"{self.total} records: {counts['added']} added, {counts['merged']} merged into library studies, "
            f"{counts['unchanged']} already in the library unchanged, "
            f"{counts['duplicate-in-file']} duplicates within the file, {conflicts} conflicts"
        )
        if self.possible_duplicates:
            head += f", {len(self.possible_duplicates)} possible duplicates (imported as new)"
        lines = [head]
        if not self.total:
            lines.append(f"  {self.path}: warning: no records found (is it empty, or in another format?)")
        for line, message in self.warnings:
            where = f"{self.path}:{line}" if line is not None else self.path
            lines.append(f"  {where}: warning: {message}")
        for outcome in self.outcomes:
            where = f"{self.path}:{outcome.line}" if outcome.line is not None else self.path
            if dry_run and outcome.action != "added":
                detail = f" (filled {', '.join(outcome.filled)})" if outcome.filled else ""
                lines.append(
                    f"  {where}: {outcome.action} -> {outcome.study} by {outcome.matched_by}{detail}"
                )
            for conflict in outcome.conflicts:
                lines.append(f"  {where}: conflict with {outcome.study}: {conflict}")
        for possible in self.possible_duplicates[:SHOWN_POSSIBLE]:
            where = f"{self.path}:{possible.line}" if possible.line is not None else self.path
            other = possible.resembles
            if possible.resembles_line is not None:
                other += f" (line {possible.resembles_line})"
            lines.append(
                f"  {where}: possible duplicate of {other}, imported as {possible.study} ({possible.why})"
            )
        hidden = len(self.possible_duplicates) - SHOWN_POSSIBLE
        if hidden > 0:
            lines.append(f"  ... and {hidden} more possible duplicates (all of them: import --report FILE)")
        if self.possible_duplicates:
            lines.append("  check them with `evidence duplicates`; `evidence merge A B` joins two studies")
        return lines

    def as_dict(self, *, dry_run: bool = False) -> dict[str, Any]:
        """The whole report as plain data (for `import --report FILE.json`)."""
        return {
            "path": self.path,
            "dry_run": dry_run,
            "counts": {action: self.counts[action] for action in ACTIONS},
            "records": [
                {
                    "line": o.line,
                    "action": o.action,
                    "study": o.study,
                    "matched_by": o.matched_by,
                    "filled": o.filled,
                    "conflicts": o.conflicts,
                }
                for o in self.outcomes
            ],
            "possible_duplicates": [
                {
                    "line": p.line,
                    "study": p.study,
                    "resembles": p.resembles,
                    "resembles_line": p.resembles_line,
                    "why": p.why,
                }
                for p in self.possible_duplicates
            ],
            "warnings": [{"line": line, "message": message} for line, message in self.warnings],
            "work": {
                "records": self.work.records,
                "candidates": self.work.candidates,
                "pairs_scored": self.work.pairs_scored,
            },
        }
