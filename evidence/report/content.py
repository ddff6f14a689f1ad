"""What the evidence report says, computed from the study rows: sections, tables, verdicts and chart data.

Pure Python over the rows `find` returns (`query.iter_study_rows`): no database, no HTML. Every sentence
of a verdict is built from counts, so it changes when the library does and is never written by hand.

Counting rules (the same as `evidence claims` and `mechanisms`):
* a study counts once per claim, with the stance of its link to that claim;
* a study counts once per mechanism; linked to its claims with different stances, it counts as mixed;
* a retracted, corrected or expression-of-concern study is listed, visibly flagged, and never counted:
  not as support, not as anything, so a verdict rests on studies in good standing only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evidence import vocab
from evidence.formats.common import status_label

POPULATION_BUCKETS: tuple[str, ...] = ("human", "animal", "unknown")
UNSPECIFIED = "unspecified"  # a claim link without a stance (only from an older import)
STANCE_ORDER: tuple[str, ...] = (*vocab.STANCES, UNSPECIFIED)
BY: tuple[str, ...] = ("mechanism", "claim")

# A design as a countable noun: (singular, plural).
DESIGN_NOUNS: dict[str, tuple[str, str]] = {
    "systematic-review": ("systematic review", "systematic reviews"),
    "rct": ("RCT", "RCTs"),
    "non-randomised-controlled-trial": (
        "non-randomised controlled trial",
        "non-randomised controlled trials",
    ),
    "cohort": ("cohort study", "cohort studies"),
    "case-control": ("case-control study", "case-control studies"),
    "case-series": ("case series", "case series"),
    "case-report": ("case report", "case reports"),
    "cross-sectional": ("cross-sectional study", "cross-sectional studies"),
    "animal-study": ("animal study", "animal studies"),
    "in-vitro": ("in-vitro study", "in-vitro studies"),
    "narrative-review": ("narrative review", "narrative reviews"),
    "expert-opinion": ("expert opinion", "expert opinions"),
}
# How a count of studies with a stance reads: (one, several).
_STANCE_PHRASES: dict[str, tuple[str, str]] = {
    "supports": ("supports", "support"),
    "contradicts": ("contradicts", "contradict"),
    "mixed": ("is mixed", "are mixed"),
    "no-effect": ("shows no effect", "show no effect"),
    UNSPECIFIED: ("has no stance recorded", "have no stance recorded"),
}
STANCE_LABELS: dict[str, str] = {
    "supports": "Supports",
    "contradicts": "Contradicts",
    "mixed": "Mixed",
    "no-effect": "No effect",
    UNSPECIFIED: "Not recorded",
}


def population_of(study: dict[str, Any]) -> str:
    population = study.get("population")
    return population if population in ("human", "animal") else "unknown"


def _studies(n: int) -> str:
    return f"{n} {'study' if n == 1 else 'studies'}"


def _is(n: int) -> str:
    return "is" if n == 1 else "are"


def _noun(design: str | None, n: int) -> str:
    singular, plural = DESIGN_NOUNS.get(
        design or "", ("study of unrecorded design", "studies of unrecorded design")
    )
    return f"{n} {singular if n == 1 else plural}"


def stance_phrase(stance: str, n: int) -> str:
    one, several = _STANCE_PHRASES[stance]
    return f"{n} {one if n == 1 else several}"


def _and(parts: Sequence[str]) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


@dataclass
class Entry:
    """One row of a claim's table: a study with the stance and finding of its link to that claim."""

    study: dict[str, Any]
    stance: str
    finding: str | None
    flag: str | None  # RETRACTED, CORRECTED, EXPRESSION OF CONCERN, or None in good standing
    citation: str = ""  # the formatted reference (HTML), filled in by the renderer

    @property
    def counted(self) -> bool:
        return self.flag is None

    @property
    def population(self) -> str:
        return population_of(self.study)


@dataclass
class ClaimSection:
    name: str
    label: str
    mechanism: str
    description: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def counted(self) -> list[Entry]:
        return [e for e in self.entries if e.counted]

    @property
    def flagged(self) -> list[Entry]:
        return [e for e in self.entries if not e.counted]

    def stance_counts(self) -> dict[str, dict[str, int]]:
        """stance -> population bucket -> count, over the studies in good standing."""
        counts = {s: dict.fromkeys(POPULATION_BUCKETS, 0) for s in STANCE_ORDER}
        for e in self.counted:
            counts[e.stance][e.population] += 1
        return counts

    @property
    def verdict(self) -> str:
        return claim_verdict(self.entries)


