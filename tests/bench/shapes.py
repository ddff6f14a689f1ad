"""Deterministic citation files for the import benchmark (issue 9, part 2), each with its ground truth.

A *shape* is a stream of records, each a study dict in the export shape (`evidence.formats.common`)
paired with the id of the true work it describes. Record N of a stream is the same whatever ``n`` is
(streams are prefix-stable), and every stream comes in two *parts*: ``main`` (the file measured) and
``base`` (a different 100,000 of the same shape, imported first to make the library the main file goes
into). The two parts never share a work: the synthetic shapes take `synth` studies from different index
ranges (so different DOIs and PMIDs), the shapes without identifiers keep a record only when a checksum
of its identity (below) is even (main) or odd (base).

* **a** the current synthetic library: `synth` studies shaped by ``bench_formats.export_shape``
  (a third without evidence annotations, 0.5% repeated in the file), BibTeX.
* **b** `synth` studies with Zipf-distributed first-author surnames (weight 1/rank over 9,766 names, so
  that the ten commonest, Wang, Li, Zhang, Kim, Lee, Smith, Müller, Chen, Liu, Nguyen, carry 30.0% of the
  records) and years uniform over 2010-2024; DOIs as in synth, so every record is its own work. BibTeX.
* **c** `synth` studies without any DOI or PMID (many RIS exports), RIS. A record whose identity repeats
  an earlier one is skipped (synth has both "mobilization" and "mobilisation"), so all are distinct.
* **d** templated titles (five templates over vocabularies of 4-8 phrases, one of them numbered trials,
  "...: the GLIDE trial 3"), first authors from 72 research groups (12 surnames, 6 given names each),
  years 2010-2024, no DOI, no PMID: every record a distinct work. BibTeX.
* **e** records like d, of which exactly 2 in every 10 are further copies of an earlier work (picked
  uniformly), each copy changing one to three of: case; punctuation (trailing period, colon spacing, a
  hyphen as a space); diacritics (Müller/Muller, élite/elite); British/American spelling (randomised,
  mobilisation, haemorrhage, behaviour, centre, paediatric, remodelling); the subtitle ": a randomized
  controlled trial" added or dropped; "and" as "&"; given names as initials or the other way
  ("Wang, A. B." / "Wang, Anna B."); the DOI dropped. Half the works have a DOI (a sixth of those lack it
  on their first copy). A copy keeps the year and the first author's family (modulo diacritics). BibTeX.
* **f** the content of e with PMIDs, written as PubMed NBIB (``f-nbib``) and as RIS (``f-ris``).

The identity of a work (`identity_key`) is its first author's family name, year and title folded to
ASCII, lower case, American spelling, "&" as "and", without the generic subtitle and punctuation: no two
works of d, e or f share one, and every copy of a work has its work's identity. So a correct importer
exists (it merges every copy and nothing else), and the shapes cannot be passed by refusing to merge.

NBIB: PubMed's format cannot hold a record without a PMID (`evidence.formats.nbib` rejects a record that
does not start with ``PMID-``), and PubMed gives each work exactly one. So in f every work has a PMID, and
a further copy has it in half the cases (a second PubMed search) and not in the others (the same work
exported from another database). The RIS file holds every record; the NBIB file holds only the records
with a PMID, as PubMed would (its first ``n`` of them, about 11% copies, all matchable by PMID), so the
title matching is measured on f-ris and the NBIB reader at full size on f-nbib. No PMID is ever made up
for a copy: two PMIDs for one work would make it two works.

`generate` writes a file with the project's own exporters (`write_nbib` here, as evidence has no NBIB
writer), finds the line each record starts at, and saves the ground truth beside it (``FILE.truth.json``:
``lines`` and ``works``, in file order); a stamp (``FILE.json``) lets a later run reuse the file.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _path in (HERE, REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import synth  # noqa: E402  (a sibling module; this file runs as a script)
from bench_formats import DUPLICATE_RATE, export_shape  # noqa: E402

from evidence.formats.common import empty_study  # noqa: E402

Study = dict[str, Any]

# Bump when a generated file changes, so a cached file from an older generator is rebuilt.
GENERATOR_VERSION = 2
PARTS = ("main", "base")
BASE_START = 10_000_001  # first synth index of the base part of a, b, c (DOIs and PMIDs apart from main's)
YEARS = range(2010, 2025)
DUPLICATES_PER_TEN = 2  # shape e: 20% of the records are further copies of an earlier work

# --- files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeFile:
    """One file of a shape: ``label`` names it in tables and file names."""

    shape: str
    label: str
    fmt: str  # an `evidence import --format` name
    suffix: str

    @property
    def quality(self) -> bool:
        """Whether the duplicate precision and recall targets apply (the shapes with true duplicates)."""
        return self.shape in ("e", "f")


FILES = (
    ShapeFile("a", "a", "bibtex", "bib"),
    ShapeFile("b", "b", "bibtex", "bib"),
    ShapeFile("c", "c", "ris", "ris"),
    ShapeFile("d", "d", "bibtex", "bib"),
    ShapeFile("e", "e", "bibtex", "bib"),
    ShapeFile("f", "f-nbib", "nbib", "nbib"),
    ShapeFile("f", "f-ris", "ris", "ris"),
)
SHAPES = tuple(dict.fromkeys(f.shape for f in FILES))


@dataclass(frozen=True)
class Truth:
    """Where each record of a file starts (1-based line) and the id of its true work, in file order."""

    lines: list[int]
    works: list[str]

    def duplicates(self) -> int:
        """Records that are not the first copy of their work."""
        return len(self.works) - len(set(self.works))


@dataclass(frozen=True)
class Generated:
    path: Path
    truth_path: Path
    seconds: float  # 0.0 when a cached file was reused

    def truth(self) -> Truth:
        data = json.loads(self.truth_path.read_text(encoding="utf-8"))
        return Truth(data["lines"], data["works"])


def file_path(out_dir: Path, spec: ShapeFile, n: int, part: str) -> Path:
    return out_dir / f"import-{spec.label}-{part}-{n}.{spec.suffix}"


def generate(spec: ShapeFile, n: int, part: str, out_dir: Path) -> Generated:
    """Write ``n`` records of a shape's part unless this generator already wrote them there."""
    from evidence.formats import EXPORTERS

    path = file_path(out_dir, spec, n, part)
    stamp, truth_path = path.with_name(path.name + ".json"), path.with_name(path.name + ".truth.json")
    expected = {"n": n, "part": part, "generator": GENERATOR_VERSION, "synth": synth.GENERATOR_VERSION}
    if path.exists() and truth_path.exists() and stamp.exists() and json.loads(stamp.read_text()) == expected:
        return Generated(path, truth_path, 0.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    start = time.perf_counter()
    works: list[str] = []

    def studies() -> Iterator[Study]:
        for work, study in records(spec, n, part):
            works.append(work)
            yield study

    writer = write_nbib if spec.fmt == "nbib" else EXPORTERS[spec.fmt]
    with path.open("w", encoding="utf-8") as out:
        writer(studies(), out)
    lines = record_lines(path, spec.fmt)
    if len(lines) != len(works):
        raise RuntimeError(f"{path}: {len(works)} records written but {len(lines)} record starts found")
    truth_path.write_text(json.dumps({"lines": lines, "works": works}), encoding="utf-8")
    stamp.write_text(json.dumps(expected))
    return Generated(path, truth_path, time.perf_counter() - start)


_RECORD_START = {"bibtex": "@", "ris": "TY  - ", "nbib": "PMID- "}


def record_lines(path: Path, fmt: str) -> list[int]:
    """The 1-based line of every record start (what the readers report as a record's line)."""
    start = _RECORD_START[fmt]
    with path.open(encoding="utf-8") as stream:
        return [number for number, line in enumerate(stream, 1) if line.startswith(start)]


def records(spec: ShapeFile, n: int, part: str) -> Iterator[tuple[str, Study]]:
    """(work id, study dict) for the first ``n`` records of a file."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    if spec.shape == "a":
        stream: Iterator[tuple[str, Study]] = synthetic_dicts(n, part)
    elif spec.shape == "b":
        stream = zipf_dicts(n, part)
    elif spec.shape == "c":
        stream = unidentified_dicts(n, part)
    elif spec.shape == "d":
        stream = templated_dicts("d", part, copies=False, pmids=False)
    elif spec.shape == "e":
        stream = templated_dicts("e", part, copies=True, pmids=False)
    else:
        stream = templated_dicts("f", part, copies=True, pmids=True)
        if spec.fmt == "nbib":
            stream = ((work, study) for work, study in stream if study["pmid"])
    return islice(stream, n)


# --- identity ------------------------------------------------------------------------------------

UK_TO_US = {
    "randomised": "randomized",
    "mobilisation": "mobilization",
    "haemorrhage": "hemorrhage",
    "behaviour": "behavior",
    "centre": "center",
    "paediatric": "pediatric",
    "remodelling": "remodeling",
    "modelling": "modeling",
    "programme": "program",
}
US_TO_UK = {us: uk for uk, us in UK_TO_US.items()}
SUBTITLE = ": a randomized controlled trial"
_UK_RE = re.compile(r"\b(" + "|".join(UK_TO_US) + r")\b", re.IGNORECASE)
_US_RE = re.compile(r"\b(" + "|".join(US_TO_UK) + r")\b", re.IGNORECASE)
_SUBTITLE_TAIL = " a randomized controlled trial"


def fold(text: str) -> str:
    """ASCII without diacritics (Müller -> Muller, élite -> elite)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _respell(text: str, pattern: re.Pattern[str], table: dict[str, str]) -> str:
    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        new = table[word.lower()]
        if word.isupper():
            return new.upper()
        return new[0].upper() + new[1:] if word[0].isupper() else new

    return pattern.sub(swap, text)


def normalise_identity_title(title: str) -> str:
    """A title reduced to what tells works apart (see the module docstring)."""
    text = fold(title).lower().replace("&", " and ")
    text = _respell(text, _UK_RE, UK_TO_US)
    text = " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())
    return text.removesuffix(_SUBTITLE_TAIL)


def identity_key(title: str, family: str, year: int | None) -> str:
    """First author's family, year and normalised title: equal for every copy of a work, and for no two
    works of the templated shapes."""
    return f"{re.sub(r'[^a-z]', '', fold(family).lower())}|{year}|{normalise_identity_title(title)}"


def study_identity(study: Study) -> str:
    authors = study.get("authors") or [{}]
    first = authors[0]
    return identity_key(
        str(study["title"]), str(first.get("family") or first.get("name") or ""), study["year"]
    )


def _in_part(key: str, part: str) -> bool:
    """Half of all identities belong to each part, so main and base never describe one work."""
    return zlib.crc32(key.encode()) % 2 == PARTS.index(part)


# --- a, b, c: synth studies ----------------------------------------------------------------------


def _synth_start(part: str) -> int:
    return 1 if part == "main" else BASE_START


def synthetic_dicts(n: int, part: str) -> Iterator[tuple[str, Study]]:
    """Shape a: for the main part, the very records of ``bench_formats.study_dicts(n)``."""
    rng = random.Random(4 if part == "main" else 5)
    recent: list[Study] = []
    start = _synth_start(part)
    for index, row in enumerate(synth.studies(n, start=start), start):
        if recent and rng.random() < DUPLICATE_RATE:
            again = rng.choice(recent)  # the same paper twice in one file (two searches merged)
            yield f"a.{part}.{again['id']}", again
            continue
        study = export_shape(row, index, rng)
        if len(recent) < 2000:
            recent.append(study)
        yield f"a.{part}.{index}", study


ZIPF_HEAD = ("Wang", "Li", "Zhang", "Kim", "Lee", "Smith", "Müller", "Chen", "Liu", "Nguyen")
ZIPF_HEAD_SHARE = 0.30


def _zipf_surnames() -> tuple[tuple[str, ...], list[float]]:
    """The head names, then made-up ones, weighted 1/rank, as many as make the head carry 30%."""
    head = sum(1 / r for r in range(1, len(ZIPF_HEAD) + 1))
    total, size = head, len(ZIPF_HEAD)
    while head / total > ZIPF_HEAD_SHARE:
        size += 1
        total += 1 / size
    onsets = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "tr")
    syllables = [o + v for o in onsets for v in "aeiou"]
    made = list(
        dict.fromkeys(
            (a + b + end).capitalize() for a in syllables for b in syllables for end in ("", "n", "r", "s")
        )
    )
    random.Random(9).shuffle(made)
    names = ZIPF_HEAD + tuple(name for name in made if name not in ZIPF_HEAD)[: size - len(ZIPF_HEAD)]
    cumulative, running = [], 0.0
    for rank in range(1, size + 1):
        running += 1 / rank
        cumulative.append(running)
    return names, cumulative


