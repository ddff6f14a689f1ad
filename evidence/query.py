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

from sqlalchemy import Float, Integer, Select, Table, and_, column, exists, false, func, or_, select, text
from sqlalchemy.orm import Session

from evidence import vocab
from evidence.errors import InvalidValue, quoted
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
MAX_LIMIT = 2**63 - 1  # the largest LIMIT both SQLite and PostgreSQL (bigint) take


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
        if self.text is not None:
            parse_search(self.text)  # InvalidValue when it has no words
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


# --- full-text search ----------------------------------------------------------------------------------
#
# `--text` takes web search syntax on both backends: words are all required, a "quoted phrase" is one
# term, `OR` between terms offers alternatives (it binds loosest: `a b OR c` is (a and b) or c, as in
# PostgreSQL's websearch_to_tsquery), and a leading `-` excludes a term. The text is parsed here, once,
# and rendered for each backend (an FTS5 MATCH expression on SQLite, a websearch_to_tsquery string made
# only of quoted words on PostgreSQL), so it means the same on both and no input can be a syntax error.
# https://www.postgresql.org/docs/current/textsearch-controls.html#TEXTSEARCH-PARSING-QUERIES
# https://www.sqlite.org/fts5.html#full_text_query_syntax

# PostgreSQL's English stop words (tsearch_data/english.stop): its search column leaves them out, so a
# search leaves them out on SQLite too, and "the" finds the same studies (none) on both.
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
    hers herself it its itself they them their theirs themselves what which who whom this that these those
    am is are was were be been being have has had having do does did doing a an the and but if or because
    as until while of at by for with about against between into through during before after above below
    to from up down in out on off over under again further then once here there when where why how all
    any both each few more most other some such no nor not only own same so than too very s t can will
    just don should now""".split()  # noqa: SIM905
)
_CHUNK = re.compile(r'(-*)"([^"]*)"?|[^\s"]+')  # a "phrase" (perhaps unclosed), or a run without quotes
_DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class SearchTerm:
    """One term of a search: a word or a phrase (its words in order), or with `-`, a term to exclude."""

    words: tuple[str, ...]
    negated: bool = False


def parse_search(text_query: str) -> list[list[SearchTerm]]:
    """The alternatives (`OR`) of a search, each a list of terms a study must all have (or, negated, must
    not have). A run like `foo-bar` is a phrase; stop words are left out, at a phrase's ends too. An
    alternative with nothing but excluded terms matches nothing, so `[]` means "no study matches".
    Raises InvalidValue when the text has no words at all (only punctuation or operators)."""
    alternatives: list[list[SearchTerm]] = [[]]
    has_words = False
    for match in _CHUNK.finditer(text_query):
        chunk = match.group(0)
        if chunk == "OR":
            alternatives.append([])
            continue
        if match.group(2) is not None:
            negated, words = bool(match.group(1)), _words(match.group(2))
        else:
            negated, words = chunk.startswith("-"), _words(chunk)
        has_words = has_words or bool(words)
        lowered = [w.lower() for w in words]
        while lowered and lowered[0] in STOP_WORDS:
            lowered.pop(0)
        while lowered and lowered[-1] in STOP_WORDS:
            lowered.pop()
        if lowered:
            alternatives[-1].append(SearchTerm(tuple(lowered), negated))
    if not has_words:
        raise InvalidValue(f"--text {quoted(text_query)} has no words to search for")
    return [terms for terms in alternatives if any(not term.negated for term in terms)]


def _words(text_value: str) -> list[str]:
    """The words of ``text_value``: runs of letters and ASCII digits. Both tokenizers take these as words;
    other characters (superscripts, other scripts' digits, marks) one of them might drop are separators,
    so a term can never vanish on one backend only."""
    return "".join(ch if ch.isalpha() or ch in _DIGITS else " " for ch in text_value).split()


def fts_query(alternatives: Sequence[Sequence[SearchTerm]]) -> str:
    """The FTS5 MATCH expression of a parsed search: each term a quoted phrase (so no word is taken as an
    FTS5 operator), `-` as FTS5's binary NOT after the required terms."""
    rendered = []
    for terms in alternatives:
        required = " AND ".join(_phrase(t) for t in terms if not t.negated)
        excluded = " OR ".join(_phrase(t) for t in terms if t.negated)
        rendered.append(f"({required}) NOT ({excluded})" if excluded else f"({required})")
    return " OR ".join(rendered)


def websearch_query(alternatives: Sequence[Sequence[SearchTerm]]) -> str:
    """The same search as text for PostgreSQL's websearch_to_tsquery: quoted words, `-` and `or` only."""
    return " or ".join(
        " ".join(("-" if t.negated else "") + _phrase(t) for t in terms) for terms in alternatives
    )


def _phrase(term: SearchTerm) -> str:
    return '"' + " ".join(term.words) + '"'


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

    score = None
    if f.text is not None:
        alternatives = parse_search(f.text)
        if not alternatives:
            conditions.append(false())
        else:
            # A score where higher is better on both: FTS5's bm25 is lower-is-better, so it is negated.
            if session.get_bind().dialect.name == "sqlite":
                sql = (
                    "SELECT rowid AS id, -bm25(studies_fts) AS score FROM studies_fts "
                    "WHERE studies_fts MATCH :q"
                )
                query = fts_query(alternatives)
            else:  # PostgreSQL: the generated tsvector column of migration 0001, with its GIN index
                sql = (
                    "SELECT studies.id AS id, ts_rank_cd(studies.search, query) AS score "
                    "FROM studies, websearch_to_tsquery('english', :q) AS query WHERE studies.search @@ query"
                )
                query = websearch_query(alternatives)
            params: dict[str, Any] = {"q": query}
            if sort == "relevance" and limit is not None and not conditions:
                # Nothing else narrows the matches: let the search rank and cut them itself rather than
                # joining every match to studies first (halves `find --text X --limit 50` on 100k studies).
                sql += " ORDER BY score DESC, id LIMIT :search_limit"
                params["search_limit"] = limit
            matches = (
                text(sql)
                .bindparams(**params)
                .columns(column("id", Integer), column("score", Float))
                .subquery("search")
            )
            stmt = stmt.join(matches, matches.c.id == Study.id)
            score = matches.c.score
    if conditions:
        stmt = stmt.where(and_(*conditions))

    if sort == "relevance" and score is not None:
        order: list[Any] = [score.desc(), Study.id]
    elif sort == "year":
        order = [Study.year.desc().nulls_last(), Study.id]
    elif sort == "pedro":
        order = [Study.pedro.desc().nulls_last(), Study.level.asc().nulls_last(), Study.id]
    elif sort == "title":
        title: Any = func.lower(Study.title)
        if session.get_bind().dialect.name == "postgresql":
            # Code point order, as SQLite's: PostgreSQL would use the database's collation (a locale's,
            # which may skip punctuation and spaces), so the same library would sort otherwise there.
            title = title.collate("C")
        order = [title, Study.id]
    else:  # level: strongest evidence first, then newest
        order = [Study.level.asc().nulls_last(), Study.year.desc().nulls_last(), Study.id]
    return stmt.order_by(*order)


def find_ids(
    session: Session, filters: FindFilters, *, sort: str | None = None, limit: int | None = None
) -> list[int]:
    """Ids of the studies matching ``filters``, in display order."""
    if sort is not None and sort not in SORTS:
        raise InvalidValue(f"unknown sort {quoted(sort)}; valid: {', '.join(SORTS)}")
    f = filters.validated()
    chosen = sort or ("relevance" if f.text else "level")
    if chosen == "relevance" and not f.text:
        raise InvalidValue("--sort relevance needs --text")
    if limit is not None and limit < 1:
        raise InvalidValue(f"--limit must be at least 1, not {limit}")
    if limit is not None and limit > MAX_LIMIT:
        limit = None  # more than any library holds: every match (a 64-bit LIMIT cannot say more)
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
    for study_id, tag in session.execute(select(t.study_id, t.tag).where(t.study_id.in_(study_ids))).all():
        by_id[study_id]["tags"].append(tag)
    order = {m.name: i for i, m in enumerate(vocab.MECHANISMS)}
    rows = []
    for study_id in study_ids:
        if study_id not in by_id:
            continue
        record = by_id[study_id]
        record["mechanisms"].sort(key=order.__getitem__)
        # Sorted here, by code point (SQLite's order): PostgreSQL's ORDER BY follows the database's
        # collation, which need not be code point order ("design:-survey" beside "design:survey").
        record["tags"].sort()
        record["updates"] = record["updates"] or []
        rows.append({name: record[name] for name in ROW_FIELDS})
    return rows


VERIFIED_FIELDS: tuple[str, ...] = ("doi", "pmid", "authors", "bibliographic", "design")


def verification_states(session: Session, study_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """study id -> how well each of its facts is known (`vocab.VERIFICATION`), as `show` reports them."""
    columns = [getattr(Study, f"{name}_verification") for name in VERIFIED_FIELDS]
    states: dict[int, dict[str, str]] = {}
    for chunk_start in range(0, len(study_ids), 500):
        chunk = list(study_ids[chunk_start : chunk_start + 500])
        for study_id, *values in session.execute(select(Study.id, *columns).where(Study.id.in_(chunk))):
            states[study_id] = dict(zip(VERIFIED_FIELDS, values, strict=True))
    return states


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
    """Per claim: how many studies support / contradict / are mixed / show no effect, split by population
    (human, animal, and "unknown" for a study with none recorded, so the three add up to the count), and
    by OCEBM level."""
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
            UNKNOWN_POPULATION: _stance_counts(),
            "by_level": {str(level): _stance_counts() for level in range(1, 6)},
        }
    for _mech, claim, _label, stance, population, level, count in session.execute(stmt):
        if stance is None or claim not in claims:
            continue
        entry = claims[claim]
        entry["studies"] += count
        entry[stance] += count
        entry[population_bucket(population)][stance] += count
        if level is not None:
            entry["by_level"][str(level)][stance] += count
    return list(claims.values())


def _stance_counts() -> dict[str, int]:
    return dict.fromkeys(vocab.STANCES, 0)


# The population bucket of a study with none recorded (or one outside the vocabulary): counted, and named,
# so that human + animal + unknown is the total.
UNKNOWN_POPULATION = "unknown"
POPULATION_BUCKETS: tuple[str, ...] = (*vocab.POPULATIONS, UNKNOWN_POPULATION)


def population_bucket(population: str | None) -> str:
    return population if population in vocab.POPULATIONS else UNKNOWN_POPULATION


def mechanism_evidence(session: Session) -> list[dict[str, Any]]:
    """Per mechanism: its description, number of studies bearing on it, stance counts, and the studies
    by population (human, animal, unknown: they add up to ``studies``)."""
    rows: dict[str, dict[str, Any]] = {
        m.name: {
            "mechanism": m.name,
            "label": m.label,
            "description": m.description,
            "studies": 0,
            **_stance_counts(),
            **dict.fromkeys(POPULATION_BUCKETS, 0),
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
        overall = vocab.overall_stance(seen)
        row = rows[mech]
        row["studies"] += 1
        row[overall] += 1
        row[population_bucket(populations[study_id])] += 1
    return list(rows.values())


def all_study_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Study.id).order_by(Study.id)))


def summary_rows(session: Session, by: str = "design") -> list[dict[str, Any]]:
    """Mechanism by design (or level, or population), a row per pair with the stance counts (pandas'
    pivot), as plain rows."""
    import pandas as pd

    columns = {"design": Study.design, "level": Study.level, "population": Study.population}
    if by not in columns:
        raise InvalidValue(f"unknown summary axis {quoted(by)}; valid: {', '.join(columns)}")
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
    frame[by] = frame[by].map(lambda v: UNKNOWN_POPULATION if v is None else str(v))
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