@dataclass
class Section:
    """A mechanism with its claims (`--by mechanism`), or one claim on its own (`--by claim`)."""

    key: str
    title: str
    description: str
    claims: list[ClaimSection]
    single_claim: bool
    verdict: str


@dataclass
class Report:
    title: str
    generated: str  # ISO date
    library: str
    filters: list[str]
    style: str
    by: str
    studies: list[dict[str, Any]]  # the selection, in find's order
    sections: list[Section]
    unlinked: list[Entry]  # selected studies linked to no claim shown
    prisma: dict[str, Any] | None = None  # the saved searches' PRISMA counts (evidence.watch.prisma)

    @property
    def claims(self) -> list[ClaimSection]:
        return [c for s in self.sections for c in s.claims]

    @property
    def flagged(self) -> list[dict[str, Any]]:
        return [s for s in self.studies if status_label(s)]

    def document_order(self) -> list[dict[str, Any]]:
        """Each study once, in the order it first appears on the page (a numbered style's numbers)."""
        seen: dict[int, dict[str, Any]] = {}
        for claim in self.claims:
            for e in claim.entries:
                seen.setdefault(e.study["id"], e.study)
        for e in self.unlinked:
            seen.setdefault(e.study["id"], e.study)
        return list(seen.values())

    def entries(self) -> Iterable[Entry]:
        for claim in self.claims:
            yield from claim.entries
        yield from self.unlinked

    def population_counts(self) -> dict[str, int]:
        counts = Counter(population_of(s) for s in self.studies)
        return {p: counts.get(p, 0) for p in POPULATION_BUCKETS}

    def level_counts(self) -> dict[str, int]:
        counts = Counter(str(s["level"]) if s.get("level") else "none" for s in self.studies)
        return {k: counts[k] for k in ("1", "2", "3", "4", "5", "none") if counts.get(k)}

    @property
    def summary(self) -> str:
        return selection_summary(self)

    @property
    def pedro_recorded(self) -> bool:
        return any(s.get("pedro") is not None for s in self.studies)


def _entry_sort_key(e: Entry) -> tuple[int, int, int, str]:
    level = e.study.get("level") or 9
    year = e.study.get("year") or 0
    return (level, STANCE_ORDER.index(e.stance), -year, e.study.get("citekey") or "")


def build_report(
    studies: Sequence[dict[str, Any]],
    *,
    by: str = "mechanism",
    claims: Sequence[str] = (),
    mechanisms: Sequence[str] = (),
    stances: Sequence[str] = (),
    title: str,
    generated: str,
    library: str,
    filters: Sequence[str] = (),
    style: str = "american-medical-association",
) -> Report:
    """The report's content for `studies` (rows as `find` returns them). `claims`, `mechanisms` and
    `stances` are the selection's filters: only the claim links they name are shown, as in `cite
    --by-claim`; a selected study with no such link is listed under "Not linked to a claim"."""
    sections_by_claim: dict[str, ClaimSection] = {}
    unlinked: list[Entry] = []
    for study in studies:
        flag = status_label(study)
        shown = [
            link
            for link in study.get("claims") or []
            if vocab.link_matches(link, claims=claims, mechanisms=mechanisms, stances=stances)
        ]
        if not shown:
            unlinked.append(Entry(study, UNSPECIFIED, None, flag))
        for link in shown:
            name = link["claim"]
            section = sections_by_claim.get(name)
            if section is None:
                spec = vocab.CLAIM_BY_NAME.get(name)
                section = sections_by_claim[name] = ClaimSection(
                    name=name,
                    label=spec.label if spec else name,
                    mechanism=link.get("mechanism") or (spec.mechanism if spec else "other"),
                    description=spec.description if spec else "",
                )
            stance = link.get("stance") or UNSPECIFIED
            section.entries.append(Entry(study, stance, link.get("finding"), flag))
    order = [c.name for c in vocab.CLAIMS]
    claim_sections = sorted(
        sections_by_claim.values(),
        key=lambda c: (order.index(c.name) if c.name in order else len(order), c.name),
    )
    for section in claim_sections:
        section.entries.sort(key=_entry_sort_key)
    unlinked.sort(key=_entry_sort_key)
    if by not in BY:
        raise ValueError(f"by must be one of {BY}")
    if by == "claim":
        sections = [
            Section(c.name, c.label, c.description, [c], single_claim=True, verdict=c.verdict)
            for c in claim_sections
        ]
    else:
        sections = []
        for mechanism in [*vocab.MECHANISMS, None]:
            name = mechanism.name if mechanism else None
            mine = [
                c
                for c in claim_sections
                if c.mechanism == name or (mechanism is None and c.mechanism not in vocab.MECHANISM_BY_NAME)
            ]
            if not mine:
                continue
            sections.append(
                Section(
                    key=name or "other",
                    title=mechanism.label if mechanism else "Other claims",
                    description=mechanism.description if mechanism else "",
                    claims=mine,
                    single_claim=False,
                    verdict=mechanism_verdict(mine),
                )
            )
    return Report(
        title=title,
        generated=generated,
        library=library,
        filters=list(filters),
        style=style,
        by=by,
        studies=list(studies),
        sections=sections,
        unlinked=unlinked,
    )


