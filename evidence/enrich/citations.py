"""Matching a free-text citation to a Crossref work: candidates checked on evidence, never on score alone.

``resolve_citation`` asks Crossref's ``query.bibliographic`` for candidates; ``score_candidate`` checks each
on title similarity (rapidfuzz, against title-sized windows of the text, with the cited title's coverage),
the first author's family name and the year found in the text (``citation_years``); ``decide`` ranks them
by that confidence and accepts the best only if it passes every check and is clearly ahead of the
runner-up. Crossref's own score is shown but never decides (papis takes the first hit: don't).
Everything here is pure except ``resolve_citation`` (one request, nothing stored).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from evidence import records
from evidence.crossref import CrossrefClient, CrossrefWork, unreachable
from evidence.enrich.merge import fold, work_authors
from evidence.errors import CrossrefError, InvalidValue

#: A candidate is acceptable only with its title at least this similar (rapidfuzz, 0-100) to the text.
TITLE_THRESHOLD = 90.0
#: ... and hold at least this share of the cited title's words (a short title inside a longer one is not it).
MIN_TITLE_COVERAGE = 0.8
#: ... and its confidence this far ahead of the runner-up's.
MIN_GAP = 0.15
YearCheck = Literal["exact", "near", "mismatch", "unknown"]


@dataclass(frozen=True)
class Candidate:
    """One Crossref candidate for a citation, with the evidence for and against it."""

    rank: int  # 1-based, by our confidence; what --pick takes
    work: CrossrefWork
    title_similarity: float  # 0-100
    title_coverage: float  # 0-1: share of the cited title's words in the candidate's title
    author_found: bool | None  # first author's family name in the text; None: the work lists no author
    year_check: YearCheck
    confidence: float  # 0-1, ours: title 0.6, author 0.2, year 0.2
    reasons: tuple[str, ...]

    @property
    def acceptable(self) -> bool:
        """Passes every check on its own (the gap to the runner-up is judged by ``resolve_citation``)."""
        if self.title_similarity < TITLE_THRESHOLD or self.author_found is False:
            return False
        if self.title_coverage < MIN_TITLE_COVERAGE:
            return False  # a short title found inside a longer cited title: another paper
        if self.year_check == "mismatch":
            return False
        # At least one of author or year must positively agree, besides the title.
        return self.author_found is True or self.year_check == "exact"

    def as_dict(self) -> dict[str, Any]:
        first = work_authors(self.work)[:1]
        return {
            "rank": self.rank,
            "doi": self.work.doi,
            "title": self.work.title,
            "first_author": records.AuthorName.parse(first[0]).display() if first else None,
            "year": self.work.year,
            "journal": self.work.container_title,
            "confidence": round(self.confidence, 2),
            "title_similarity": round(self.title_similarity, 1),
            "title_coverage": round(self.title_coverage, 2),
            "author_found": self.author_found,
            "year_check": self.year_check,
            "crossref_score": self.work.score,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class CitationDecision:
    """What a citation resolved to: a confident ``match`` with its evidence, or ranked candidates."""

    text: str
    candidates: tuple[Candidate, ...]
    match: Candidate | None
    why: str

    @property
    def confident(self) -> bool:
        return self.match is not None

    def pick(self, number: int) -> Candidate:
        """The ``number``-th candidate (1-based, as shown), for ``--pick``."""
        if not self.candidates:
            raise InvalidValue("Crossref found no candidate to pick from")
        if not 1 <= number <= len(self.candidates):
            raise InvalidValue(f"--pick must be from 1 to {len(self.candidates)}, not {number}")
        return self.candidates[number - 1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confident": self.confident,
            "match": self.match.work.doi if self.match else None,
            "why": self.why,
            "candidates": [c.as_dict() for c in self.candidates],
        }


# Where a citation's parts end: a full stop, question or exclamation mark, or a closing bracket (as in
# "Smith J (2016) Title"), followed by a space. A title may hold one of these ("vs.", "(IASTM)"): the title
# region below is made of every part the matched window mostly covers, so such a split does no harm.
_PART_END = re.compile(r"(?<=[.?!)\]])\s+")


@dataclass(frozen=True)
class TitleMatch:
    """How well a candidate's title matches the citation text."""

    similarity: float  # 0-100: fuzz.ratio of the title against the best title-sized window of the text
    coverage: float  # 0-1: share of the cited title's words (the parts the window lies in) in the title


def _citation_words(text: str) -> tuple[list[str], list[int]]:
    """The folded words of ``text`` and, for each, the number of the part of the citation it is in."""
    words: list[str] = []
    parts: list[int] = []
    for number, part in enumerate(_PART_END.split(text)):
        for word in fold(part).split():
            words.append(word)
            parts.append(number)
    return words, parts


