"""One plain-Python function per CLI command that writes: explicit inputs (a Session), data out, no
printing. The caller owns the transaction (`with db.transaction() as session:`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence import records
from evidence.config import Settings
from evidence.errors import InvalidValue
from evidence.query import show_study
from evidence.seed import SeedReport, load_seed
from evidence.store.db import (
    SEEDED_KEY,
    Database,
    current_revision,
    mark_seeded,
    open_database,
)
from evidence.store.models import Meta, Study

if TYPE_CHECKING:
    from evidence.store.copy import CopyReport


def open_library(settings: Settings, *, seed: bool = True) -> Database:
    """Open the library (its schema upgraded); with `seed`, a library that was never seeded (nor made
    empty on purpose) gets the shipped studies first."""
    database = open_database(settings)
    if seed:
        with database.sessions() as session:
            seeded = session.get(Meta, SEEDED_KEY) is not None
        if not seeded:
            # One client seeds; others opening the new library at the same time wait, then see it done.
            with database.setup_transaction() as session:
                if session.get(Meta, SEEDED_KEY) is None:
                    load_seed(session)
                    mark_seeded(session, "seed")
    return database


def add_manual(
    session: Session,
    fields: dict[str, Any],
    *,
    authors: Iterable[str] = (),
    tags: Iterable[str] = (),
    claims: Sequence[str] = (),
    stance: str | None = None,
    finding: str | None = None,
) -> dict[str, Any]:
    """Add a study entered by hand; returns it as `show` sees it."""
    links = records.claim_links(claims, stance, finding)
    study = records.add_study(session, fields, authors=authors, tags=tags, claims=links, source="manual")
    return show_study(session, f"id:{study.id}")


def edit_ref(
    session: Session, ref: str, changes: dict[str, Any], authors: list[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    study = records.resolve_ref(session, ref)
    if not changes and authors is None:
        raise InvalidValue("nothing to change: give at least one field option (see evidence edit --help)")
    changed = records.edit_study(session, study, changes, authors=authors, source="manual")
    return show_study(session, f"id:{study.id}"), changed


def describe_ref(session: Session, ref: str) -> str:
    study = records.resolve_ref(session, ref)
    return f"study {study.id} ({study.citekey}): {study.title}"


def remove_ref(session: Session, ref: str) -> None:
    records.remove_study(session, records.resolve_ref(session, ref))


def tag_ref(session: Session, ref: str, tags: Iterable[str]) -> list[str]:
    study = records.resolve_ref(session, ref)
    return [records.normalize_tag(t) for t in tags if records.add_tag(session, study, t)]


def untag_ref(session: Session, ref: str, tags: Iterable[str]) -> list[str]:
    study = records.resolve_ref(session, ref)
    return [records.normalize_tag(t) for t in tags if records.remove_tag(session, study, t)]


def link_ref(session: Session, ref: str, claim: str, stance: str, finding: str | None) -> str:
    study = records.resolve_ref(session, ref)
    records.link_claim(session, study, claim, stance, finding)
    return study.citekey


def unlink_ref(session: Session, ref: str, claim: str) -> tuple[str, bool]:
    study = records.resolve_ref(session, ref)
    return study.citekey, records.unlink_claim(session, study, claim)


def note_ref(session: Session, ref: str, text: str, *, replace: bool = False) -> str:
    study = records.resolve_ref(session, ref)
    records.add_note(session, study, text, replace=replace)
    return study.citekey


def library_status(session: Session) -> dict[str, Any]:
    seeded = session.get(Meta, SEEDED_KEY)
    return {
        "revision": current_revision(session.connection()),
        "studies": session.scalar(select(func.count()).select_from(Study)),
        "seeded": seeded.value if seeded else None,
    }


def init_library(session: Session, *, empty: bool) -> str:
    """Initialise a library: seed it, or mark it empty on purpose so it is never seeded automatically."""
    if empty:
        count = session.scalar(select(func.count()).select_from(Study)) or 0
        if count:
            raise InvalidValue(
                f"the library already holds {count} studies; --empty is for a new library "
                "(give --db a new file)"
            )
        mark_seeded(session, "empty")
        return "library ready without seed data (0 studies)"
    report = load_seed(session)
    mark_seeded(session, "seed")
    return f"library ready: {len(report.added)} seed studies added, {len(report.kept)} already present"


def copy_between(settings: Settings, source: str, target: str, *, replace: bool = False) -> CopyReport:
    """Copy the library at ``source`` (a path or URL) to ``target`` whole: `evidence db copy`.

    The source must exist (a SQLite path that is not there is refused, not created); both are
    upgraded to the current schema on opening; the target is made if it is a new SQLite file."""
    from evidence.store.copy import copy_library

    source_settings, target_settings = settings.with_db(source), settings.with_db(target)
    source_db = _open_existing(source_settings, " to copy from")
    try:
        target_db = open_database(target_settings)
        try:
            return copy_library(source_db, target_db, replace=replace)
        finally:
            target_db.close()
    finally:
        source_db.close()


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    return Path(url.removeprefix("sqlite:///"))


def reseed(session: Session) -> SeedReport:
    report = load_seed(session)
    mark_seeded(session, "seed")
    return report


@dataclass(frozen=True)
class BackupReport:
    """What `backup_library` wrote: the file, its studies and its size in bytes."""

    path: Path
    studies: int
    size: int


def backup_library(settings: Settings, target: str | Path) -> BackupReport:
    """Back the library at ``settings`` up to the new SQLite file ``target``: `evidence db backup`. A
    SQLite library through SQLite's online backup API, a PostgreSQL one through `db copy` (one
    snapshot, one transaction); either way a file that is whole or absent, which `--db FILE` opens."""
    import sqlite3
    from contextlib import closing

    from evidence.store.copy import copy_library
    from evidence.store.maintenance import backup_sqlite, write_whole

    path = Path(target).expanduser().absolute()
    database = _open_existing(settings)
    try:
        if database.dialect == "sqlite":
            backup_sqlite(database, path)
        else:

            def fill(partial: Path) -> None:
                copy = open_database(settings.with_db(str(partial)))
                try:
                    copy_library(database, copy)
                    with copy.engine.connect() as conn:  # one file, no -wal beside it
                        conn.connection.dbapi_connection.execute("PRAGMA journal_mode=DELETE")  # type: ignore[union-attr]
                finally:
                    copy.close()

            write_whole(path, fill)
    finally:
        database.close()
    # Counted read-only with sqlite3 itself: opening it as a library would switch the file to WAL.
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        studies = int(conn.execute("SELECT count(*) FROM studies").fetchone()[0])
    return BackupReport(path, studies, path.stat().st_size)


def check_library(settings: Settings) -> list[str]:
    """The problems `evidence db check` finds in the library at ``settings``, one line each (none: it
    is sound); see `store.maintenance.check_library`. It reads, in one transaction rolled back."""
    from evidence.store.maintenance import check_library as check

    database = _open_existing(settings)
    try:
        with database.transaction(rollback=True) as session:
            return check(session)
    finally:
        database.close()


def _open_existing(settings: Settings, purpose: str = "") -> Database:
    """The library at ``settings``, opened (upgraded) but never made: a SQLite file that is not there is
    refused, so that a typo is not backed up or checked as a new empty library."""
    path = sqlite_path(settings.db_url)
    if path is not None and not path.is_file():
        raise InvalidValue(f"no library at {path}{purpose}")
    return open_database(settings)