# --- verdicts --------------------------------------------------------------------------------------------


def _stance_list(counts: Counter[str]) -> str:
    return _and([stance_phrase(s, counts[s]) for s in STANCE_ORDER if counts.get(s)])


def _flag_note(flagged: Sequence[Entry]) -> str:
    if not flagged:
        return ""
    kinds = Counter(str(e.flag).lower() for e in flagged)
    listed = _and([f"{n} {kind}" for kind, n in sorted(kinds.items())])
    return f" {listed} {'study is' if len(flagged) == 1 else 'studies are'} listed but not counted."


def claim_verdict(entries: Sequence[Entry]) -> str:
    """One paragraph from the counts, e.g. "6 studies: 2 support and 4 show no effect. The strongest human
    evidence is level 2: 2 RCTs (both show no effect). None of the supporting studies is in humans: 2 animal
    studies.". Flagged studies are named in a last sentence and counted in none of the others."""
    counted = [e for e in entries if e.counted]
    flagged = [e for e in entries if not e.counted]
    if not counted:
        return f"No study in good standing bears on this claim.{_flag_note(flagged)}".strip()
    stances = Counter(e.stance for e in counted)
    sentences = [f"{_studies(len(counted))}: {_stance_list(stances)}."]
    human = [e for e in counted if e.population == "human"]
    if human:
        best = min(e.study.get("level") or 9 for e in human)
        top = [e for e in human if (e.study.get("level") or 9) == best]
        designs = Counter(e.study.get("design") for e in top)
        what = _and([_noun(d, n) for d, n in designs.most_common()])
        top_stances = Counter(e.stance for e in top)
        if len(top_stances) == 1:
            (stance,) = top_stances
            who = {1: "it ", 2: "both "}.get(len(top), "all ")
            how = who + stance_phrase(stance, len(top)).split(" ", 1)[1]
        else:
            how = _stance_list(top_stances)
        where = f"level {best}" if best != 9 else "of no recorded level"
        sentences.append(f"The strongest human evidence is {where}: {what} ({how}).")
    else:
        sentences.append("No human study.")
    supporting = [e for e in counted if e.stance == "supports"]
    if supporting:
        by_population = Counter(e.population for e in supporting)
        best = min(e.study.get("level") or 9 for e in supporting)
        if by_population.get("human") == len(supporting):
            sentences.append(
                ("The supporting study is" if len(supporting) == 1 else "All supporting studies are")
                + " in humans"
                + (f" (best level {best})." if best != 9 else ".")
            )
        elif not by_population.get("human"):
            designs = Counter(e.study.get("design") for e in supporting)
            split = f" ({_population_split(by_population)})" if len(by_population) > 1 else ""
            sentences.append(
                f"None of the supporting studies is in humans{split}: "
                + _and([_noun(d, n) for d, n in designs.most_common()])
                + "."
            )
        else:
            sentences.append(f"Supporting studies: {_population_split(by_population)}.")
    return " ".join(sentences) + _flag_note(flagged)


