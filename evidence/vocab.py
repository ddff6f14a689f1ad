"""Controlled vocabularies: mechanisms, claims, stances, study designs and OCEBM 2011 levels.

These are the fixed names a clinician filters on. The database stores them too (seeded from here by a
migration), so a SQL client sees the same words; this module is the source of truth for the names.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MechanismSpec:
    name: str
    label: str
    description: str


@dataclass(frozen=True)
class ClaimSpec:
    name: str
    mechanism: str
    label: str
    description: str


MECHANISMS: tuple[MechanismSpec, ...] = (
    MechanismSpec(
        "neural-stimulation",
        "Neural stimulation",
        "Instrument contact stimulates skin and fascial mechanoreceptors: pain gating, altered stretch "
        "tolerance and range of motion, proprioception.",
    ),
    MechanismSpec(
        "adhesion-breakdown",
        "Adhesion breakdown",
        "Instrument load breaks up abnormal tissue densities and restrictions so that fascial layers glide "
        "again; claimed to drive tendinopathy outcomes.",
    ),
    MechanismSpec(
        "inflammatory-healing",
        "Inflammatory healing",
        "Controlled microtrauma restarts the inflammatory phase of healing: local inflammatory response, "
        "blood flow, fibroblast recruitment and collagen repair.",
    ),
)

CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "pain-modulation",
        "neural-stimulation",
        "Pain gate / pain modulation",
        "IASTM reduces pain or pain sensitivity through sensory (gate-control or descending) modulation.",
    ),
    ClaimSpec(
        "mechanoreceptor-rom",
        "neural-stimulation",
        "Mechanoreceptor-mediated range of motion",
        "IASTM increases range of motion through mechanoreceptor input and stretch tolerance, "
        "not tissue change.",
    ),
    ClaimSpec(
        "proprioception",
        "neural-stimulation",
        "Proprioception and sensorimotor control",
        "IASTM improves proprioception, balance or neuromuscular performance.",
    ),
    ClaimSpec(
        "tendinopathy-outcomes",
        "adhesion-breakdown",
        "Tendinopathy pain and function",
        "IASTM improves pain and function in tendinopathy by remodelling degenerated tendon.",
    ),
    ClaimSpec(
        "fascial-gliding",
        "adhesion-breakdown",
        "Fascial / connective-tissue gliding",
        "IASTM restores gliding between fascial or connective-tissue layers that adhere.",
    ),
    ClaimSpec(
        "tissue-density",
        "adhesion-breakdown",
        "Tissue density and fibrosis",
        "IASTM breaks down abnormal tissue densities, scar tissue, adhesions or fibrosis, or lowers "
        "tissue stiffness.",
    ),
    ClaimSpec(
        "microtrauma-inflammation",
        "inflammatory-healing",
        "Local inflammatory response from microtrauma",
        "Controlled microtrauma from the instrument triggers a local inflammatory response that restarts "
        "healing.",
    ),
    ClaimSpec(
        "blood-flow",
        "inflammatory-healing",
        "Blood flow and perfusion",
        "IASTM increases local blood flow, perfusion or vascularity.",
    ),
    ClaimSpec(
        "collagen-repair",
        "inflammatory-healing",
        "Fibroblast recruitment and collagen repair",
        "IASTM recruits fibroblasts and improves collagen synthesis, alignment or tissue strength.",
    ),
)

STANCES: tuple[str, ...] = ("supports", "contradicts", "mixed", "no-effect")

# Study designs and their OCEBM 2011 level for "does this intervention help?" (treatment benefits).
# Level 5 is mechanism-based reasoning: animal and bench work and opinion sit there, apart from
# clinical-outcome evidence.
DESIGN_LEVELS: dict[str, int] = {
    "systematic-review": 1,
    "rct": 2,
    "non-randomised-controlled-trial": 3,
    "cohort": 3,
    "case-control": 4,
    "case-series": 4,
    "case-report": 4,
    "cross-sectional": 4,
    "animal-study": 5,
    "in-vitro": 5,
    "narrative-review": 5,
    "expert-opinion": 5,
}
DESIGNS: tuple[str, ...] = tuple(DESIGN_LEVELS)

DESIGN_LABELS: dict[str, str] = {
    "systematic-review": "Systematic review / meta-analysis",
    "rct": "Randomised controlled trial",
    "non-randomised-controlled-trial": "Non-randomised controlled trial",
    "cohort": "Cohort study",
    "case-control": "Case-control study",
    "case-series": "Case series",
    "case-report": "Case report",
    "cross-sectional": "Cross-sectional study",
    "animal-study": "Animal study",
    "in-vitro": "In-vitro / bench study",
    "narrative-review": "Narrative review",
    "expert-opinion": "Expert opinion",
}

POPULATIONS: tuple[str, ...] = ("human", "animal")

# Where a record came from.
SOURCES: tuple[str, ...] = ("seed", "manual", "import", "crossref")

# How well each identifier or fact is known. "verified": seen on a page about the article itself;
# "citing-reference": seen only in another paper's reference list; "not-found": searched, absent;
# "unverified": not checked.
VERIFICATION: tuple[str, ...] = ("verified", "citing-reference", "unverified", "not-found")
# What each state is called wherever a clinician reads it (show, the seed's notes, exports, reports): one
# wording per state. `evidence.textview.verification_phrase` looks it up.
VERIFICATION_WORDS: dict[str, str] = {
    "verified": "verified",
    "citing-reference": "seen only in a citing paper's reference list",
    "unverified": "not verified",
    "not-found": "searched, not found",
}

CLAIM_BY_NAME: dict[str, ClaimSpec] = {c.name: c for c in CLAIMS}
MECHANISM_BY_NAME: dict[str, MechanismSpec] = {m.name: m for m in MECHANISMS}


def level_for_design(design: str) -> int:
    """OCEBM 2011 level implied by a design name (KeyError for an unknown design)."""
    return DESIGN_LEVELS[design]


def overall_stance(stances: Collection[str]) -> str:
    """A study's stance on a mechanism from its claim links' stances: the one they share, else mixed (a
    study counts once per mechanism: `evidence mechanisms`, `summary` and the report)."""
    distinct = set(stances)
    return next(iter(distinct)) if len(distinct) == 1 else "mixed"


def link_matches(
    link: Mapping[str, Any],
    *,
    claims: Collection[str] = (),
    mechanisms: Collection[str] = (),
    stances: Collection[str] = (),
) -> bool:
    """Whether a study's claim link (`{"claim", "mechanism", "stance"}`) is one a selection's filters name:
    a named claim or a claim under a named mechanism (either when none is named), with a named stance."""
    name = link["claim"]
    if claims or mechanisms:
        spec = CLAIM_BY_NAME.get(name)
        mechanism = link.get("mechanism") or (spec.mechanism if spec else None)
        if name not in claims and mechanism not in mechanisms:
            return False
    return not stances or link.get("stance") in stances