ZIPF_NAMES, ZIPF_CUMULATIVE = _zipf_surnames()


def zipf_dicts(n: int, part: str) -> Iterator[tuple[str, Study]]:
    """Shape b: synth studies whose first author is a Zipf draw and whose year is 2010-2024."""
    start = _synth_start(part)
    for index, row in enumerate(synth.studies(n, seed=synth.DEFAULT_SEED + 1, start=start), start):
        rng = random.Random(f"b.{index}")
        row["authors"][0]["family"] = rng.choices(ZIPF_NAMES, cum_weights=ZIPF_CUMULATIVE)[0]
        row["year"] = rng.choice(YEARS)
        yield f"b.{part}.{index}", export_shape(row, index, rng)


def unidentified_dicts(n: int, part: str) -> Iterator[tuple[str, Study]]:
    """Shape c: synth studies without DOI or PMID, skipping any whose identity came before."""
    seen: set[str] = set()
    index = _synth_start(part)
    while True:
        row = synth.study(index, seed=synth.DEFAULT_SEED + 2)
        key = identity_key(row["title"], row["authors"][0]["family"], row["year"])
        if key not in seen and _in_part(key, part):
            seen.add(key)
            study = export_shape(row, index, random.Random(f"c.{index}"))
            study["doi"] = study["pmid"] = study["pmcid"] = None
            yield f"c.{part}.{index}", study
        index += 1


