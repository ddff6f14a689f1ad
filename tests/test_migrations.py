"""Alembic: an empty database upgrades to head, matches the models, and opening upgrades by itself."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import sessionmaker

from evidence.config import load_settings
from evidence.store.db import (
    HEAD_REVISION,
    Database,
    current_revision,
    make_engine,
    open_database,
    sync_vocabulary,
    upgrade,
)
from evidence.store.models import Base


def test_upgrade_from_empty_database_creates_every_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = create_engine(url)
    upgrade(engine)
    assert current_revision(engine) == HEAD_REVISION
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "studies_fts" in tables
    with engine.connect() as conn:
        triggers = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='trigger'"))}
    assert triggers == {"studies_fts_ai", "studies_fts_ad", "studies_fts_au"}
    engine.dispose()


def test_migrations_match_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(f"sqlite:///{tmp_path / 'cmp.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # FTS tables are created by hand in the migration and are not in the models.
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name.startswith("studies_fts"))]
    assert diff == []
    engine.dispose()


def test_open_database_upgrades_and_sets_pragmas(tmp_path: Path, monkeypatch: object) -> None:
    settings = load_settings().with_db(str(tmp_path / "nested" / "lib.db"))
    db = open_database(settings)
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 15000
        claims = conn.execute(text("SELECT count(*) FROM claims")).scalar()
    assert claims == 9
    db.close()
    # Re-opening an up-to-date database runs no migration and keeps the vocabulary as it is.
    db = open_database(settings)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM mechanisms")).scalar() == 3
    db.close()


def test_upgrade_from_0001_with_data_keeps_it(tmp_path: Path) -> None:
    """A library made at revision 0001 (seeded studies, a cached Crossref answer) upgrades to head intact."""
    from evidence import enrich
    from evidence.seed import load_seed

    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine, "0001")
    db = Database(engine, sessionmaker(engine))
    with db.transaction() as session:  # the studies tables are the same at 0001 and head
        sync_vocabulary(session)
        load_seed(session)
    message = {"DOI": "10.5555/cached.1", "title": ["Cached"]}
    with engine.begin() as conn:
        studies = conn.execute(text("SELECT id, doi, title FROM studies ORDER BY id")).all()
        conn.execute(
            text("INSERT INTO crossref_cache (doi, fetched_at, message) VALUES (:doi, :at, :message)"),
            {"doi": "10.5555/cached.1", "at": "2026-01-02 03:04:05", "message": json.dumps(message)},
        )
    assert studies
    engine.dispose()

    db = open_database(load_settings().with_db(str(path)))  # upgrades on open
    try:
        assert current_revision(db.engine) == HEAD_REVISION
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT id, doi, title FROM studies ORDER BY id")).all() == studies
            assert conn.execute(text("SELECT status FROM crossref_cache")).scalars().all() == ["found"]
        with db.transaction() as session:
            (cached,) = enrich.cached_messages(session, ["10.5555/cached.1"]).values()
            assert cached.message == message and cached.fetched_at.year == 2026
            enrich.store_not_found(session, "10.5555/gone", cached.fetched_at)
        with db.transaction() as session:
            assert enrich.cached_messages(session, ["10.5555/gone"])["10.5555/gone"].message is None
    finally:
        db.close()
