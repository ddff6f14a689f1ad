"""Keeping a library sound: backups (`evidence db backup`, and the one `db upgrade` takes before it
migrates) and the integrity check (`evidence db check`).

A backup is one self-contained SQLite file, written under a temporary name and renamed into place, so it
is whole or absent. A SQLite library is copied with SQLite's online backup API (other clients may go on
reading and writing; the copy is one consistent snapshot); a PostgreSQL library through `db copy` into a
new SQLite file (`evidence.library.backup_library`, which owns that path).

The check reads; it never repairs. Each problem is one line naming the table and row.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from evidence import vocab
from evidence.errors import InvalidValue
from evidence.schema import CONTROL_CHARACTERS, TEXT_LIMITS
from evidence.store.db import HEAD_REVISION, Database, current_revision
from evidence.store.models import Study


def write_whole(target: Path, fill: Callable[[Path], None]) -> Path:
    """Run ``fill(partial)`` to make a file beside ``target``, then rename it to ``target``: the file is
    whole or absent. An existing ``target`` is refused (a backup never overwrites one)."""
    target = target.expanduser()
    if target.exists():
        raise InvalidValue(f"{target} exists already; give a new file name for the backup")
    if not target.parent.is_dir():
        raise InvalidValue(f"cannot write {target}: folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        fill(partial)
        partial.replace(target)
    finally:
        for leftover in (partial, Path(f"{partial}-journal"), Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            leftover.unlink(missing_ok=True)
    return target


def backup_sqlite(database: Database, target: Path) -> Path:
    """Copy the SQLite library of ``database`` to the new file ``target`` with SQLite's online backup
    API: one consistent snapshot, while other clients go on working."""
    if database.dialect != "sqlite":
        raise InvalidValue(f"{database.display} is not a SQLite library")
    with database.engine.connect() as conn:
        source = conn.connection.dbapi_connection
        assert isinstance(source, sqlite3.Connection)
        return _backup(source, target)


def backup_sqlite_file(path: Path, target: Path) -> Path:
    """Copy the SQLite file ``path`` to the new file ``target`` through a connection of its own. What
    `open_database` does before it migrates, while its setup transaction holds the write lock: the backup
    API cannot read through a connection that is writing, and a second one reads what is committed,
    which nobody can change while the lock is held."""
    with closing(sqlite3.connect(path)) as source:
        return _backup(source, target)


def _backup(source: sqlite3.Connection, target: Path) -> Path:
    def fill(partial: Path) -> None:
        with closing(sqlite3.connect(partial)) as destination:
            source.backup(destination)
            destination.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it

    return write_whole(target, fill)


# --- the check ----------------------------------------------------------------------------------------

# Rows whose parent is missing (possible only if foreign keys were ever off): what they are, the table,
# what names a row, its foreign key and the parent table it points at.
_ORPHANS = (
    ("author of no study", "authors", "'author ' || x.id", "study_id", "studies"),
    ("tag of no study", "study_tags", "x.tag || ' of study ' || x.study_id", "study_id", "studies"),
    ("claim link of no study", "study_claims", "'study ' || x.study_id", "study_id", "studies"),
    ("claim link to no claim", "study_claims", "'study ' || x.study_id", "claim_id", "claims"),
    ("claim of no mechanism", "claims", "x.name", "mechanism_id", "mechanisms"),
)


def check_library(session: Session) -> list[str]:
    """Every problem found in the library, one line each (none: the library is sound): SQLite's
    integrity and foreign-key checks, the full-text index against the studies, the schema revision,
    claims, mechanisms and designs against the vocabulary, orphan authors, tags and links,
    and text no import or edit would let in now (NUL and control characters, values past their limit)."""
    problems: list[str] = []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        problems += _sqlite_checks(session)
    revision = current_revision(session.connection())
    if revision != HEAD_REVISION:
        problems.append(f"schema: revision {revision}, expected {HEAD_REVISION} (run evidence db upgrade)")
    problems += _vocabulary_checks(session)
    for what, table, label, key, parent in _ORPHANS:
        orphans = text(
            f"SELECT {label} FROM {table} x LEFT JOIN {parent} p ON p.id = x.{key} WHERE p.id IS NULL"
        )
        problems += [f"{what}: {row[0]}" for row in session.execute(orphans)]
    problems += _text_checks(session)
    return problems


def _sqlite_checks(session: Session) -> list[str]:
    found: list[str] = []
    integrity = [row[0] for row in session.execute(text("PRAGMA integrity_check"))]
    if integrity != ["ok"]:
        found += [f"integrity: {line}" for line in integrity]
    for table, rowid, parent, _fk in session.execute(text("PRAGMA foreign_key_check")):
        found.append(f"foreign key: {table} row {rowid} points at a missing {parent} row")
    try:
        # FTS5's own check: the index holds exactly what the studies table (its content) says.
        with session.begin_nested():
            session.execute(text("INSERT INTO studies_fts(studies_fts, rank) VALUES('integrity-check', 1)"))
    except Exception as exc:  # sqlalchemy's OperationalError: "database disk image is malformed"
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        found.append(f"full-text index: out of step with the studies ({reason}); rebuild it")
    return found


def _vocabulary_checks(session: Session) -> list[str]:
    found: list[str] = []
    mechanisms = {name for (name,) in session.execute(text("SELECT name FROM mechanisms"))}
    for name in sorted(mechanisms - {m.name for m in vocab.MECHANISMS}):
        found.append(f"vocabulary: mechanism {name!r} is not one this version knows")
    known = {c.name: c.mechanism for c in vocab.CLAIMS}
    for name, mechanism in session.execute(
        text("SELECT c.name, m.name FROM claims c JOIN mechanisms m ON m.id = c.mechanism_id ORDER BY c.name")
    ):
        if name not in known:
            found.append(f"vocabulary: claim {name!r} is not one this version knows")
        elif known[name] != mechanism:
            found.append(
                f"vocabulary: claim {name!r} under mechanism {mechanism!r}, expected {known[name]!r}"
            )
    # Stances and populations are CHECK constraints of the schema; designs are not.
    for study_id, citekey, design in session.execute(
        text("SELECT id, citekey, design FROM studies WHERE design IS NOT NULL ORDER BY id")
    ):
        if design not in vocab.DESIGNS:
            found.append(f"study {study_id} ({citekey}): unknown design {design!r}")
    return found


def _text_checks(session: Session) -> list[str]:
    """Values no import or edit lets in now, which a library filled before the limits may hold: one
    pass over the studies' text columns, read a row at a time."""
    found: list[str] = []
    columns = [name for name in TEXT_LIMITS if name in Study.__table__.c]
    rows = session.execute(
        text(f"SELECT id, citekey, {', '.join(columns)} FROM studies ORDER BY id"),
        execution_options={"yield_per": 500},
    )
    for study_id, citekey, *values in rows:
        for column, value in zip(columns, values, strict=True):
            if not value:
                continue
            if len(value) > TEXT_LIMITS[column]:
                found.append(
                    f"study {study_id} ({citekey}): {column} is {len(value):,} characters "
                    f"(limit {TEXT_LIMITS[column]:,})"
                )
            if "\x00" in value or CONTROL_CHARACTERS.search(value):
                found.append(f"study {study_id} ({citekey}): {column} holds a NUL or control character")
    return found
