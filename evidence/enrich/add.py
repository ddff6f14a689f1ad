"""Adding to the library from Crossref: a new study by DOI or by citation, a DOI for a study without one.

``add_by_doi`` and ``add_by_citation`` store a work as a new study (``add_work``) with provenance: the
study's ``source`` is ``crossref`` and every field Crossref filled has ``field_sources[field] =
"crossref"``; a field the user gave wins and is ``manual``. ``resolve_missing`` looks up every study
without a DOI by its own fields and, when asked and confident, stores the DOI found, marked unverified.
Like every service, these take a Session and never commit (STYLE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evidence import ids, records
from evidence.crossref import CrossrefClient, CrossrefWork
from evidence.enrich.cache import fetch_work_cached, store_message
from evidence.enrich.citations import Candidate, CitationDecision, resolve_citation
from evidence.enrich.merge import same_value, work_authors, work_facts, work_fields
from evidence.errors import InvalidValue
from evidence.query import show_study
from evidence.store.models import Study, utcnow


class StudyOptions(TypedDict, total=False):
    """What the user gives beside Crossref's record, for ``add_by_doi`` and ``add_by_citation``.

    The keys are ``add_work``'s keyword arguments of the same names (and take its defaults when absent).
    """

    fields: Mapping[str, Any] | None
    authors: Sequence[str]
    tags: Iterable[str]
    claims: Sequence[str]
    stance: str | None
    finding: str | None


def add_work(
    session: Session,
    work: CrossrefWork,
    checked_at: datetime,
    *,
    fields: Mapping[str, Any] | None = None,
    authors: Sequence[str] = (),
    tags: Iterable[str] = (),
    claims: Sequence[str] = (),
    stance: str | None = None,
    finding: str | None = None,
    doi_verified: bool = True,
    extra_verification_note: str | None = None,
) -> Study:
    """Store ``work`` as a new study with ``source="crossref"``; fields the user gave win and are ``manual``.

    ``doi_verified``: the user asked for exactly this DOI (``add --doi``), so Crossref's record of it
    verifies it; a DOI found by a citation search is only a metadata match (``unverified``, the evidence in
    ``extra_verification_note``). The bibliographic fields are ``verified`` only if every one of them is
    Crossref's (a value the user gave that differs from Crossref's is not verified by anyone). Derived
    fields follow their source: a level computed from the user's design is ``manual``.
    ``DuplicateRecord`` if the library already has its DOI.
    """
    links = records.claim_links(claims, stance, finding)
    user = {k: v for k, v in records.normalize_fields(dict(fields or {})).items() if v is not None}
    user.pop("doi", None)
    records.find_duplicate(session, work.doi, user.get("pmid"), user.get("citekey"))
    theirs = {k: v for k, v in work_fields(work).items() if v is not None}
    values = {**theirs, **user}
    values["doi"] = work.doi
    values.setdefault("doi_verification", "verified" if doi_verified else "unverified")
    not_crossrefs = [
        name
        for name, field_ in records.VERIFICATION_OF_FIELD.items()
        if field_ == "bibliographic_verification"
        and name in user
        and not (name in theirs and same_value(name, user[name], theirs[name], work))
    ]
    values.setdefault("bibliographic_verification", "unverified" if not_crossrefs else "verified")
    if not authors:
        values.setdefault("authors_verification", "verified")
    notes = [extra_verification_note] if extra_verification_note else []
    if not_crossrefs:
        notes.append(
            "Given by hand, not Crossref's: "
            + "; ".join(f"{name} {user[name]!r} (Crossref: {theirs.get(name)!r})" for name in not_crossrefs)
            + "."
        )
    if notes:
        values["verification_note"] = " ".join(notes)
    if not values.get("title"):
        raise InvalidValue(f"Crossref's record of {work.doi} has no title; add it by hand with --title")
    study = records.add_study(
        session,
        values,
        authors=list(authors) or work_authors(work),
        tags=tags,
        claims=links,
        source="crossref",
        extra=work_facts(work, checked_at),
    )
    provenance = dict(study.field_sources)
    for name in user:
        provenance[name] = "manual"
    if "level" not in user and "design" in user and study.level is not None:
        provenance["level"] = "manual"  # computed from the user's design, not from anything Crossref said
    if authors:
        provenance["authors"] = "manual"
    study.field_sources = provenance
    session.flush()
    return study


def add_by_doi(
    session: Session,
    client: CrossrefClient,
    doi: str,
    *,
    refresh: bool = False,
    **options: Unpack[StudyOptions],
) -> dict[str, Any]:
    """Fetch ``doi`` from Crossref (or the cache) and add it; returns the study as ``show`` sees it.

    An existing DOI raises ``DuplicateRecord`` before any request. Claims, stance, finding, tags and any
    ``fields`` (design, population, PEDro...) apply to the new study (``StudyOptions``); a field given here
    wins over Crossref's and is recorded as ``manual``.
    """
    key = ids.normalize_doi(doi)
    _check_options(options)
    records.find_duplicate(session, key, None, None)
    work, fetched_at, _from_cache = fetch_work_cached(session, client, key, refresh=refresh)
    study = add_work(session, work, fetched_at, **options)
    return show_study(session, f"id:{study.id}")


def _check_options(options: StudyOptions) -> None:
    """Refuse bad options (claims, stance, finding, fields) before spending a request on Crossref."""
    records.claim_links(options.get("claims", ()), options.get("stance"), options.get("finding"))
    records.normalize_fields(dict(options.get("fields") or {}))


def _matched_note(doi: str, day: date, evidence: str) -> str:
    """The verification note of a DOI found by a citation search: what matched, and what was not checked."""
    return (
        f"DOI {doi} matched by a Crossref citation search on {day.isoformat()} {evidence}; "
        "the article itself was not checked."
    )


@dataclass(frozen=True)
class CitationAdd:
    decision: CitationDecision
    picked: Candidate | None  # what was stored (the confident match, or the user's pick)
    study: dict[str, Any] | None  # as `show` sees it; None when nothing was stored


def add_by_citation(
    session: Session,
    client: CrossrefClient,
    text: str,
    *,
    pick: int | None = None,
    **options: Unpack[StudyOptions],
) -> CitationAdd:
    """Resolve ``text`` and store the confident match, or the ``pick``-th candidate; else store nothing.

    ``options`` apply to the new study as in ``add_by_doi``.
    """
    _check_options(options)
    decision = resolve_citation(client, text)
    chosen = decision.pick(pick) if pick is not None else decision.match
    if chosen is None:
        return CitationAdd(decision, None, None)
    work = chosen.work
    now = utcnow()
    records.find_duplicate(session, work.doi, None, None)
    store_message(session, work.doi, work.raw, now)
    how = "picked by the user" if pick is not None and chosen is not decision.match else "confident match"
    note = _matched_note(
        work.doi, now.date(), f"for the citation {text!r} ({how}: " + ", ".join(chosen.reasons[:3]) + ")"
    )
    study = add_work(session, work, now, doi_verified=False, extra_verification_note=note, **options)
    return CitationAdd(decision, chosen, show_study(session, f"id:{study.id}"))


# --- studies without a DOI ---------------------------------------------------------------------------


def citation_text(study: Study) -> str:
    """A reference-list style citation built from a study's own fields, for ``query.bibliographic``."""
    authors = [a.family or a.name or "" for a in study.authors if a.family or a.name]
    parts = [", ".join(authors[:3])] if authors else []
    if study.year:
        parts.append(f"({study.year})")
    parts.append(study.title.rstrip(".") + ".")
    if study.journal:
        where = study.journal
        if study.volume:
            where += f" {study.volume}"
            if study.issue:
                where += f"({study.issue})"
        if study.pages or study.article_number:
            where += f": {study.pages or study.article_number}"
        parts.append(where + ".")
    return " ".join(parts)


