"""Copying a whole library to another database (SQLite ⇄ PostgreSQL, SQLite → SQLite): `evidence db copy`.

Every table of the models is copied row for row, ids and citekeys kept, in foreign-key order, one
executemany per chunk of rows read in primary-key order. The source is read in one transaction (a
consistent snapshot) and the target written in one, so a failure anywhere leaves the target as it was.

A target may hold only what opening a database makes (the mechanism and claim vocabulary) and meta rows:
those are replaced by the source's, so that the claim ids the links point at match. A library in use is
replaced only when asked (``replace=True``, the command's ``--replace``). Afterwards the target's id
counters are moved past the source's (PostgreSQL sequences, SQLite's ``sqlite_sequence`` of the
AUTOINCREMENT studies table), so a new study never gets an id the source had handed out. SQLite's
full-text index follows the copied rows through the triggers of migration 0001; PostgreSQL computes its
``studies.search`` column itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Table, delete, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from evidence.errors import DatabaseError, InvalidValue
from evidence.store.db import Database, first_line, hide_passwords
from evidence.store.models import Base

log = logging.getLogger(__name__)

# Rows per executemany: large enough that 10,000 studies copy in seconds, small enough to stream.
CHUNK_ROWS = 1000
# What a new database holds before anyone uses it: open_database's vocabulary, open_library's meta rows.
SETUP_TABLES = frozenset({"mechanisms", "claims", "meta"})


@dataclass(frozen=True)
class CopyReport:
    """What `copy_library` copied: the URLs (passwords masked) and the rows per table, in copy order."""

    source: str
    target: str
    rows: tuple[tuple[str, int], ...]

    def count(self, table: str) -> int:
        return dict(self.rows)[table]

    def summary(self) -> str:
        """``49 studies, 120 authors, ...``: studies first, then the other tables in copy order."""
        ordered = sorted(self.rows, key=lambda pair: pair[0] != "studies")
        return ", ".join(f"{count} {table}" for table, count in ordered)


def copy_library(source: Database, target: Database, *, replace: bool = False) -> CopyReport:
    """Copy every row of ``source`` into ``target`` in one transaction and report the rows per table.

    Both are open (migrated to head). A target holding a library in use is refused (`InvalidValue`)
    unless ``replace``, which deletes its rows first; the same database as source and target is refused.
    A database failure becomes `DatabaseError`, the target unchanged.
    """
    source_name, target_name = source.display, target.display
    tables = Base.metadata.sorted_tables
    copied: list[tuple[str, int]] = []
    step = "comparing the two databases"
    try:
        identity = _identity(source)
        if identity is not None and identity == _identity(target):
            raise InvalidValue(
                f"{source_name} is both the source and the target; copy a library to another database"
            )
        step = "checking the target"
        # The target's transaction is the outer one: it commits last, after the source was read whole.
        with target.transaction() as writer, source.transaction() as reader:
            if target.dialect == "postgresql":
                _lock_tables(writer, tables)
            if source.dialect == "postgresql":
                reader.execute(text("SET TRANSACTION READ ONLY"))
            in_use = _rows_in_use(writer, tables)
            if in_use and not replace:
                raise InvalidValue(
                    f"{target_name} already holds a library ({_describe(in_use)}); "
                    "pass --replace to replace it with the copy"
                )
            step = "emptying the target"
            for table in reversed(tables):  # children first
                writer.execute(delete(table))
            for table in tables:
                step = f"copying {table.name}"
                copied.append((table.name, _copy_rows(reader, writer, table)))
                log.info("copied %d rows of %s", copied[-1][1], table.name)
            step = "moving the id counters"
            _advance_counters(reader, writer, tables, source.dialect, target.dialect)
            step = "committing"
    except SQLAlchemyError as exc:
        reason = hide_passwords(first_line(exc), source.engine.url, target.engine.url)
        raise DatabaseError(
            f"copy from {source_name} to {target_name} failed while {step}, the target is unchanged: {reason}"
        ) from exc
    return CopyReport(source_name, target_name, tuple(copied))


def _identity(database: Database) -> tuple[Any, ...] | None:
    """What makes two handles the same database: a SQLite file (however its path is spelt), or a
    PostgreSQL server instance (its start time) and database (its oid), whatever host name reached it.
    None for an in-memory database (each is its own)."""
    url = database.engine.url
    if database.dialect == "sqlite":
        if url.database in (None, "", ":memory:"):
            return None
        path = Path(url.database).resolve()
        if path.exists():
            stat = path.stat()
            return ("sqlite", stat.st_dev, stat.st_ino)
        return ("sqlite", str(path))
    with database.engine.connect() as conn:
        row = conn.execute(
            text("SELECT pg_postmaster_start_time(), oid FROM pg_database WHERE datname = current_database()")
        ).one()
    return (database.dialect, *row)


def _lock_tables(writer: Session, tables: list[Table]) -> None:
    # Other clients may keep reading the old library but not write it until the copy commits (a study
    # added meanwhile would take an id the copy is about to insert). Taken before the first query, so
    # the REPEATABLE READ snapshot starts after any write that was under way.
    names = ", ".join(writer.get_bind().dialect.identifier_preparer.quote(t.name) for t in tables)
    writer.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))


def _rows_in_use(session: Session, tables: list[Table]) -> dict[str, int]:
    """The rows of a library in use: every table but the setup ones, studies first."""
    counts = {
        table.name: session.scalar(select(func.count()).select_from(table)) or 0
        for table in sorted(tables, key=lambda t: t.name != "studies")
        if table.name not in SETUP_TABLES
    }
    return {name: count for name, count in counts.items() if count}


def _describe(in_use: dict[str, int]) -> str:
    studies = in_use.get("studies", 0)
    if studies:
        return f"{studies} {'study' if studies == 1 else 'studies'}"
    return "0 studies but " + ", ".join(f"{count} {name} rows" for name, count in in_use.items())


def _copy_rows(reader: Session, writer: Session, table: Table) -> int:
    """Stream ``table`` from the reader to the writer a chunk at a time; returns the rows copied.

    Values go through the column types both ways (JSON, booleans, `UTCDateTime`), so each database
    stores them its own way and they read back equal."""
    statement = select(table).order_by(*table.primary_key.columns)
    result = reader.execute(statement, execution_options={"yield_per": CHUNK_ROWS})
    count = 0
    for chunk in result.partitions():
        rows = [row._asdict() for row in chunk]
        _insert_chunk(writer, table, rows)
        count += len(rows)
    return count


def _insert_chunk(writer: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    writer.execute(insert(table), rows)


def _advance_counters(
    reader: Session, writer: Session, tables: list[Table], source_dialect: str, target_dialect: str
) -> None:
    """Set each id counter of the target past the ids the source handed out (its rows' and any it
    removed: a removed study's id is never given again, see `models.Study`)."""
    for table in tables:
        column = table.autoincrement_column
        if column is None:
            continue
        mark = _high_water(reader, table, column, source_dialect)
        if target_dialect == "postgresql":
            sequence = _pg_sequence(writer, table, column)
            if sequence is None:
                continue
            # setval is not undone by a rollback: a counter only ever moves up (past the target's own
            # last id too), so a copy that fails to commit cannot make the old library reuse an id.
            top = max(mark, _high_water(writer, table, column, target_dialect))
            writer.execute(
                text("SELECT setval(CAST(:sequence AS regclass), :value, :called)"),
                {"sequence": sequence, "value": max(top, 1), "called": top > 0},
            )
        elif target_dialect == "sqlite" and table.dialect_options["sqlite"]["autoincrement"]:
            # SQLite raised it to the largest id inserted; a replaced library may have left it higher,
            # and the source may have removed studies above its largest id: make it the source's.
            largest = writer.scalar(select(func.max(column))) or 0
            values = {"table": table.name, "seq": max(mark, largest)}
            done = writer.execute(text("UPDATE sqlite_sequence SET seq = :seq WHERE name = :table"), values)
            if not getattr(done, "rowcount", 0):
                writer.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES (:table, :seq)"), values)


def _high_water(session: Session, table: Table, column: Column[Any], dialect: str) -> int:
    """The largest id the database ever handed out in ``table``, as far as it remembers: its rows'
    largest, or its counter's (PostgreSQL's sequence, SQLite's sqlite_sequence) if that is higher."""
    largest = session.scalar(select(func.max(column))) or 0
    counter = 0
    if dialect == "postgresql":
        sequence = _pg_sequence(session, table, column)
        if sequence is not None:
            last_value, is_called = session.execute(
                text(f"SELECT last_value, is_called FROM {sequence}")
            ).one()
            counter = last_value if is_called else last_value - 1
    elif table.dialect_options["sqlite"]["autoincrement"]:
        seq = session.scalar(
            text("SELECT seq FROM sqlite_sequence WHERE name = :table"), {"table": table.name}
        )
        counter = seq or 0
    return max(int(largest), int(counter))


def _pg_sequence(session: Session, table: Table, column: Column[Any]) -> str | None:
    """The (quoted, schema-qualified) name of the sequence behind a serial or identity column."""
    name = session.scalar(
        text("SELECT pg_get_serial_sequence(:table, :column)"), {"table": table.name, "column": column.name}
    )
    return None if name is None else str(name)