def _population_split(counts: Counter[str]) -> str:
    words = {"human": "human", "animal": "animal", "unknown": "with no population recorded"}
    return _and([f"{counts[p]} {words[p]}" for p in POPULATION_BUCKETS if counts.get(p)])


def _stance_sets(claims: Sequence[ClaimSection]) -> dict[int, set[str]]:
    """study id -> the stances of its links to these claims (studies in good standing)."""
    seen: dict[int, set[str]] = {}
    for claim in claims:
        for e in claim.counted:
            seen.setdefault(e.study["id"], set()).add(e.stance)
    return seen


def mechanism_verdict(claims: Sequence[ClaimSection]) -> str:
    stance_sets = _stance_sets(claims)
    if not stance_sets:
        return "No study in good standing bears on these claims."
    stances = {sid: vocab.overall_stance(s) for sid, s in stance_sets.items()}
    populations = {e.study["id"]: e.population for c in claims for e in c.counted}
    split = Counter(populations[sid] for sid in stances)
    counts = Counter(stances.values())
    with_evidence = [c for c in claims if c.counted]
    split_ways = sum(1 for s in stance_sets.values() if len(s) > 1)
    note = (
        f" ({_studies(split_ways)} whose claims point different ways "
        f"{'counts' if split_ways == 1 else 'count'} as mixed)"
        if split_ways
        else ""
    )
    return (
        f"{_studies(len(stances))} ({_population_split(split)}) across {len(with_evidence)} "
        f"{'claim' if len(with_evidence) == 1 else 'claims'}: {_stance_list(counts)}{note}."
    )


def selection_summary(report: Report) -> str:
    n = len(report.studies)
    populations = report.population_counts()
    parts = [f"{_studies(n)} ({_population_split(Counter(populations))})"]
    levels = report.level_counts()
    if levels:
        parts.append(
            "by OCEBM level: "
            + ", ".join(f"level {k}: {v}" if k != "none" else f"no level: {v}" for k, v in levels.items())
        )
    flagged = report.flagged
    text = "; ".join(parts) + "."
    if flagged:
        text += (
            f" {_studies(len(flagged))} {_is(len(flagged))} retracted, corrected or under an expression of"
            " concern: listed, flagged, and not counted in any verdict."
        )
    if report.unlinked:
        n = len(report.unlinked)
        text += f" {_studies(n)} in the selection {_is(n)} linked to no claim shown."
    return text


# --- chart data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapCell:
    claim: str
    level: int
    stance: str
    population: str
    count: int


def evidence_map(report: Report) -> list[MapCell]:
    """Claims x OCEBM level: one cell per (claim, level, stance, population) with its count of studies in
    good standing (a study without a level is left off the map and stays in the tables)."""
    counts: Counter[tuple[str, int, str, str]] = Counter()
    for claim in report.claims:
        for e in claim.counted:
            level = e.study.get("level")
            if level:
                counts[(claim.name, int(level), e.stance, e.population)] += 1
    return [MapCell(*key, count=n) for key, n in sorted(counts.items(), key=lambda kv: _map_key(kv[0]))]


def _map_key(key: tuple[str, int, str, str]) -> tuple[int, int, int, int]:
    order = [c.name for c in vocab.CLAIMS]
    claim, level, stance, population = key
    return (
        order.index(claim) if claim in order else len(order),
        level,
        STANCE_ORDER.index(stance),
        POPULATION_BUCKETS.index(population),
    )


@dataclass(frozen=True)
class YearCell:
    claim: str
    year: int
    count: int
    best_level: int | None


def studies_by_year(report: Report) -> list[YearCell]:
    """Claims x publication year: how many studies (in good standing) and the best level among them."""
    cells: dict[tuple[str, int], list[int | None]] = {}
    for claim in report.claims:
        for e in claim.counted:
            year = e.study.get("year")
            if year:
                cells.setdefault((claim.name, int(year)), []).append(e.study.get("level"))
    return [
        YearCell(claim, year, len(levels), min((lv for lv in levels if lv), default=None))
        for (claim, year), levels in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
