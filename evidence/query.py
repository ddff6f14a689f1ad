"""The read side: find studies by facet and full text, show one study, count evidence per claim.

Returns plain dicts with the stable field names of the JSON output (see README, "JSON fields"), so the
CLI, exporters and notebooks share one shape. The filters compile to one SQL statement; the few rows
asked for are then filled in with two batched look-ups (authors, claims and tags), never one per row.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, cast

from sqlalchemy import Float, Integer, Select, Table, and_, column, exists, func, or_, select, text
from sqlalchemy.orm import Session

from evidence import vocab
from evidence.errors import InvalidValue
from evidence.records import (
    check_claim,
    check_design,
    check_mechanism,
    check_name,
    check_stance,
    normalize_tag,
    resolve_ref,
)
from evidence.schema import COLUMN_FIELDS, ROW_FIELDS
from evidence.store.models import Author, Claim, Mechanism, Study, StudyClaim, StudyTag

SORTS = ("level", "year", "pedro", "title", "relevance")



@dataclass
class FindFilters:
    """What `evidence find` narrows by. Empty lists mean "any"."""

    mechanisms: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    stances: list[str] = field(default_factory=list)
    designs: list[str] = field(default_factory=list)
    max_level: int | None = None
    population: str | None = None
    condition: str | None = None
    year_from: int | None = None
    year_to: int | None = None
    tags: list[str] = field(default_factory=list)
    min_pedro: int | None = None
    text: str | None = None
    exclude_retracted: bool = False
    ids: list[int] | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> FindFilters:
        """Filters from a mapping of field names (the CLI's options): absent or None values are left out,
        repeated options become lists."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            value = options.get(spec.name)
            if value is None or spec.name == "ids":
                continue
            values[spec.name] = list(value) if isinstance(value, (tuple, list)) else value
        return cls(**values)

    def validated(self) -> FindFilters:
        """A copy with every name checked against its vocabulary (UnknownName lists the valid ones)."""
        if self.max_level is not None and not 1 <= self.max_level <= 5:
            raise InvalidValue(f"--max-level must be from 1 to 5, not {self.max_level}")
        if self.min_pedro is not None and not 0 <= self.min_pedro <= 10:
            raise InvalidValue(f"--min-pedro must be from 0 to 10, not {self.min_pedro}")
        if self.text is not None and not re.findall(r"\w+", self.text):
            raise InvalidValue(f"--text {self.text!r} has no words to search for")
        if self.year_from and self.year_to and self.year_from > self.year_to:
            raise InvalidValue(f"--year-from {self.year_from} is after --year-to {self.year_to}")
        return FindFilters(
            mechanisms=[check_mechanism(m) for m in self.mechanisms],
            claims=[check_claim(c) for c in self.claims],
            stances=[check_stance(s) for s in self.stances],
            designs=[check_design(d) for d in self.designs],
            max_level=self.max_level,
            population=check_name("population", self.population, vocab.POPULATIONS)
            if self.population
            else None,
            condition=self.condition.strip() if self.condition and self.condition.strip() else None,
            year_from=self.year_from,
            year_to=self.year_to,
            tags=[normalize_tag(t) for t in self.tags if t.strip()],
            min_pedro=self.min_pedro,
            text=self.text,
            exclude_retracted=self.exclude_retracted,
            ids=self.ids,
        )


def fts_query(text_query: str) -> str:
    """An FTS5 MATCH expression from what a user typed: "quoted phrases" stay phrases, other words are
    each required (quoted, so FTS5 operators and punctuation in the input cannot cause a syntax error)."""
    parts: list[str] = []
    for phrase, word in re.findall(r'"([^"]*)"|(\S+)', text_query):
        if phrase:
            tokens = re.findall(r"\w+", phrase)
            if tokens:
                parts.append('"' + " ".join(tokens) + '"')
        else:
            parts.extend(f'"{t}"' for t in re.findall(r"\w+", word))
    if not parts:
        raise InvalidValue(f"--text {text_query!r} has no words to search for")
    return " ".join(parts)


def _escape_like(text_value: str) -> str:
    """A LIKE pattern that matches ``text_value`` literally (% and _ are not wildcards)."""
    return text_value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered_ids(session: Session, f: FindFilters, sort: str, limit: int | None = None) -> Select[Any]:
    stmt: Select[Any] = select(Study.id)
    conditions: list[Any] = []
    # --claim and --mechanism are separate conditions (AND), each met by some claim link; --stance applies
    # to each of them (or, alone, to any link): "--claim X --stance S" = the study's link to X points S.
    link_filters: list[tuple[Any, Any]] = []
    if f.claims:
        link_filters.append((Claim.name.in_(f.claims), None))
    if f.mechanisms:
        link_filters.append((Mechanism.name.in_(f.mechanisms), Mechanism))
    if f.stances and not link_filters:
        link_filters.append((None, None))
    for condition, join_mechanism in link_filters:
        link = select(StudyClaim.study_id).join(Claim, Claim.id == StudyClaim.claim_id)
        if join_mechanism is not None:
            link = link.join(Mechanism, Mechanism.id == Claim.mechanism_id)
        link_conditions: list[Any] = [StudyClaim.study_id == Study.id]
        if condition is not None:
            link_conditions.append(condition)
        if f.stances:
            link_conditions.append(StudyClaim.stance.in_(f.stances))
        conditions.append(exists(link.where(and_(*link_conditions))))
    if f.designs:
        conditions.append(Study.design.in_(f.designs))
    if f.max_level is not None:
        conditions.append(Study.level <= f.max_level)
    if f.population:
        conditions.append(Study.population == f.population)
    if f.condition:
        like = f"%{_escape_like(f.condition.lower())}%"
        conditions.append(
            or_(
                func.lower(Study.condition).like(like, escape="\\"),
                func.lower(Study.body_region).like(like, escape="\\"),
            )
        )
    if f.year_from is not None:
        conditions.append(Study.year >= f.year_from)
    if f.year_to is not None:
        conditions.append(Study.year <= f.year_to)
    for tag in f.tags:
        conditions.append(
            exists(select(StudyTag.study_id).where(StudyTag.study_id == Study.id, StudyTag.tag == tag))
        )
    if f.min_pedro is not None:
        conditions.append(Study.pedro >= f.min_pedro)
    if f.exclude_retracted:
        conditions.append(Study.status != "retracted")
    if f.ids is not None:
        conditions.append(Study.id.in_(f.ids))

    rank = None
    if f.text is not None:
        if session.get_bind().dialect.name == "sqlite":
            sql = "SELECT rowid AS id, bm25(studies_fts) AS rank FROM studies_fts WHERE studies_fts MATCH :m"
            params: dict[str, Any] = {"m": fts_query(f.text)}
            if sort == "relevance" and limit is not None and not conditions:
                # Nothing else narrows the matches: let FTS5 rank and cut them itself rather than joining
                # every match to studies first (halves `find --text X --limit 50` on 100k studies).
                sql += " ORDER BY rank, rowid LIMIT :fts_limit"
                params["fts_limit"] = limit
            fts = (
                text(sql)
                .bindparams(**params)
                .columns(column("id", Integer), column("rank", Float))
                .subquery("fts")
            )
            stmt = stmt.join(fts, fts.c.id == Study.id)
            rank = fts.c.rank
        else:  # PostgreSQL and others: a plain case-insensitive search until a tsvector index lands.
            for word in re.findall(r"\w+", f.text):
                like = f"%{word.lower()}%"
                conditions.append(
                    or_(
                        func.lower(Study.title).like(like),
                        func.lower(Study.abstract).like(like),
                        func.lower(Study.notes).like(like),
                    )
                )
    if conditions:
        stmt = stmt.where(and_(*conditions))

    if sort == "relevance" and rank is not None:
        order: list[Any] = [rank, Study.id]
    elif sort == "year":
        order = [Study.year.desc().nulls_last(), Study.id]
    elif sort == "pedro":
        order = [Study.pedro.desc().nulls_last(), Study.level.asc().nulls_last(), Study.id]
    elif sort == "title":
        order = [func.lower(Study.title), Study.id]
    else:  # level: strongest evidence first, then newest
        order = [Study.level.asc().nulls_last(), Study.year.desc().nulls_last(), Study.id]
    return stmt.order_by(*order)


def find_ids(
    session: Session, filters: FindFilters, *, sort: str | None = None, limit: int | None = None
) -> list[int]:
    """Ids of the studies matching ``filters``, in display order."""
    if sort is not None and sort not in SORTS:
        raise InvalidValue(f"unknown sort {sort!r}; valid: {', '.join(SORTS)}")
    f = filters.validated()
    chosen = sort or ("relevance" if f.text else "level")
    if chosen == "relevance" and not f.text:
        raise InvalidValue("--sort relevance needs --text")
    if limit is not None and limit < 1:
        raise InvalidValue(f"--limit must be at least 1, not {limit}")
    stmt = _filtered_ids(session, f, chosen, limit)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def find_studies(
    session: Session, filters: FindFilters, *, sort: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The matching studies as JSON rows, in display order."""
    return study_rows(session, find_ids(session, filters, sort=sort, limit=limit))


def iter_study_rows(session: Session, study_ids: Sequence[int], chunk: int = 500) -> Iterator[dict[str, Any]]:
    """Rows for many ids, loaded a chunk at a time (exports stream through this)."""
    for start in range(0, len(study_ids), chunk):
        yield from study_rows(session, study_ids[start : start + chunk])


def study_rows(session: Session, study_ids: Sequence[int]) -> list[dict[str, Any]]:
    """JSON rows for ``study_ids``, in that order, with authors, mechanisms, claims and tags."""
    if not study_ids:
        return []
    # Core table columns, not the ORM's attributes, and each result fetched whole: the same SQL in half
    # the time per row (an export reads several author, claim and tag rows per study).
    studies, authors, links, tags = (
        cast(Table, model.__table__) for model in (Study, Author, StudyClaim, StudyTag)
    )
    by_id: dict[int, dict[str, Any]] = {}
    columns = [studies.c[name] for name in COLUMN_FIELDS]
    for row in session.execute(select(*columns).where(studies.c.id.in_(study_ids))).all():
        record = dict(zip(COLUMN_FIELDS, row, strict=True))
        record.update(authors=[], mechanisms=[], claims=[], tags=[])
        by_id[record["id"]] = record
    a = authors.c
    for study_id, family, given, orcid, name in session.execute(
        select(a.study_id, a.family, a.given, a.orcid, a.name)
        .where(a.study_id.in_(study_ids))
        .order_by(a.study_id, a.position)
    ).all():
        by_id[study_id]["authors"].append(
            {"name": name} if name else {"family": family, "given": given, "orcid": orcid}
        )
    claims = {
        claim_id: (claim, mechanism)
        for claim_id, claim, mechanism in session.execute(
            select(Claim.id, Claim.name, Mechanism.name).join(Mechanism, Mechanism.id == Claim.mechanism_id)
        )
    }
    c = links.c
    for study_id, claim_id, stance, finding in session.execute(
        select(c.study_id, c.claim_id, c.stance, c.finding)
        .where(c.study_id.in_(study_ids))
        .order_by(c.study_id, c.claim_id)
    ).all():
        record = by_id[study_id]
        claim, mechanism = claims[claim_id]
        record["claims"].append(
            {"claim": claim, "mechanism": mechanism, "stance": stance, "finding": finding}
        )
        if mechanism not in record["mechanisms"]:
            record["mechanisms"].append(mechanism)
    t = tags.c
    for study_id, tag in session.execute(
        select(t.study_id, t.tag).where(t.study_id.in_(study_ids)).order_by(t.study_id, t.tag)
    ).all():
        by_id[study_id]["tags"].append(tag)
    order = {m.name: i for i, m in enumerate(vocab.MECHANISMS)}
    rows = []
    for study_id in study_ids:
        if study_id not in by_id:
            continue
        record = by_id[study_id]
        record["mechanisms"].sort(key=order.__getitem__)
        record["updates"] = record["updates"] or []
        rows.append({name: record[name] for name in ROW_FIELDS})
    return rows


def show_study(session: Session, ref: str) -> dict[str, Any]:
    """Every field of one study: the JSON row plus verification status and provenance."""
    study = resolve_ref(session, ref)
    row = study_rows(session, [study.id])[0]
    row.update(
        population_detail=study.population_detail,
        level_overridden=study.level_overridden,
        cited_by_practice_article=study.cited_by_practice_article,
        verification={
            "doi": study.doi_verification,
            "pmid": study.pmid_verification,
            "authors": study.authors_verification,
            "bibliographic": study.bibliographic_verification,
            "design": study.design_verification,
            "note": study.verification_note,
        },
        source=study.source,
        seed_key=study.seed_key,
        field_sources=study.field_sources or {},
        source_urls=study.source_urls or [],
        references_count=study.references_count,
        crossref_checked_at=study.crossref_checked_at.isoformat() if study.crossref_checked_at else None,
        created_at=study.created_at.isoformat(),
        updated_at=study.updated_at.isoformat(),
    )
    return row


# --- the honest picture: counts per claim and mechanism ------------------------------------------------


def claim_evidence(session: Session, mechanism: str | None = None) -> list[dict[str, Any]]:
    """Per claim: how many studies support / contradict / are mixed / show no effect, split by human vs
    animal (and other), and by OCEBM level."""
    stmt = (
        select(
            Mechanism.name,
            Claim.name,
            Claim.label,
            StudyClaim.stance,
            Study.population,
            Study.level,
            func.count(),
        )
        .select_from(Claim)
        .join(Mechanism, Mechanism.id == Claim.mechanism_id)
        .outerjoin(StudyClaim, StudyClaim.claim_id == Claim.id)
        .outerjoin(Study, Study.id == StudyClaim.study_id)
        .group_by(Mechanism.name, Claim.name, Claim.label, StudyClaim.stance, Study.population, Study.level)
    )
    if mechanism:
        stmt = stmt.where(Mechanism.name == check_mechanism(mechanism))
    claims: dict[str, dict[str, Any]] = {}
    for spec in vocab.CLAIMS:
        if mechanism and spec.mechanism != mechanism.strip().lower():
            continue
        claims[spec.name] = {
            "claim": spec.name,
            "mechanism": spec.mechanism,
            "label": spec.label,
            "studies": 0,
            **dict.fromkeys(vocab.STANCES, 0),
            "human": _stance_counts(),
            "animal": _stance_counts(),
            "other": _stance_counts(),
            "by_level": {str(level): _stance_counts() for level in range(1, 6)},
        }
    for _mech, claim, _label, stance, population, level, count in session.execute(stmt):
        if stance is None or claim not in claims:
            continue
        entry = claims[claim]
        entry["studies"] += count
        entry[stance] += count
        entry[population if population in ("human", "animal") else "other"][stance] += count
        if level is not None:
            entry["by_level"][str(level)][stance] += count
    return list(claims.values())


def _stance_counts() -> dict[str, int]:
    return dict.fromkeys(vocab.STANCES, 0)


def mechanism_evidence(session: Session) -> list[dict[str, Any]]:
    """Per mechanism: its description, number of studies bearing on it, and stance counts."""
    rows: dict[str, dict[str, Any]] = {
        m.name: {
            "mechanism": m.name,
            "label": m.label,
            "description": m.description,
            "studies": 0,
            **_stance_counts(),
            "human": 0,
            "animal": 0,
        }
        for m in vocab.MECHANISMS
    }
    stmt = (
        select(Mechanism.name, StudyClaim.study_id, StudyClaim.stance, Study.population)
        .join(Claim, Claim.mechanism_id == Mechanism.id)
        .join(StudyClaim, StudyClaim.claim_id == Claim.id)
        .join(Study, Study.id == StudyClaim.study_id)
    )
    stances_seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    populations: dict[int, str | None] = {}
    for mech, study_id, stance, population in session.execute(stmt):
        stances_seen[(mech, study_id)].add(stance)
        populations[study_id] = population
    for (mech, study_id), seen in stances_seen.items():
        # A study counts once per mechanism; with claim links pointing different ways it counts as mixed.
        overall = next(iter(seen)) if len(seen) == 1 else "mixed"
        row = rows[mech]
        row["studies"] += 1
        row[overall] += 1
        population = populations[study_id]
        if population in ("human", "animal"):
            row[population] += 1
    return list(rows.values())


def all_study_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Study.id).order_by(Study.id)))


def summary_rows(session: Session, by: str = "design") -> list[dict[str, Any]]:
    """Mechanism by design (or level, or population), a row per pair with the stance counts (pandas'
    pivot), as plain rows."""
    import pandas as pd

    columns = {"design": Study.design, "level": Study.level, "population": Study.population}
    if by not in columns:
        raise InvalidValue(f"unknown summary axis {by!r}; valid: {', '.join(columns)}")
    stmt = (
        select(
            Mechanism.name.label("mechanism"),
            columns[by].label(by),
            StudyClaim.stance.label("stance"),
            StudyClaim.study_id,
        )
        .join(Claim, Claim.mechanism_id == Mechanism.id)
        .join(StudyClaim, StudyClaim.claim_id == Claim.id)
        .join(Study, Study.id == StudyClaim.study_id)
    )
    # dtype=object: a level column with a gap must stay 4, not become 4.0.
    frame = pd.DataFrame(
        session.execute(stmt).all(), columns=["mechanism", by, "stance", "study_id"], dtype=object
    )
    if frame.empty:
        return []
    frame[by] = frame[by].map(lambda v: "unknown" if v is None else str(v))
    # As in `mechanisms`: a study counts once per mechanism, as mixed when its links point different ways.
    frame = (
        frame.groupby(["mechanism", by, "study_id"])["stance"]
        .agg(lambda s: s.iloc[0] if s.nunique() == 1 else "mixed")
        .reset_index()
    )
    pivot = frame.pivot_table(
        index=["mechanism", by], columns="stance", values="study_id", aggfunc="count", fill_value=0
    )
    for stance in vocab.STANCES:
        if stance not in pivot.columns:
            pivot[stance] = 0
    pivot = pivot[list(vocab.STANCES)]
    pivot["total"] = pivot.sum(axis=1)
    pivot.columns.name = None
    rows: list[dict[str, Any]] = pivot.reset_index().to_dict(orient="records")
    return rows