# --- d, e, f: templated works --------------------------------------------------------------------

GROUP_FAMILIES = (*ZIPF_HEAD, "Pérez", "Gonçalves")
GROUP_GIVEN = (("Anna", "B"), ("Jun", None), ("Min", "K"), ("Sara", "L"), ("David", "J"), ("Hui", None))
INTERVENTIONS = (
    "instrument-assisted soft tissue mobilization",
    "IASTM",
    "the Graston technique",
    "Gua Sha",
    "dry needling",
    "kinesio taping",
    "foam rolling",
    "myofascial release",
)
COMPARATORS = ("sham treatment", "static stretching", "usual care", "placebo ultrasound")
OUTCOMES = (
    "pain",
    "range of motion",
    "pain and disability",
    "strength and power",
    "muscle stiffness",
    "pain behavior",
    "bruising and hemorrhage",
    "tissue remodeling",
)
PEOPLE = (
    "runners",
    "élite athletes",
    "pediatric patients",
    "older adults",
    "office workers",
    "patients at a rehabilitation center",
    "footballers and rugby players",
    "adults with neck pain",
)
ACRONYMS = ("GLIDE", "STRETCH", "FASCIA", "REHAB")
# (main title, whether it may carry the generic subtitle); the identity of a work is its main title.
TEMPLATES = (
    ("Effects of {x} on {y} in {z}", True),
    ("{X} versus {c} for {y} in {z}", True),
    ("Does {x} improve {y} in {z}?", False),
    ("Short-term effects of {x} on {y} in {z}", True),
    ("{X} for {y} in {z}: the {acronym} trial{number}", False),
)
SUBTITLE_RATE = 0.6
DOI_RATE = 0.5
DOI_LATE_RATE = 1 / 6  # of the works with a DOI: the first copy lacks it, a later one has it
PMID_COPY_RATE = 0.5  # shape f: a further copy shares its work's PMID (else it has none)
VARIATIONS = ("case", "punctuation", "diacritics", "spelling", "subtitle", "and", "given", "doi")


