"""Loads the shipped IASTM library from ``data/studies.json`` through the write services.

Idempotent: a study whose seed key (or DOI, PMID) is already in the library is left exactly as it is, so
re-running adds nothing twice and never overwrites what a user edited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import records
from evidence.errors import DuplicateRecord, EvidenceError, SeedDataError
from evidence.schema import STUDY_FIELDS
from evidence.store.models import Study

SEED_FORMAT = "evidence-seed/1"
_VERIFICATION_KEYS = ("doi", "pmid", "authors", "bibliographic", "design")


@dataclass
class SeedReport:
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def seed_path() -> Path:
    """``data/studies.json`` in a checkout, else the copy installed inside the package."""
    checkout = Path(__file__).resolve().parent.parent / "data" / "studies.json"
    if checkout.is_file():
        return checkout
    return Path(str(resources.files("evidence.seed_data").joinpath("studies.json")))


def read_seed(path: Path | None = None) -> list[dict[str, Any]]:
    source = path or seed_path()
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SeedDataError(f"{source}: cannot read seed data ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != SEED_FORMAT:
        raise SeedDataError(f"{source}: not an {SEED_FORMAT} file")
    studies = document.get("studies")
    if not isinstance(studies, list):
        raise SeedDataError(f"{source}: 'studies' must be a list")
    return studies


def load_seed(session: Session, path: Path | None = None) -> SeedReport:
    """Add every seed study the library does not have yet. The caller owns the transaction."""
    source = path or seed_path()
    report = SeedReport()
    present = set(session.scalars(select(Study.seed_key).where(Study.seed_key.is_not(None))))
    for index, entry in enumerate(read_seed(source)):
        key = entry.get("seed_key") or f"#{index + 1}"
        if key in present:
            report.kept.append(key)
            continue
        try:
            _add_entry(session, entry)
        except DuplicateRecord:
            # The user already has this study (added by hand or imported): theirs wins.
            report.kept.append(key)
        except (EvidenceError, KeyError, TypeError, ValueError) as exc:
            raise SeedDataError(f"{source}: study {key}: {exc}") from exc
        else:
            report.added.append(key)
    return report


def _add_entry(session: Session, entry: dict[str, Any]) -> Study:
    verification = entry.get("verification") or {}
    fields = {name: entry.get(name) for name in (*STUDY_FIELDS, "verification_note")}
    for key in _VERIFICATION_KEYS:
        fields[f"{key}_verification"] = verification.get(key, "unverified")
    with session.begin_nested():
        return records.add_study(
            session,
            fields,
            authors=entry.get("authors") or [],
            tags=entry.get("tags") or [],
            claims=entry.get("claims") or [],
            source="seed",
            extra={
                "seed_key": entry["seed_key"],
                "cited_by_practice_article": bool(entry.get("cited_by_practice_article")),
                "source_urls": list(entry.get("source_urls") or []),
            },
        )