@dataclass(frozen=True)
class MissingDoi:
    """``resolve --missing`` for one study: what Crossref suggested, how sure, and what was done."""

    id: int
    citekey: str
    citation: str
    decision: CitationDecision
    applied: bool
    note: str | None = None

    def row(self) -> dict[str, Any]:
        best = self.decision.match or (self.decision.candidates[0] if self.decision.candidates else None)
        return {
            "id": self.id,
            "citekey": self.citekey,
            "found": self.decision.match.work.doi if self.decision.match else None,
            "confident": self.decision.confident,
            "best_candidate": best.work.doi if best else None,
            "confidence": round(best.confidence, 2) if best else None,
            "why": self.decision.why,
            "applied": self.applied,
            "note": self.note,
            "citation": self.citation,
        }


def resolve_missing(
    session: Session,
    client: CrossrefClient,
    *,
    apply: bool = False,
    on_progress: Callable[[MissingDoi, int, int], None] | None = None,
) -> list[MissingDoi]:
    """Resolve every study without a DOI from its own fields; store DOIs only if ``apply`` and confident.

    One citation search per study. An applied DOI is marked ``field_sources["doi"] = "crossref"`` and
    ``doi_verification = "unverified"`` (matched by metadata, the article itself not seen), with the evidence
    in the verification note; nothing else changes (run ``enrich`` next). A DOI another study already has is
    not applied. If Crossref cannot be reached, the one-line error is raised and the caller's transaction
    rolls back.
    """
    studies = session.scalars(
        select(Study).where(Study.doi.is_(None)).options(selectinload(Study.authors)).order_by(Study.id)
    ).all()
    results: list[MissingDoi] = []
    for study in studies:
        text = citation_text(study)
        decision = resolve_citation(client, text)
        applied, note = False, None
        if decision.match is not None and apply:
            doi = decision.match.work.doi
            owner = session.scalar(select(Study).where(Study.doi == doi))
            if owner is not None:
                note = f"not applied: {doi} is already study {owner.id} ({owner.citekey})"
            else:
                evidence_note = _matched_note(doi, utcnow().date(), f"({decision.why})")
                study.doi = doi
                study.doi_verification = "unverified"
                study.verification_note = (
                    f"{study.verification_note} {evidence_note}" if study.verification_note else evidence_note
                )
                study.field_sources = {**(study.field_sources or {}), "doi": "crossref"}
                study.updated_at = utcnow()
                session.flush()
                applied, note = True, f"DOI stored; run `evidence enrich {study.citekey}` to fill the rest"
        elif decision.match is not None:
            note = "rerun with --apply to store the DOI"
        result = MissingDoi(study.id, study.citekey, text, decision, applied, note)
        results.append(result)
        if on_progress is not None:
            on_progress(result, len(results), len(studies))
    return results