@dataclass(frozen=True)
class Person:
    family: str
    first: str
    middle: str | None

    def given(self, full: bool) -> str:
        initials = [self.first[0]] + ([self.middle] if self.middle else [])
        if full:
            return self.first + (f" {self.middle}." if self.middle else "")
        return " ".join(f"{i}." for i in initials)


@dataclass(frozen=True)
class Work:
    """What every copy of a templated work shares; copies differ only in how they are written."""

    id: str
    main: str  # American spelling
    subtitle_allowed: bool
    subtitle: bool
    british: bool
    authors: tuple[Person, ...]
    full_names: bool
    year: int
    journal: str
    volume: str
    issue: str | None
    pages: str
    design: str | None
    doi: str | None
    doi_on_first: bool
    pmid: str | None


def _draw_title(rng: random.Random) -> tuple[str, bool]:
    template, subtitle_allowed = rng.choice(TEMPLATES)
    x = rng.choice(INTERVENTIONS)
    number = rng.randint(1, 9)
    main = template.format(
        x=x,
        X=x[0].upper() + x[1:],
        c=rng.choice(COMPARATORS),
        y=rng.choice(OUTCOMES),
        z=rng.choice(PEOPLE),
        acronym=rng.choice(ACRONYMS),
        number=f" {number}" if number > 1 else "",
    )
    return main, subtitle_allowed