def _coverage(title_words: set[str], words: list[str], parts: list[int], start: int, end: int) -> float:
    """Share of the cited title's words that the candidate's title has.

    The cited title is taken to be the part of the citation holding most of the window, plus every other
    part the window covers at least half of (a title split by "vs." or "(IASTM)"). Initials and numbers
    are not counted: they are authors, years and pages, not title words.
    """
    inside: dict[int, int] = {}
    for number in parts[start:end]:
        inside[number] = inside.get(number, 0) + 1
    sizes: dict[int, int] = {}
    for number in parts:
        sizes[number] = sizes.get(number, 0) + 1
    main = max(inside, key=lambda n: (inside[n], -n))
    region = {n for n, count in inside.items() if n == main or count * 2 >= sizes[n]}
    counted = [w for w, n in zip(words, parts, strict=True) if n in region and len(w) > 1 and not w.isdigit()]
    if not counted:
        return 1.0
    return sum(1 for w in counted if w in title_words) / len(counted)


def _title_similarity(work: CrossrefWork, text: str) -> TitleMatch:
    """Compare the candidate's title with the title-sized windows of the citation, length included.

    ``fuzz.partial_ratio`` would give 100% to a short title ("Hamstring flexibility", an editorial) that
    merely appears inside a longer cited title. So: ``fuzz.ratio`` against every window of about the title's
    length (the best one wins), and the coverage of the cited title by the candidate's title words.
    """
    from rapidfuzz import fuzz  # imported here: only citation matching needs it

    words, parts = _citation_words(text)
    best = TitleMatch(0.0, 0.0)
    titles = [work.title]
    if work.title and work.subtitle:
        titles.append(f"{work.title} {work.subtitle}")
    for title in titles:
        folded = fold(title or "")
        if not folded or not words:
            continue
        size = len(folded.split())
        slack = max(2, size // 4)
        similarity, window = -1.0, (0, 0)
        for length in range(max(1, size - slack), min(len(words), size + slack) + 1):
            for start in range(len(words) - length + 1):
                score = float(fuzz.ratio(folded, " ".join(words[start : start + length])))
                if score > similarity:
                    similarity, window = score, (start, start + length)
        if similarity < 0:  # a text shorter than the title's lower bound: compare it whole
            similarity, window = float(fuzz.ratio(folded, " ".join(words))), (0, len(words))
        match = TitleMatch(similarity, _coverage(set(folded.split()), words, parts, *window))
        if _title_score(match) > _title_score(best):
            best = match
    return best


def _title_score(match: TitleMatch) -> float:
    """0-1: similarity, scaled down when the title covers less of the cited title than it must."""
    return match.similarity / 100 * min(1.0, match.coverage / MIN_TITLE_COVERAGE)


def _first_author(work: CrossrefWork) -> str | None:
    firsts = [a for a in work.authors if a.sequence == "first"] or list(work.authors[:1])
    if not firsts:
        return None
    author = firsts[0]
    return author.family or author.name or author.given


# --- the year a citation gives --------------------------------------------------------------------------

_YEAR_TOKEN = re.compile(r"(?<![\d.])(1[89]\d\d|20\d\d)[a-z]?(?![\d])")
_PAGE_RANGE = re.compile(r"\d+\s*[-\u2010-\u2015\u2212]\s*\d+")


def citation_years(text: str) -> list[int]:
    """The years ``text`` may be from, most plausible first (empty if it names none).

    Not years: numbers in a page range (``1995-2001``) or after a colon (``12:1995``, pages; ``(3):1995``).
    Most plausible: ``(2016)``, ``2016;`` (Vancouver: year;volume:pages) or a year standing alone as a
    part of the citation (``Smith J, 2016.`` / ``. 2016.``); then any other four-digit year. A year in a
    title ("The 2016 consensus") is therefore outranked by the publication year when both are there.
    """
    in_ranges = [(m.start(), m.end()) for m in _PAGE_RANGE.finditer(text)]
    ranked: list[tuple[int, int, int]] = []  # (tier, position, year): lower tier is more plausible
    for match in _YEAR_TOKEN.finditer(text):
        start, end = match.span()
        if any(a <= start < b for a, b in in_ranges):
            continue
        before = text[:start].rstrip()
        after = text[end:].lstrip()
        if before.endswith(":"):
            continue  # ;12:1995 — a page
        if (before.endswith("(") and after.startswith(")")) or after.startswith(";"):
            tier = 0
        elif (not before or before[-1] in ".,") and (not after or after[0] in ".,:"):
            tier = 1
        else:
            tier = 2
        ranked.append((tier, start, int(match.group(1))))
    ranked.sort()
    return list(dict.fromkeys(year for _tier, _pos, year in ranked))


def score_candidate(work: CrossrefWork, text: str, rank: int = 0) -> Candidate:
    """Check one candidate against the citation text: title, first author, year. Pure (no I/O)."""
    folded_text = fold(text)
    words = f" {folded_text} "
    reasons: list[str] = []

    title = _title_similarity(work, text)
    if title.coverage < MIN_TITLE_COVERAGE:
        reasons.append(
            f"title {title.similarity:.0f}% similar but covers only {title.coverage:.0%} of the cited title"
        )
    else:
        reasons.append(f"title {title.similarity:.0f}% similar")

    first = _first_author(work)
    author_found: bool | None
    if first is None:
        author_found = None
        reasons.append("Crossref lists no author")
    else:
        author_found = f" {fold(first)} " in words
        reasons.append(f"first author {first} {'found' if author_found else 'NOT found'} in the text")

    # Only the most plausible year counts: in "Clin J 2016;12:1995-2001" the year is 2016, and 1995 (a page)
    # must not confirm a 1995 paper.
    years = citation_years(text)
    cited = years[0] if years else None
    year_check: YearCheck
    if work.year is None:
        year_check = "unknown"
        reasons.append("Crossref has no year")
    elif cited is None:
        year_check = "unknown"
        reasons.append(f"no year in the text (Crossref: {work.year})")
    elif work.year == cited:
        year_check = "exact"
        reasons.append(f"year {work.year} matches")
    elif abs(work.year - cited) == 1:
        # Online-first vs print year: a citation is often a year off Crossref's "issued".
        year_check = "near"
        reasons.append(f"year {work.year} is one off the text's {cited}")
    else:
        year_check = "mismatch"
        reasons.append(f"year {work.year} is not the text's {cited}")

    if work.score is not None:
        reasons.append(f"Crossref score {work.score:g} (never decisive)")
    author_part = {True: 0.2, None: 0.1, False: 0.0}[author_found]
    year_part = {"exact": 0.2, "near": 0.15, "unknown": 0.1, "mismatch": 0.0}[year_check]
    confidence = 0.6 * _title_score(title) + author_part + year_part
    return Candidate(
        rank,
        work,
        title.similarity,
        title.coverage,
        author_found,
        year_check,
        confidence,
        tuple(reasons),
    )


def decide(text: str, works: Sequence[CrossrefWork]) -> CitationDecision:
    """Rank Crossref's candidates by our own checks and accept the best only if it is clearly right."""
    scored = [score_candidate(work, text) for work in works]
    # Our confidence first; Crossref's order only breaks ties.
    order = sorted(range(len(scored)), key=lambda i: (-round(scored[i].confidence, 6), i))
    ranked = tuple(replace(scored[i], rank=rank) for rank, i in enumerate(order, start=1))
    if not ranked:
        return CitationDecision(text, ranked, None, "Crossref found no candidate")
    best = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else None
    if not best.acceptable:
        problems = []
        if best.title_similarity < TITLE_THRESHOLD:
            problems.append(f"title only {best.title_similarity:.0f}% similar (needs {TITLE_THRESHOLD:.0f})")
        elif best.title_coverage < MIN_TITLE_COVERAGE:
            problems.append(
                f"its title covers only {best.title_coverage:.0%} of the cited title "
                f"(needs {MIN_TITLE_COVERAGE:.0%}: a shorter title inside a longer one is another paper)"
            )
        if best.author_found is False:
            problems.append("first author not in the text")
        if best.year_check == "mismatch":
            problems.append("year differs")
        if not problems:
            problems.append("neither the first author nor the year confirms it")
        return CitationDecision(
            text, ranked, None, "no candidate is clearly right: best has " + ", ".join(problems)
        )
    if runner_up is not None:
        gap = best.confidence - runner_up.confidence
        if runner_up.acceptable or gap < MIN_GAP:
            return CitationDecision(
                text,
                ranked,
                None,
                f"candidates 1 and 2 are too close (confidence {best.confidence:.2f} vs "
                f"{runner_up.confidence:.2f}; a preprint and its article, or two similar papers?)",
            )
        gap_text = f"; runner-up {runner_up.confidence:.2f} (gap {gap:.2f})"
    else:
        gap_text = "; the only candidate"
    why = f"confident ({best.confidence:.2f}): " + ", ".join(best.reasons[:3]) + gap_text
    return CitationDecision(text, ranked, best, why)


def resolve_citation(client: CrossrefClient, text: str, *, rows: int = 5) -> CitationDecision:
    """Match a free-text citation against Crossref (``query.bibliographic``) and judge the candidates.

    Never accepts on Crossref's score alone: see ``decide``. One request; nothing is stored.
    """
    try:
        works = client.search_bibliographic(text, rows=rows)
    except CrossrefError as exc:
        raise unreachable(exc) from exc
    return decide(" ".join(text.split()), works)
