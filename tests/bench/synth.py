"""Deterministic synthetic studies for benchmarks: an IASTM-flavoured library of any size.

Every study is drawn from ``random.Random(seed + index)``, so study N is the same whatever ``n`` is and
whichever chunk it falls in. Titles and abstracts come from a small clinical vocabulary; about 7% of the
studies mention "range of motion" (in the title or the abstract), so a phrase search matches a realistic
fraction rather than nothing or everything. DOIs are ``10.5555/synth.N`` (10.5555 is Crossref's test
prefix) and PMIDs ``40000000 + N``; both are unique.

``build_library(db_path, n)`` makes (or reuses) a library with exactly those studies and no seed data.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Bump when the generated rows change, so a cached library from an older generator is rebuilt.
GENERATOR_VERSION = 1
DEFAULT_SEED = 20240611
DOI_PREFIX = "10.5555/synth."
PMID_BASE = 40_000_000
ROM_FRACTION = 0.07

FAMILIES = (
    "Smith",
    "Nguyen",
    "Garcia",
    "Müller",
    "Kim",
    "Rossi",
    "Kowalski",
    "O'Brien",
    "Tanaka",
    "Silva",
    "Johansson",
    "Dubois",
    "Patel",
    "Chen",
    "Novak",
    "Hansen",
    "Ibrahim",
    "Lopez",
    "Yilmaz",
    "Walker",
    "Cheatham",
    "Loghmani",
    "Baker",
    "Hammer",
    "Kivlan",
    "Mackey",
    "Stow",
    "Vardiman",
    "Markovic",
    "Lee",
    "Park",
    "Wang",
    "Zhang",
    "Santos",
    "Fischer",
    "Schmidt",
    "Bianchi",
    "Costa",
    "Andersen",
    "Murphy",
)
GIVEN = ("A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "T", "W", "Y")
GIVEN_FULL = (
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kate",
    "Luis",
    "Maria",
    "Noah",
    "Olga",
    "Pedro",
    "Rui",
    "Sara",
    "Tom",
    "Yuki",
)
JOURNALS = (
    "Journal of Bodywork and Movement Therapies",
    "International Journal of Sports Physical Therapy",
    "Journal of Sport Rehabilitation",
    "Journal of Manual & Manipulative Therapy",
    "Physical Therapy in Sport",
    "Journal of Athletic Training",
    "Medicine and Science in Sports and Exercise",
    "Archives of Physical Medicine and Rehabilitation",
    "Journal of Chiropractic Medicine",
    "Clinical Biomechanics",
    "Connective Tissue Research",
    "Journal of Orthopaedic & Sports Physical Therapy",
    "BMC Musculoskeletal Disorders",
    "Physiotherapy Theory and Practice",
    "Journal of Physical Therapy Science",
)
INTERVENTIONS = (
    "instrument-assisted soft tissue mobilization",
    "instrument-assisted soft tissue mobilisation",
    "IASTM",
    "the Graston technique",
    "augmented soft tissue mobilization",
    "Gua Sha",
    "the Astym treatment",
    "instrument-assisted manual therapy",
    "soft tissue mobilization with a stainless-steel instrument",
)
COMPARATORS = (
    "sham treatment",
    "static stretching",
    "foam rolling",
    "usual care",
    "no intervention",
    "manual massage",
    "a home exercise programme",
    "eccentric exercise alone",
    "placebo ultrasound",
)
REGIONS = {  # body region -> typical conditions
    "hamstrings": ("hamstring tightness", "hamstring strain", "healthy"),
    "calf": ("calf tightness", "gastrocnemius strain", "healthy"),
    "achilles tendon": ("Achilles tendinopathy", "Achilles tendinosis"),
    "patellar tendon": ("patellar tendinopathy",),
    "lateral elbow": ("lateral epicondylalgia", "lateral epicondylitis"),
    "shoulder": ("shoulder impingement", "frozen shoulder", "posterior shoulder tightness"),
    "plantar fascia": ("plantar fasciitis", "plantar heel pain"),
    "lumbar spine": ("chronic low back pain", "non-specific low back pain"),
    "cervical spine": ("chronic neck pain", "mechanical neck pain"),
    "knee": ("knee osteoarthritis", "patellofemoral pain", "post-operative knee stiffness"),
    "wrist": ("carpal tunnel syndrome", "de Quervain tenosynovitis"),
    "thoracolumbar fascia": ("healthy", "chronic low back pain"),
}
ANIMAL_TISSUES = (
    "rat Achilles tendon",
    "rat medial collateral ligament",
    "rabbit tendon",
    "rat hindlimb muscle",
    "murine fascia",
    "rat knee ligament",
)
OUTCOMES_HUMAN = (
    "pain intensity on a visual analogue scale",
    "pressure pain threshold",
    "grip strength",
    "functional scores",
    "muscle stiffness measured by shear-wave elastography",
    "skin temperature",
    "joint position sense",
    "dynamic balance on the Y-balance test",
    "disability index scores",
    "tissue thickness on ultrasound",
    "sit-and-reach flexibility",
    "vertical jump height",
    "perceived recovery",
    "surface electromyography amplitude",
    "local blood flow by laser Doppler",
)
ROM_OUTCOMES = (
    "active range of motion",
    "passive range of motion",
    "ankle dorsiflexion range of motion",
    "shoulder internal rotation range of motion",
    "knee flexion range of motion",
    "hip flexion range of motion",
    "range of motion",
)
OUTCOMES_ANIMAL = (
    "fibroblast proliferation",
    "collagen fibre alignment",
    "tendon tensile strength",
    "inflammatory cytokine expression",
    "capillary density",
    "scar tissue formation",
    "fibronectin expression",
    "macrophage infiltration",
)
POPULATION_PHRASES = (
    "healthy adults",
    "recreational athletes",
    "collegiate athletes",
    "older adults",
    "office workers",
    "runners",
    "patients",
    "military recruits",
    "adolescent athletes",
)
TAGS = (
    "to-read",
    "key-paper",
    "included",
    "excluded",
    "practice-article",
    "review-2024",
    "sham-controlled",
    "pilot",
    "follow-up",
    "athletes",
)
TITLE_TEMPLATES = (
    "Effect of {intervention} on {outcome} in {people}: {design_label}",
    "{intervention_cap} versus {comparator} for {condition}: {design_label}",
    "The immediate effects of {intervention} on {outcome} in {people} with {condition}",
    "Does {intervention} improve {outcome}? {design_label_cap}",
    "Short-term effects of {intervention} combined with exercise in {people} with {condition}",
    "{intervention_cap} for {condition}: {design_label}",
)
DESIGN_WEIGHTS = {
    "systematic-review": 6,
    "rct": 30,
    "non-randomised-controlled-trial": 8,
    "cohort": 5,
    "case-control": 2,
    "case-series": 7,
    "case-report": 9,
    "cross-sectional": 3,
    "animal-study": 12,
    "in-vitro": 3,
    "narrative-review": 10,
    "expert-opinion": 5,
}
DESIGN_PHRASES = {
    "systematic-review": "a systematic review and meta-analysis",
    "rct": "a randomized controlled trial",
    "non-randomised-controlled-trial": "a controlled clinical trial",
    "cohort": "a prospective cohort study",
    "case-control": "a case-control study",
    "case-series": "a case series",
    "case-report": "a case report",
    "cross-sectional": "a cross-sectional study",
    "animal-study": "an experimental animal study",
    "in-vitro": "an in vitro study",
    "narrative-review": "a narrative review",
    "expert-opinion": "a clinical commentary",
}
CLAIM_NAMES = (
    "pain-modulation",
    "mechanoreceptor-rom",
    "proprioception",
    "tendinopathy-outcomes",
    "fascial-gliding",
    "tissue-density",
    "microtrauma-inflammation",
    "blood-flow",
    "collagen-repair",
)
ANIMAL_CLAIMS = ("microtrauma-inflammation", "blood-flow", "collagen-repair", "tissue-density")
STANCES = ("supports", "contradicts", "mixed", "no-effect")
STANCE_WEIGHTS = (50, 15, 15, 20)
FINDINGS = {
    "supports": "{outcome} improved more than with {comparator}.",
    "contradicts": "{outcome} was no better than {comparator}, against the claimed mechanism.",
    "mixed": "Improvement in {outcome} at one time point only.",
    "no-effect": "No change in {outcome} compared with {comparator}.",
}
FILLER = (
    "Participants were randomly allocated to groups by a computer-generated sequence.",
    "Treatment was applied by a licensed clinician for two to five minutes per session.",
    "Outcomes were assessed by a blinded examiner at baseline, immediately after treatment and at follow-up.",
    "Between-group differences were analysed with a mixed-model analysis of variance.",
    "The risk of bias of the included trials was rated with the Cochrane tool.",
    "Effect sizes were small to moderate and confidence intervals were wide.",
    "No adverse events other than transient redness and petechiae were reported.",
    "Further high-quality trials with longer follow-up are needed before clinical recommendations "
    "can be made.",
    "The clinical relevance of these changes remains uncertain given the small sample.",
    "Tissue samples were harvested for histological and biomechanical analysis.",
)


def _authors(rng: random.Random) -> list[dict[str, Any]]:
    count = min(8, max(1, int(rng.gauss(4, 2))))
    authors = []
    for _ in range(count):
        if rng.random() < 0.4:
            given = rng.choice(GIVEN_FULL)
        else:
            given = rng.choice(GIVEN) + rng.choice(("", "J", "M"))
        authors.append({"family": rng.choice(FAMILIES), "given": given})
    return authors


def _year(rng: random.Random) -> int:
    # Most of the literature is recent: weight years by how late they are.
    return min(2026, 1990 + int(36 * rng.random() ** 0.6 + 0.5))


def study(index: int, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Synthetic study number ``index`` (1-based) as an `evidence.store.bulk.insert_studies` row."""
    rng = random.Random(seed * 1_000_003 + index)
    design = rng.choices(tuple(DESIGN_WEIGHTS), weights=tuple(DESIGN_WEIGHTS.values()))[0]
    animal = design in ("animal-study", "in-vitro")
    mentions_rom = not animal and rng.random() < ROM_FRACTION / 0.85  # animal work never does
    region = rng.choice(tuple(REGIONS))
    condition = rng.choice(ANIMAL_TISSUES) if animal else rng.choice(REGIONS[region])
    if animal:
        outcome = rng.choice(OUTCOMES_ANIMAL)
        people = rng.choice(("rats", "rabbits", "mice"))
    else:
        outcome = rng.choice(ROM_OUTCOMES) if mentions_rom else rng.choice(OUTCOMES_HUMAN)
        people = rng.choice(POPULATION_PHRASES)
    intervention = rng.choice(INTERVENTIONS)
    comparator = rng.choice(COMPARATORS)
    design_label = DESIGN_PHRASES[design]
    rom_in_title = mentions_rom and rng.random() < 0.5
    title_outcome = outcome if (rom_in_title or not mentions_rom) else rng.choice(OUTCOMES_HUMAN)
    title = rng.choice(TITLE_TEMPLATES).format(
        intervention=intervention,
        intervention_cap=intervention[0].upper() + intervention[1:],
        outcome=title_outcome,
        people=people,
        condition=condition.lower(),
        comparator=comparator,
        design_label=design_label,
        design_label_cap=design_label[0].upper() + design_label[1:],
    )
    sample_size = rng.randint(8, 40) if animal else (1 if design == "case-report" else rng.randint(10, 160))
    secondary = rng.choice([o for o in (OUTCOMES_ANIMAL if animal else OUTCOMES_HUMAN) if o != outcome])
    abstract_parts = [
        f"Background: {intervention[0].upper() + intervention[1:]} is widely used for {condition.lower()}, "
        f"but the mechanism behind its effects is debated.",
        f"Objective: To examine the effect of {intervention} on {outcome} and {secondary} "
        f"compared with {comparator}.",
        f"Design: {design_label[0].upper() + design_label[1:]} of {sample_size} {people}.",
        *rng.sample(FILLER, rng.randint(2, 5)),
        f"Results: {outcome[0].upper() + outcome[1:]} changed by {rng.uniform(1, 25):.1f}% "
        f"(p = {rng.choice(('0.01', '0.03', '0.04', '0.12', '0.27', '0.48'))}).",
        "Conclusion: The findings "
        + rng.choice(("support", "do not support", "partly support"))
        + f" the use of {intervention} for {condition.lower()}.",
    ]
    n_claims = rng.choice((1, 1, 2, 2, 3))
    claim_pool = ANIMAL_CLAIMS if animal else CLAIM_NAMES
    claims = []
    for claim in rng.sample(claim_pool, min(n_claims, len(claim_pool))):
        stance = rng.choices(STANCES, weights=STANCE_WEIGHTS)[0]
        finding = FINDINGS[stance].format(outcome=outcome[0].upper() + outcome[1:], comparator=comparator)
        claims.append({"claim": claim, "stance": stance, "finding": finding})
    first_page = rng.randint(1, 900)
    return {
        "title": title,
        "authors": _authors(rng),
        "journal": rng.choice(JOURNALS),
        "year": _year(rng),
        "volume": str(rng.randint(1, 60)),
        "issue": str(rng.randint(1, 12)) if rng.random() < 0.85 else None,
        "pages": f"{first_page}-{first_page + rng.randint(4, 14)}",
        "doi": f"{DOI_PREFIX}{index}",
        "pmid": str(PMID_BASE + index) if rng.random() < 0.8 else None,
        "design": design,
        "population": "animal" if animal else "human",
        "condition": condition,
        "body_region": None if animal else region,
        "sample_size": sample_size,
        "pedro": rng.randint(2, 9) if design in ("rct", "non-randomised-controlled-trial") else None,
        "abstract": " ".join(abstract_parts),
        "notes": "Synthetic study for benchmarks." if rng.random() < 0.1 else None,
        "language": "en",
        "publication_type": "journal-article",
        "tags": rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2))),
        "claims": claims,
    }