def _draw_work(shape: str, part: str, number: int, seen: set[str], rng: random.Random, pmids: bool) -> Work:
    family = rng.choice(GROUP_FAMILIES)
    first, middle = rng.choice(GROUP_GIVEN)
    year = rng.choice(YEARS)
    for _ in range(1000):
        main, subtitle_allowed = _draw_title(rng)
        key = identity_key(main, family, year)
        if key not in seen and _in_part(key, part):
            break
    else:  # pragma: no cover - the title space is 100 times larger than what a bucket holds
        raise RuntimeError(f"no free title left for {family} {year}")
    seen.add(key)
    coauthors = tuple(
        Person(rng.choice(synth.FAMILIES), rng.choice(synth.GIVEN_FULL), rng.choice((None, *synth.GIVEN)))
        for _ in range(rng.randint(0, 5))
    )
    page = rng.randint(1, 900)
    has_doi = rng.random() < DOI_RATE and shape != "d"
    part_offset = PARTS.index(part) * 5_000_000
    return Work(
        id=f"{shape}.{part}.{number}",
        main=main,
        subtitle_allowed=subtitle_allowed,
        subtitle=subtitle_allowed and rng.random() < SUBTITLE_RATE,
        british=rng.random() < 0.4,
        authors=(Person(family, first, middle), *coauthors),
        full_names=rng.random() < 0.5,
        year=year,
        journal=rng.choice(synth.JOURNALS),
        volume=str(rng.randint(1, 60)),
        issue=str(rng.randint(1, 12)) if rng.random() < 0.85 else None,
        pages=f"{page}-{page + rng.randint(4, 14)}",
        design="rct" if "trial" in main or subtitle_allowed else None,
        doi=f"10.5555/{shape}.{part}.{number}" if has_doi else None,
        doi_on_first=rng.random() >= DOI_LATE_RATE,
        pmid=str(20_000_000 + part_offset + number) if pmids else None,
    )


def _abstract(work: Work) -> str:
    rng = random.Random(work.id)
    text = " ".join(
        [
            f"Objective: To examine {work.main[0].lower() + work.main[1:].rstrip('?')}.",
            *rng.sample(synth.FILLER, rng.randint(2, 4)),
            f"Results: the primary outcome changed by {rng.uniform(1, 25):.1f}% "
            f"(p = {rng.choice(('0.01', '0.03', '0.04', '0.12', '0.27', '0.48'))}).",
        ]
    )
    return _respell(text, _US_RE, US_TO_UK) if work.british else text


def _applicable(work: Work, title: str) -> list[str]:
    found = ["case", "punctuation", "given"]
    if any(ord(ch) > 127 for ch in title + work.authors[0].family):
        found.append("diacritics")
    if _US_RE.search(title) or _UK_RE.search(title):
        found.append("spelling")
    if work.subtitle_allowed:
        found.append("subtitle")
    if " and " in title:
        found.append("and")
    if work.doi and work.doi_on_first:  # else the copy differs already: it has the DOI, the first not
        found.append("doi")
    return found


def render(work: Work, variations: Iterable[str] = (), *, rng: random.Random | None = None) -> Study:
    """A copy of a work as a study dict: the first copy without variations, a further one with some."""
    changes = set(variations)
    rng = rng or random.Random(0)
    subtitle = work.subtitle != ("subtitle" in changes)
    title = work.main + (SUBTITLE if subtitle else "")
    if work.british != ("spelling" in changes):
        title = _respell(title, _US_RE, US_TO_UK)
    if "and" in changes:
        title = title.replace(" and ", " & ")
    if "punctuation" in changes:
        options = ["colon"] if ":" in title else []
        options += ["hyphen"] if "-" in title else []
        options += [] if title.endswith("?") else ["period"]
        how = rng.choice(options or ["period"])
        if how == "colon":
            title = title.replace(": ", rng.choice((" : ", ":")))
        elif how == "hyphen":
            title = title.replace("-", " ")
        else:
            title += "."
    if "case" in changes:
        how = rng.choice(("lower", "upper", "title"))
        if how == "lower":
            title = title.lower()
        elif how == "upper":
            title = title.upper()
        else:
            title = " ".join(w[:1].upper() + w[1:] for w in title.split(" "))
    full = work.full_names != ("given" in changes)
    authors = [{"family": p.family, "given": p.given(full), "orcid": None} for p in work.authors]
    if "diacritics" in changes:
        title = fold(title)
        for author in authors:
            author["family"] = fold(author["family"])
    study = empty_study()
    study.update(
        {
            "title": title,
            "authors": authors,
            "journal": work.journal,
            "year": work.year,
            "volume": work.volume,
            "issue": work.issue,
            "pages": work.pages,
            "doi": None if "doi" in changes else work.doi,
            "pmid": work.pmid,
            "abstract": _abstract(work),
            "language": "en",
            "publication_type": "journal-article",
            "design": work.design,
            "population": "human",
        }
    )
    return study


