"""Bulk insertion of many study dicts (imports, benchmarks): Core executemany, no ORM object per row.

Takes the project's study dict shape (see `evidence.schema`); values must already be
validated (`records.normalize_fields` does that per row). Citekeys are made unique against the library
and the batch with one look-up, not one per row. The caller owns the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import JSON, Dialect, Table, func, insert, select, text
from sqlalchemy.orm import Session

from evidence import vocab
from evidence.naming import CitekeyAllocator, key_name
from evidence.schema import STUDY_FIELDS
from evidence.sequences import chunks
from evidence.store.models import Author, Claim, Study, StudyClaim, StudyTag, utcnow

FTS_TRIGGER = "studies_fts_ai"  # keeps studies_fts in step with inserts (migration 0001)
STUDY_COLUMNS = (*STUDY_FIELDS, "status", "updates", "citations")

_STUDY_COLUMN_SET = frozenset(STUDY_COLUMNS)


def library_allocator(session: Session) -> CitekeyAllocator:
    """A citekey allocator that knows every citekey of the library (one query)."""
    return CitekeyAllocator(session.scalars(select(Study.citekey)))


def _next_study_id(session: Session) -> int:
    """One more than the largest study id ever handed out in this SQLite library."""
    largest = session.scalar(select(func.max(Study.id))) or 0
    used = session.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'studies'")).scalar()
    return max(largest, int(used or 0)) + 1


def insert_studies(
    session: Session,
    rows: Iterable[Mapping[str, Any]],
    *,
    source: str = "import",
    chunk_size: int = 2000,
    allocator: CitekeyAllocator | None = None,
) -> list[int]:
    """Insert studies with their authors, tags and claim links; returns the new ids in input order."""
    if session.get_bind().dialect.name == "sqlite":
        with _fts_indexed_after(session) as new_ids:
            _insert(session, rows, source, chunk_size, allocator, new_ids)
        return new_ids
    new_ids = []
    _insert(session, rows, source, chunk_size, allocator, new_ids)
    return new_ids


@contextmanager
def _fts_indexed_after(session: Session) -> Iterator[list[int]]:
    """SQLite: full-text index the new studies with one INSERT ... SELECT after they are all in, rather
    than through the per-row trigger, which indexes one row per statement.
    The trigger is dropped and recreated inside the caller's transaction, so a rollback restores it."""
    new_ids: list[int] = []
    trigger = session.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :name"), {"name": FTS_TRIGGER}
    ).scalar()
    if trigger is None:  # a schema without full-text search
        yield new_ids
        return
    session.execute(text(f"DROP TRIGGER {FTS_TRIGGER}"))
    try:
        yield new_ids
    finally:
        if new_ids:
            session.execute(
                text(
                    "INSERT INTO studies_fts(rowid, title, abstract, notes) "
                    "SELECT id, title, abstract, notes FROM studies WHERE id BETWEEN :first AND :last"
                ),
                {"first": min(new_ids), "last": max(new_ids)},
            )
        session.execute(text(trigger))


