"""Is this record a study we already have? Identity of records, decided by rules, not by resemblance.

Two records are the *same* work when an identifier says so (one DOI, one PMID), or when their titles are
equal once spelling is made canonical (case, punctuation, hyphens, diacritics, British/American spelling,
"&"/"and", a trailing period, one of them without the other's subtitle), their first authors are
compatible (one family name, initials that do not contradict: "Wang, A." and "Wang, Anna B." may be one
person, "Wang, A. B." and "Wang, C." are two) and their years are equal. They are *distinct* when
identifiers differ, when a content word or a number of the titles differs (templated titles: "Effects of
IASTM on pain in knee osteoarthritis" and "... in hip osteoarthritis" are two trials, however high their
character similarity), when the first authors are different people, or when the years are far apart.
Everything in between (a one-letter typo, a year apart, "Jon" and "Jonathan") is a *possible* duplicate:
imported as new and listed, so that the clinician decides.

Cost: candidates come from hash look-ups on identifiers and on (canonical title, first-author family),
kept when their years are equal or one apart, so each record meets only the few records with its own
title, whatever its surname; possible duplicates
with a typo are found by a sorted-neighbourhood pass (a window of `WINDOW` over the records sorted by
family, year and title, forwards and by reversed title), so the pairs scored grow linearly with the
records. `MatchStats` counts both, and the tests hold them to a small multiple of the record count.

Pure: no database, no I/O; rapidfuzz is imported where a word distance is needed.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evidence.naming import STOPWORDS, ascii_fold

Kind = Literal["same", "possible", "distinct"]
WINDOW = 4  # neighbours each record is compared with in each sorted pass (typos only; never a merge)
MIN_MAIN_TOKENS = 3  # a "main title" shorter than this is not a title on its own ("IASTM: ...")
MIN_TYPO_LENGTH = 4  # shorter words differ in meaning, not in spelling ("hip"/"hop")

_NEAR_LENGTH = 1 + max(len(word) for word in STOPWORDS)  # two near titles' lengths differ by no more


# --- titles ------------------------------------------------------------------------------------------------

# Where a subtitle starts: a colon, a dash between spaces, a question or a sentence followed by more text.
_SUBTITLE = re.compile(r":|\s[-\u2013\u2014]+\s|[?!.](?=\s+\S)|\s\u2013|\u2014")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
# British and American spellings made one (both sides get the same treatment, so the result need not be a
# word): randomised/randomized, analyse/analyze, behaviour/behavior, haemorrhage, oedema, centre, fibre,
# modelling, catalogue. Each rule is applied to whole tokens.
_SPELLING_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"([iy])z"), r"\1s"),  # randomized, analyze
    (re.compile(r"(?<=[a-z]{2})our"), "or"),  # behaviour, tumour, colour (not hours, journal, source)
    (re.compile(r"ae"), "e"),  # haemorrhage, paediatric
    (re.compile(r"oe(?=.{3})"), "e"),  # oedema, diarrhoea, foetal (not shoe, toe)
    (re.compile(r"([tb])re(s?)$"), r"\1er\2"),  # centre, fibre
    (re.compile(r"ll(ing|ed|er|ers)$"), r"l\1"),  # modelling, labelled
    (re.compile(r"ogue(s?)$"), r"og\1"),  # catalogue, analogue
)
_WORDS = {
    "programme": "program",
    "programmes": "programs",
    "grey": "gray",
    "ageing": "aging",
    "practise": "practice",
    "defence": "defense",
    "licence": "license",
    "sulphur": "sulfur",
    "judgement": "judgment",
    "aluminium": "aluminum",
}


@functools.lru_cache(maxsize=65536)  # titles repeat their words: each is made canonical once
def _canonical_word(word: str) -> str:
    word = _WORDS.get(word, word)
    if word.isdigit() or len(word) < 5:  # four, hour, toe: short words keep their spelling
        return word
    for pattern, replacement in _SPELLING_RULES:
        word = pattern.sub(replacement, word)
    return word


def canonical_title(title: str) -> str:
    """Lower-case ASCII words, spelling made canonical, separated by single spaces."""
    text = (title if title.isascii() else ascii_fold(title)).lower().replace("&", " and ")
    return " ".join([_canonical_word(word) for word in _NOT_WORD.split(text) if word])


def canonical_titles(title: str) -> tuple[str, str]:
    """(`canonical_title`, the canonical title before its subtitle or "" when it has none, or too short
    a one to stand on its own: "IASTM: a review")."""
    found = _SUBTITLE.search(title)
    if found is None:
        return canonical_title(title), ""
    main, rest = canonical_title(title[: found.start()]), canonical_title(title[found.start() :])
    whole = f"{main} {rest}" if main and rest else main or rest
    if not rest or main.count(" ") + 1 < MIN_MAIN_TOKENS:
        return whole, ""
    return whole, main


def _squash(canonical: str) -> str:
    """Spaces out: "soft-tissue", "soft tissue" and "softtissue" are one spelling."""
    return canonical.replace(" ", "")


# --- authors -----------------------------------------------------------------------------------------------


def family_key(author: Mapping[str, Any] | None) -> str:
    """Letters of the first author's family (or organisation) name, folded: Müller, Mueller and MULLER
    are one key; digits and punctuation go."""
    if not author:
        return ""
    return _family_letters(str(author.get("family") or author.get("name") or ""))


@functools.lru_cache(maxsize=65536)  # surnames repeat (Wang, Li, Smith...): each is folded once
def _family_letters(name: str) -> str:
    letters = re.sub(r"[^a-z]", "", ascii_fold(name).lower())
    return re.sub(r"([aou])e", r"\1", letters)  # German transliteration: ue = ü, oe = ö, ae = ä


def _given_parts(author: Mapping[str, Any] | None) -> tuple[str, str]:
    """(initials, first given name if written in full): "Anna B." -> ("ab", "anna"), "A. B." and MEDLINE's
    "AB" -> ("ab", "")."""
    if not author or not author.get("given"):
        return "", ""
    return _given_letters(str(author["given"]))


@functools.lru_cache(maxsize=65536)
def _given_letters(given: str) -> tuple[str, str]:
    words = [w for w in re.split(r"[\s.\-]+", ascii_fold(given)) if w.isalpha()]
    initials, first = "", ""
    for position, word in enumerate(words):
        if word.isupper() and len(word) <= 3:
            initials += word.lower()  # "A", or MEDLINE's "AB": initials only
        else:
            initials += word[0].lower()
            if position == 0:
                first = word.lower()
    return initials, first


def _initials_relation(a: str, b: str) -> Literal["compatible", "different", "unknown"]:
    if not a or not b:
        return "unknown"
    return "compatible" if a.startswith(b) or b.startswith(a) else "different"


# --- identities --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """What decides whether a record is a work we have: identifiers, first author, year, title."""

    key: str  # who it is to the caller: "id:12" for a library study, "#3" for a record being imported
    doi: str | None
    pmid: str | None
    year: int | None
    family: str
    initials: str
    given: str
    title: str  # canonical
    main: str  # canonical main title, "" when none
    title_hash: int  # hashes of both without spaces (see _squash): the index's keys, computed once
    main_hash: int

    @classmethod
    def of(cls, key: str, rec: Mapping[str, Any]) -> Identity:
        """From a study dict (``title``, ``authors``, ``year``, ``doi``, ``pmid``)."""
        authors = rec.get("authors") or []
        first = authors[0] if authors else None
        initials, given = _given_parts(first)
        canonical, main = canonical_titles(str(rec.get("title") or ""))
        return cls(
            key,
            rec.get("doi") or None,
            rec.get("pmid") or None,
            rec.get("year"),
            family_key(first),
            initials,
            given,
            canonical,
            main,
            hash(_squash(canonical)),
            hash(_squash(main)) if main else 0,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    why: str


def _title_relation(a: Identity, b: Identity) -> tuple[Literal["equal", "subtitle", "near", "differs"], str]:
    if _squash(a.title) == _squash(b.title):
        return "equal", "same title"
    if (a.main and _squash(a.main) == _squash(b.title)) or (b.main and _squash(b.main) == _squash(a.title)):
        return "subtitle", "same title, one without the subtitle"
    near = near_titles(a.title, b.title)
    if near:
        return "near", near
    return "differs", "titles differ"


def near_titles(a: str, b: str) -> str:
    """Why two canonical titles that are not equal may still be one (a typo in one word, an article more
    or less), or "" when a content word or a number tells them apart."""
    if abs(len(a) - len(b)) > _NEAR_LENGTH:
        return ""  # more than a typo or one small word apart
    ta, tb = a.split(), b.split()
    if len(ta) == len(tb):
        diffs = [(x, y) for x, y in zip(ta, tb, strict=True) if x != y]
        if len(diffs) != 1:
            return ""
        x, y = diffs[0]
        if any(c.isdigit() for c in x + y) or min(len(x), len(y)) < MIN_TYPO_LENGTH:
            return ""
        from rapidfuzz.distance import OSA  # edits and swaps of two neighbouring letters ("pian")

        allowed = 1 if min(len(x), len(y)) < 8 else 2
        if OSA.distance(x, y, score_cutoff=allowed) <= allowed:
            return f"titles differ by one letter or two ({x!r} / {y!r})"
        return ""
    if abs(len(ta) - len(tb)) == 1:
        longer, shorter = (ta, tb) if len(ta) > len(tb) else (tb, ta)
        for position, word in enumerate(longer):
            if word in STOPWORDS and longer[:position] + longer[position + 1 :] == shorter:
                return f"titles differ by {word!r}"
    return ""


def compare(a: Identity, b: Identity) -> Verdict:
    """Same work, possibly the same, or distinct (see the module's docstring for the rules)."""
    if a.doi and b.doi:
        if a.doi == b.doi:
            return Verdict("same", "doi")
        return Verdict("distinct", "different DOIs")
    if a.pmid and b.pmid:
        if a.pmid == b.pmid:
            return Verdict("same", "pmid")
        return Verdict("distinct", "different PMIDs")
    title, title_why = _title_relation(a, b)
    if title == "differs":
        return Verdict("distinct", title_why)
    doubts: list[str] = []
    if title == "near":
        doubts.append(title_why)
    if a.family != b.family:
        if a.family and b.family:
            return Verdict("distinct", "different first authors")
        doubts.append("only one of them names its authors")
    else:
        initials = _initials_relation(a.initials, b.initials)
        if initials == "different":
            return Verdict("distinct", "first authors' initials differ")
        if a.given and b.given and a.given != b.given:
            doubts.append(f"first author {a.given!r} / {b.given!r}")
    if a.year != b.year:
        if a.year is None or b.year is None:
            doubts.append("only one of them has a year")
        elif abs(a.year - b.year) == 1:
            doubts.append(f"years {a.year} / {b.year}")
        else:
            return Verdict("distinct", "years differ")
    if doubts:
        return Verdict("possible", "; ".join(doubts))
    return Verdict("same", f"title+author+year ({title_why})")


# --- the index ---------------------------------------------------------------------------------------------


@dataclass
class MatchStats:
    """The work done, counted: tests assert it grows linearly with the records."""

    records: int = 0
    candidates: int = 0  # pairs that met in a hash bucket and were compared by `compare`
    pairs_scored: int = 0  # pairs whose titles were scored (a word distance) for possible duplicates


@dataclass(frozen=True, slots=True)
class PossibleDuplicate:
    key: str  # the record (or library study) that may be a duplicate ...
    other: str  # ... of this one
    why: str


@dataclass
class DuplicateIndex:
    """Identities of the library and of the records seen so far, looked up by DOI, PMID and title."""

    by_doi: dict[str, str] = field(default_factory=dict)
    by_pmid: dict[str, str] = field(default_factory=dict)
    identities: list[Identity] = field(default_factory=list)
    stats: MatchStats = field(default_factory=MatchStats)
    # (squashed canonical title, family) -> identities; the main title (subtitle dropped) too.
    # Keyed by the hash of (squashed canonical title, family), not the tuple: a large library's keys
    # would cost more memory than its identities. A hash collision only adds a candidate, which
    # `compare` then tells apart; so do the years, compared there.
    _by_title: dict[int, list[Identity]] = field(default_factory=lambda: defaultdict(list))
    _by_main: dict[int, list[Identity]] = field(default_factory=lambda: defaultdict(list))

    def add(self, identity: Identity) -> None:
        if identity.doi:
            self.by_doi.setdefault(identity.doi, identity.key)
        if identity.pmid:
            self.by_pmid.setdefault(identity.pmid, identity.key)
        self.identities.append(identity)
        self._by_title[hash((identity.title_hash, identity.family))].append(identity)
        if identity.main:
            self._by_main[hash((identity.main_hash, identity.family))].append(identity)

    def _candidates(self, rec: Identity) -> Iterator[Identity]:
        """The identities with `rec`'s title (or its main title, or whose main title it is) and first
        author, of the same year or one apart (a year apart may be the same work: epub and print)."""
        title = hash((rec.title_hash, rec.family))
        found = [*self._by_title.get(title, ()), *self._by_main.get(title, ())]
        if rec.main:
            found += self._by_title.get(hash((rec.main_hash, rec.family)), ())
        year = rec.year
        for other in found:
            if other.year == year or (
                year is not None and other.year is not None and abs(other.year - year) == 1
            ):
                yield other

    def match(self, rec: Identity) -> tuple[str | None, str, list[PossibleDuplicate]]:
        """(key of the work `rec` is, how it was matched, possible duplicates) — key None: a new work."""
        self.stats.records += 1
        if rec.doi and rec.doi in self.by_doi:
            return self.by_doi[rec.doi], "doi", []
        if rec.pmid and rec.pmid in self.by_pmid:
            return self.by_pmid[rec.pmid], "pmid", []
        same: list[tuple[Identity, Verdict]] = []
        possible: dict[str, str] = {}
        for other in self._candidates(rec):
            # Identifiers that tell two records apart do so before any scoring.
            if (rec.doi and other.doi and rec.doi != other.doi) or (
                rec.pmid and other.pmid and rec.pmid != other.pmid
            ):
                continue
            self.stats.candidates += 1
            verdict = compare(rec, other)
            if verdict.kind == "same":
                same.append((other, verdict))
            elif verdict.kind == "possible":
                possible.setdefault(other.key, verdict.why)
        keys = list(dict.fromkeys(other.key for other, _ in same))
        if len(keys) == 1 or (keys and any(other.title == rec.title for other, _ in same)):
            exact = next((pair for pair in same if pair[0].title == rec.title), same[0])
            return exact[0].key, exact[1].why, []
        if len(keys) > 1:  # one title without its subtitle, and two works with different subtitles
            for key in keys:
                possible.setdefault(key, "same title without a subtitle as works with different subtitles")
        return None, "", [PossibleDuplicate(rec.key, other, why) for other, why in possible.items()]

    def neighbours(self, wanted: Iterable[str] | None = None) -> list[PossibleDuplicate]:
        """Possible duplicates with a typo in the title: each identity against its `WINDOW` nearest by
        (family, year, title) and by (family, year, reversed title). `wanted`: only pairs with at least
        one of these keys (the records just imported); None: every pair (the whole library)."""
        keep = None if wanted is None else set(wanted)
        found: dict[tuple[str, str], str] = {}
        for reverse in (False, True):
            ordered = sorted(
                self.identities, key=lambda i: (i.family, i.year or 0, i.title[::-1] if reverse else i.title)
            )
            for position, a in enumerate(ordered):
                for b in ordered[position + 1 : position + 1 + WINDOW]:
                    if b.family != a.family or b.year != a.year:
                        break
                    if keep is not None and a.key not in keep and b.key not in keep:
                        continue
                    if (a.doi and b.doi) or (a.pmid and b.pmid):
                        continue  # identifiers tell them apart (equal ones were matched): never scored
                    pair = (a.key, b.key) if a.key < b.key else (b.key, a.key)
                    if pair in found or a.title == b.title:
                        continue  # an equal title is the hash look-up's case, decided there
                    self.stats.pairs_scored += 1
                    if not near_titles(a.title, b.title):
                        continue
                    verdict = compare(a, b)
                    if verdict.kind != "distinct":
                        found[pair] = verdict.why
        return [PossibleDuplicate(a, b, why) for (a, b), why in found.items()]


def find_possible_duplicates(
    records: Sequence[tuple[str, Mapping[str, Any]]],
) -> tuple[list[tuple[str, str, Verdict]], MatchStats]:
    """Pairs among `records` ((key, study dict)) that are or may be one work: the library-wide check."""
    index = DuplicateIndex()
    pairs: dict[tuple[str, str], Verdict] = {}
    for key, rec in records:
        identity = Identity.of(key, rec)
        for other in index._candidates(identity):
            index.stats.candidates += 1
            verdict = compare(identity, other)
            if verdict.kind != "distinct":
                pairs.setdefault((other.key, key), verdict)
        for field_name, owners in (("doi", index.by_doi), ("pmid", index.by_pmid)):
            value = getattr(identity, field_name)
            if value and value in owners:
                pairs.setdefault((owners[value], key), Verdict("same", field_name))
        index.add(identity)
    for possible in index.neighbours():
        pairs.setdefault((possible.key, possible.other), Verdict("possible", possible.why))
    return [(a, b, verdict) for (a, b), verdict in pairs.items()], index.stats