def studies(n: int, seed: int = DEFAULT_SEED, start: int = 1) -> Iterator[dict[str, Any]]:
    for index in range(start, start + n):
        yield study(index, seed)


def _stamp_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".json")


def _expected_stamp(n: int, seed: int) -> dict[str, Any]:
    from evidence.store.db import HEAD_REVISION

    return {"n": n, "seed": seed, "generator": GENERATOR_VERSION, "schema": HEAD_REVISION}


def _count_studies(db_path: Path) -> int | None:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM studies").fetchone()[0])
    except sqlite3.Error:
        return None


def cached_library_ok(db_path: Path, n: int, seed: int = DEFAULT_SEED) -> bool:
    """True when ``db_path`` was built by this generator, for ``n`` studies, and still holds n studies."""
    stamp = _stamp_path(db_path)
    if not (db_path.is_file() and stamp.is_file()):
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except ValueError:
        return False
    return bool(recorded == _expected_stamp(n, seed) and _count_studies(db_path) == n)


def build_library(
    db_path: str | Path,
    n: int,
    *,
    seed: int = DEFAULT_SEED,
    chunk: int = 5000,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """A library at ``db_path`` with synthetic studies 1..n and no seed data; reused if already built.

    Built into a temporary file and renamed, so an interrupted build is never mistaken for a finished one.
    """
    from evidence.config import load_settings
    from evidence.library import init_library
    from evidence.store.bulk import insert_studies, library_allocator
    from evidence.store.db import open_database

    db_path = Path(db_path).resolve()
    if not force and cached_library_ok(db_path, n, seed):
        return db_path
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_name(db_path.name + ".building")
    for path in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), _stamp_path(db_path)):
        path.unlink(missing_ok=True)
    started = time.perf_counter()
    settings = load_settings({"EVIDENCE_HOME": str(db_path.parent), "EVIDENCE_DB": str(tmp)})
    db = open_database(settings)
    try:
        with db.transaction() as session:
            init_library(session, empty=True)
        allocator = None
        for start in range(1, n + 1, chunk):
            size = min(chunk, n + 1 - start)
            with db.transaction() as session:  # one transaction per chunk keeps the WAL small
                allocator = allocator or library_allocator(session)
                insert_studies(session, studies(size, seed, start), source="import", allocator=allocator)
            if progress and sys.stderr.isatty():
                print(f"\rsynthetic library: {start + size - 1}/{n} studies", end="", file=sys.stderr)
        # A checkpoint cannot run inside a transaction, and every SQLAlchemy transaction here begins
        # IMMEDIATE (evidence.store.db): use the driver connection, outside any transaction.
        raw = db.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    finally:
        db.close()
    if progress and sys.stderr.isatty():
        print(file=sys.stderr)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    tmp.replace(db_path)
    _stamp_path(db_path).write_text(json.dumps(_expected_stamp(n, seed)))
    if progress:
        print(f"built {db_path} ({n} studies) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return db_path