def _insert(
    session: Session,
    rows: Iterable[Mapping[str, Any]],
    source: str,
    chunk_size: int,
    allocator: CitekeyAllocator | None,
    new_ids: list[int],
) -> None:
    claim_ids = {name: id_ for id_, name in session.execute(select(Claim.id, Claim.name))}
    citekeys = allocator or library_allocator(session)
    now = utcnow()
    for chunk in chunks(rows, chunk_size):
        study_values = []
        for row in chunk:
            values = {name: row.get(name) for name in STUDY_COLUMNS}
            authors = row.get("authors") or []
            first = authors[0] if authors else {}
            values["citekey"] = citekeys.allocate(
                row.get("citekey"), key_name(first), row.get("year"), row.get("title")
            )
            level_given = row.get("level") is not None
            if not level_given and row.get("design"):
                values["level"] = vocab.level_for_design(row["design"])
            values["level_overridden"] = level_given
            values["status"] = values["status"] or "ok"
            values["updates"] = values["updates"] or []
            values["source"] = source
            values["field_sources"] = {
                k: source for k, v in values.items() if v is not None and k in _STUDY_COLUMN_SET
            }
            values["created_at"] = now
            values["updated_at"] = now
            study_values.append(values)
        # Core inserts on the tables (not the ORM entities): one executemany per table and chunk. The ORM
        # bulk path splits a batch wherever the set of non-null keys changes, i.e. nearly per row.
        studies = Study.__table__
        assert isinstance(studies, Table)
        if session.get_bind().dialect.name == "sqlite":
            # SQLAlchemy cannot batch INSERT ... RETURNING with sort_by_parameter_order on SQLite and runs
            # one statement per row (most of a large import's time). The ids are handed out here instead,
            # after the largest ever used (AUTOINCREMENT never reuses one), and the rows go in with one
            # plain executemany; a concurrent writer would make this fail on the primary key, never mix up.
            first = _next_study_id(session)
            ids = list(range(first, first + len(study_values)))
            for study_id, values in zip(ids, study_values, strict=True):
                values["id"] = study_id
            _executemany(session, studies, study_values)
        elif session.get_bind().dialect.name == "postgresql":
            # COPY wants the ids beforehand too: one round trip reserves them from the sequence.
            ids = list(
                session.scalars(
                    text(
                        "SELECT nextval(pg_get_serial_sequence('studies', 'id')) FROM generate_series(1, :n)"
                    ),
                    {"n": len(study_values)},
                )
            )
            for study_id, values in zip(ids, study_values, strict=True):
                values["id"] = study_id
            _executemany(session, studies, study_values)
        else:
            ids = list(
                session.scalars(
                    insert(studies).returning(studies.c.id, sort_by_parameter_order=True), study_values
                )
            )
        authors_rows, tag_rows, link_rows = [], [], []
        for study_id, row in zip(ids, chunk, strict=True):
            for position, author in enumerate(row.get("authors") or []):
                authors_rows.append(
                    {
                        "study_id": study_id,
                        "position": position,
                        "family": author.get("family"),
                        "given": author.get("given"),
                        "orcid": author.get("orcid"),
                        "name": None if author.get("family") else author.get("name"),
                    }
                )
            for tag in dict.fromkeys(row.get("tags") or []):
                tag_rows.append({"study_id": study_id, "tag": tag})
            seen: set[int] = set()
            for link in row.get("claims") or []:
                claim_id = claim_ids[link["claim"]]
                if claim_id in seen:
                    continue
                seen.add(claim_id)
                link_rows.append(
                    {
                        "study_id": study_id,
                        "claim_id": claim_id,
                        "stance": link["stance"],
                        "finding": link.get("finding"),
                    }
                )
        for model, values_list in ((Author, authors_rows), (StudyTag, tag_rows), (StudyClaim, link_rows)):
            if values_list:
                _executemany(session, cast(Table, model.__table__), values_list)
        new_ids.extend(ids)


def _executemany(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT the rows (all with the same keys) with one DBAPI executemany.

    On SQLite this skips SQLAlchemy's per-row parameter handling (a large share of the insert time): the
    column types' own bind processors (JSON, dates, booleans) are applied to the columns
    that have one, and columns left out get their server defaults (every defaulted column has one).
    On PostgreSQL the rows go in through psycopg's COPY: one stream per table and chunk rather than
    SQLAlchemy's multi-row INSERTs (statements of 30,000 parameters that psycopg parses in Python, about
    a third of a large import) or one pipelined statement per row. Other databases take the ordinary
    Core executemany.
    """
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        _copy(session, table, rows)
        return
    if dialect.name != "sqlite":
        session.execute(insert(table), rows)
        return
    names = list(rows[0])
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' * len(names))})"
    )
    params = [tuple(values) for values in _bound_values(table, rows, dialect)]
    session.connection().exec_driver_sql(sql, params)


def _copy(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY the rows (all with the same keys) into ``table`` on the session's connection, in
    its transaction; values pass through the column types' bind processors first, as in an INSERT."""
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    driver = session.connection().connection.driver_connection
    assert driver is not None
    columns = ", ".join(quote(n) for n in rows[0])
    with driver.cursor() as cursor, cursor.copy(f"COPY {quote(table.name)} ({columns}) FROM STDIN") as copy:
        for values in _bound_values(table, rows, dialect):
            copy.write_row(values)


def _bound_values(table: Table, rows: list[dict[str, Any]], dialect: Dialect) -> Iterator[list[Any]]:
    """Each row's values (in the order of the first row's keys) as the driver takes them: through the
    column types' bind processors (JSON, dates, booleans); for COPY on PostgreSQL, JSON as its text
    (psycopg adapts a JSON parameter of an INSERT itself, not a COPY value)."""
    names = list(rows[0])
    copying = dialect.name == "postgresql"
    processors = []
    for index, name in enumerate(names):
        column_type = table.c[name].type
        if copying and isinstance(column_type, JSON):
            processors.append((index, _json_text))
        elif (processor := column_type.bind_processor(dialect)) is not None:
            processors.append((index, processor))
    get = itemgetter(*names)
    for row in rows:
        values = list(get(row)) if len(names) > 1 else [get(row)]
        for index, processor in processors:
            values[index] = processor(values[index])
        yield values


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