def templated_dicts(shape: str, part: str, *, copies: bool, pmids: bool) -> Iterator[tuple[str, Study]]:
    """Shapes d, e, f: an endless stream of templated works, with further copies when ``copies``."""
    seen: set[str] = set()
    works: list[Work] = []
    position = 0
    while True:
        block = position // 10
        later = random.Random(f"{shape}.{part}.block.{block}").sample(
            range(1 if block == 0 else 0, 10), DUPLICATES_PER_TEN
        )
        for offset in range(10):
            rng = random.Random(f"{shape}.{part}.{position}")
            if copies and offset in later:
                work = rng.choice(works)
                applicable = _applicable(work, render(work)["title"])
                count = 1 + (rng.random() < 0.4) + (rng.random() < 0.15)
                study = render(work, rng.sample(applicable, min(count, len(applicable))), rng=rng)
                if pmids and rng.random() >= PMID_COPY_RATE:
                    study["pmid"] = None  # the same work from another database
                yield work.id, study
            else:
                work = _draw_work(shape, part, len(works) + 1, seen, rng, pmids)
                works.append(work)
                study = render(work)
                if not work.doi_on_first:
                    study["doi"] = None
                yield work.id, study
            position += 1


# --- NBIB ----------------------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NBIB_WIDTH = 82  # PubMed wraps values near 88 columns, continuing on lines indented by six spaces


def _wrap(tag: str, value: str) -> str:
    head = f"{tag:<4}- "
    out, rest = [], value
    while len(rest) > _NBIB_WIDTH:
        cut = rest.rfind(" ", 0, _NBIB_WIDTH)
        if cut <= 0:
            break
        out.append(rest[:cut])
        rest = rest[cut + 1 :]
    out.append(rest)
    return head + "\n      ".join(out) + "\n"


def _medline_pages(pages: str | None) -> str | None:
    """`127-134` -> `127-34`, as MEDLINE abbreviates (the reader expands it back)."""
    if not pages or "-" not in pages:
        return pages
    first, last = pages.split("-", 1)
    if len(first) == len(last) and first.isdigit() and last.isdigit():
        same = 0
        while same < len(first) - 1 and first[same] == last[same]:
            same += 1
        return f"{first}-{last[same:]}"
    return pages


def nbib_record(study: Study) -> str:
    """One MEDLINE record in the tag order PubMed writes (a subset of its tags)."""
    if not study.get("pmid"):
        raise ValueError(f"an NBIB record needs a PMID: {study.get('title')!r}")
    parts = [_wrap("PMID", study["pmid"]), "OWN - NLM\n", "STAT- MEDLINE\n"]
    for tag, key in (("VI", "volume"), ("IP", "issue")):
        if study.get(key):
            parts.append(_wrap(tag, str(study[key])))
    year = study.get("year")
    if year:
        parts.append(_wrap("DP", f"{year} {_MONTHS[int(study.get('volume') or 0) % 12]}"))
    parts.append(_wrap("TI", str(study["title"])))
    pages = _medline_pages(study.get("pages"))
    if pages:
        parts.append(_wrap("PG", pages))
    if study.get("abstract"):
        parts.append(_wrap("AB", study["abstract"]))
    for author in study.get("authors") or ():
        family, given = author.get("family") or "", (author.get("given") or "").replace(".", "")
        parts.append(_wrap("FAU", f"{family}, {given}" if given else family))
        initials = "".join(word[0] for word in given.split())
        parts.append(_wrap("AU", f"{family} {initials}".strip()))
    parts.append("LA  - eng\n")
    parts.append("PT  - Journal Article\n")
    if study.get("design") == "rct":
        parts.append("PT  - Randomized Controlled Trial\n")
    if study.get("journal"):
        parts.append(_wrap("JT", study["journal"]))
    if study.get("population") == "human":
        parts.append("MH  - Humans\n")
    if study.get("doi"):
        parts.append(_wrap("AID", f"{study['doi']} [doi]"))
    return "".join(parts)


def write_nbib(studies: Iterable[Study], out: TextIO) -> int:
    """Write studies as PubMed NBIB (MEDLINE), records separated by a blank line; returns the count."""
    count = 0
    for study in studies:
        out.write(("\n" if count else "") + nbib_record(study))
        count += 1
    return count
