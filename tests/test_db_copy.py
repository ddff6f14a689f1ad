"""`evidence.store.copy.copy_library` on real databases: SQLite → PostgreSQL → SQLite row for row, the
id counters, full-text search on the copy, refusals, and a failure that leaves the target as it was."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from evidence import library, records
from evidence.config import load_settings
from evidence.errors import DatabaseError, InvalidValue
from evidence.store import copy
from evidence.store.copy import copy_library
from evidence.store.db import Database, open_database
from evidence.store.models import Base, Claim, CrossrefCache, Meta, Study, StudyClaim
from tests.helpers import run_json

# The full-text index's own tables: their pages differ however equal the index is.
FTS_SHADOW = {
    "studies_fts",
    "studies_fts_data",
    "studies_fts_idx",
    "studies_fts_docsize",
    "studies_fts_config",
}
CHECKED_AT = datetime(2024, 3, 5, 14, 7, 9, 123456, tzinfo=UTC)


def opened(url: str, *, seed: bool = False) -> Database:
    settings = load_settings().with_db(url)
    return library.open_library(settings) if seed else open_database(settings)


@pytest.fixture
def databases() -> Iterator[list[Database]]:
    """Databases a test opens, closed after it (before pg_database drops its database)."""
    opened_here: list[Database] = []
    yield opened_here
    for database in opened_here:
        database.close()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def enrich_library(database: Database) -> dict[str, Any]:
    """Give the seeded library what the seed lacks, so every table and column type is exercised;
    returns what the tests look for."""
    with database.transaction() as session:
        first = session.scalars(select(Study).order_by(Study.id)).first()
        assert first is not None
        library.note_ref(session, f"id:{first.id}", "Zygomorphic fascia note, ünïcode and 'quotes'.")
        library.tag_ref(session, f"id:{first.id}", ["copy-test", "practice-article"])
        library.link_ref(
            session, f"id:{first.id}", "proprioception", "mixed", "Joint sense improved; balance not."
        )
        # A claim outside the vocabulary, with an id a new database would not give it.
        mechanism_id = session.scalars(select(Claim.mechanism_id)).first()
        assert mechanism_id is not None
        session.add(Claim(id=900, name="local-claim", mechanism_id=mechanism_id, label="L", description=""))
        session.flush()
        retracted = records.add_study(
            session,
            {
                "title": "A retracted trial of instrument-assisted mobilisation",
                "year": 2021,
                "doi": "10.5555/copy.1",
            },
            authors=["Ωmega, A.", {"name": "IASTM Study Group"}],
            source="crossref",
        )
        retracted.claim_links.append(StudyClaim(claim_id=900, stance="contradicts", finding=None))
        retracted.status = "retracted"
        retracted.updates = [{"type": "retraction", "DOI": "10.5555/copy.r", "date": [2022, 1, 2]}]
        retracted.field_sources = {"title": "crossref", "abstract": "manual", "nested": {"a": [1, 2.5, None]}}
        retracted.source_urls = ["https://example.org/a", "https://example.org/b"]
        retracted.abstract = ""  # empty, not missing
        retracted.verification_note = None
        retracted.level_overridden = True
        retracted.cited_by_practice_article = True
        retracted.doi_verification = "verified"
        retracted.citations = 0
        retracted.references_count = 31
        retracted.crossref_checked_at = CHECKED_AT
        session.add_all(
            [
                CrossrefCache(
                    doi="10.5555/copy.1",
                    fetched_at=CHECKED_AT,
                    message={"title": ["Tïtle"], "score": 1.0, "flags": [True, False], "none": None},
                ),
                CrossrefCache(doi="10.5555/missing", fetched_at=CHECKED_AT, status="not-found", message=None),
                Meta(key="copy-test", value=""),
            ]
        )
        # A study removed after the last one: its id must never be handed out again, copy or not.
        removed = records.add_study(session, {"title": "Removed later"})
        session.flush()
        removed_id = removed.id
        records.remove_study(session, removed)
    return {"first": first.id, "retracted": retracted.id, "removed": removed_id}


def sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a SQLite file but the full-text index's, its rows in primary-key order."""
    with sqlite3.connect(path) as conn:
        names = [
            n
            for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if n not in FTS_SHADOW
        ]
        found = {}
        for name in sorted(names):
            keys = [
                r[1] for r in sorted(conn.execute(f"PRAGMA table_info({name})"), key=lambda r: r[5]) if r[5]
            ]
            order = ", ".join(keys or ["1"])
            found[name] = list(conn.execute(f"SELECT * FROM {name} ORDER BY {order}"))
    return found


def counts(database: Database) -> dict[str, int]:
    with database.sessions() as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def everything(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    with database.sessions() as session:
        return {
            t.name: [tuple(r) for r in session.execute(select(t).order_by(*t.primary_key.columns))]
            for t in Base.metadata.sorted_tables
        }


def found_ids(path: Path, words: str) -> list[int]:
    return sorted(row["id"] for row in run_json("--db", str(path), "find", "--text", words))


def test_sqlite_to_postgresql_to_sqlite_keeps_every_row(
    tmp_path: Path, pg_database: str, databases: list[Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy, "CHUNK_ROWS", 7)  # many chunks per table, a short last one
    first_path, second_path = tmp_path / "first.db", tmp_path / "second.db"
    first = opened(sqlite_url(first_path), seed=True)
    databases.append(first)
    made = enrich_library(first)
    postgres = opened(pg_database)
    second = opened(sqlite_url(second_path))
    databases.extend([postgres, second])
    with postgres.transaction() as session:  # the target's own setup rows give way to the source's
        session.add(Meta(key="target-only", value="x"))

    to_postgres = copy_library(first, postgres)
    back = copy_library(postgres, second)

    expected = counts(first)
    assert dict(to_postgres.rows) == dict(back.rows) == expected
    assert [name for name, _ in to_postgres.rows] == [t.name for t in Base.metadata.sorted_tables]
    assert expected["studies"] == 50 and expected["crossref_cache"] == 2 and expected["meta"] == 2
    assert to_postgres.summary().startswith("50 studies, 2 crossref_cache, ")
    assert everything(postgres) == everything(first)
    first.close()
    second.close()
    original, copied = sqlite_tables(first_path), sqlite_tables(second_path)
    assert original.keys() == copied.keys() and {"sqlite_sequence", "study_claims"} <= original.keys()
    for name in original:
        assert copied[name] == original[name], name
    assert ("studies", made["removed"]) in copied["sqlite_sequence"]

    with sqlite3.connect(second_path) as conn:  # the index agrees with the rows it indexes
        conn.execute("INSERT INTO studies_fts(studies_fts, rank) VALUES ('integrity-check', 1)")
    for words in ("zygomorphic", "instrument-assisted", "range of motion", "fascia"):
        assert found_ids(second_path, words) == found_ids(first_path, words), words
    assert found_ids(second_path, "zygomorphic") == [made["first"]]

    # New rows on either copy get ids after every id the source handed out, the removed study's too.
    for database in (postgres, opened(sqlite_url(second_path))):
        databases.append(database)
        with database.transaction() as session:
            study = records.add_study(session, {"title": "Added after the copy"}, authors=["Late, A."])
            claim = Claim(name="newer-claim", mechanism_id=1, label="N", description="")
            session.add(claim)
            session.flush()
            assert study.id == made["removed"] + 1, database.dialect
            assert study.authors[0].id == expected["authors"] + 1
            assert claim.id == 901


def test_sqlite_to_sqlite_and_retracted_study_round_trip(tmp_path: Path, databases: list[Database]) -> None:
    source = opened(sqlite_url(tmp_path / "a.db"), seed=True)
    target = opened(sqlite_url(tmp_path / "b.db"))
    databases.extend([source, target])
    made = enrich_library(source)
    report = copy_library(source, target)
    assert report.count("studies") == 50
    assert report.source == f"sqlite:///{tmp_path / 'a.db'}"
    with target.sessions() as session:
        study = session.get(Study, made["retracted"])
        assert study is not None
        assert (study.status, study.abstract, study.verification_note) == ("retracted", "", None)
        assert study.crossref_checked_at == CHECKED_AT
        assert study.field_sources["nested"] == {"a": [1, 2.5, None]}
        assert [a.name for a in study.authors] == [None, "IASTM Study Group"]
        cache = session.get(CrossrefCache, "10.5555/missing")
        assert cache is not None and cache.message is None
        assert session.scalar(
            text("SELECT message IS NULL FROM crossref_cache WHERE doi = '10.5555/missing'")
        )


def test_a_library_in_use_is_refused_unless_replaced(
    tmp_path: Path, pg_database: str, databases: list[Database]
) -> None:
    source = opened(sqlite_url(tmp_path / "source.db"), seed=True)
    target = opened(pg_database, seed=True)
    databases.extend([source, target])
    enrich_library(source)
    before = everything(target)
    password = make_url(pg_database).password
    assert password

    with pytest.raises(InvalidValue) as refused:
        copy_library(source, target)
    message = str(refused.value)
    assert "\n" not in message and password not in message
    shown = make_url(pg_database).render_as_string(hide_password=True)
    assert message == (
        f"{shown} already holds a library (49 studies); pass --replace to replace it with the copy"
    )
    assert everything(target) == before

    report = copy_library(source, target, replace=True)
    assert report.count("studies") == 50 and report.target == shown
    assert everything(target) == everything(source)


def test_a_target_with_only_a_cache_is_in_use(tmp_path: Path, databases: list[Database]) -> None:
    source = opened(sqlite_url(tmp_path / "source.db"), seed=True)
    target = opened(sqlite_url(tmp_path / "target.db"))
    databases.extend([source, target])
    with target.transaction() as session:
        session.add(CrossrefCache(doi="10.5555/x", status="not-found", message=None))
    with pytest.raises(InvalidValue, match=r"\(0 studies but 1 crossref_cache rows\); pass --replace"):
        copy_library(source, target)


def test_the_same_database_is_refused(tmp_path: Path, pg_database: str, databases: list[Database]) -> None:
    (tmp_path / "sub").mkdir()
    one = opened(sqlite_url(tmp_path / "one.db"), seed=True)
    again = opened(sqlite_url(tmp_path / "sub" / ".." / "one.db"))
    postgres = opened(pg_database)
    # The same PostgreSQL database through another host name.
    postgres_again = opened(make_url(pg_database).set(host="localhost").render_as_string(hide_password=False))
    databases.extend([one, again, postgres, postgres_again])
    for source, target in ((one, again), (postgres, postgres_again)):
        with pytest.raises(InvalidValue, match="is both the source and the target") as refused:
            copy_library(source, target, replace=True)
        assert "\n" not in str(refused.value)
    assert counts(one)["studies"] == 49


def test_a_failure_mid_copy_leaves_the_postgresql_target_unchanged(
    tmp_path: Path, pg_database: str, databases: list[Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy, "CHUNK_ROWS", 10)
    source = opened(sqlite_url(tmp_path / "source.db"), seed=True)
    target = opened(pg_database, seed=True)
    databases.extend([source, target])
    with source.transaction() as session:
        # SQLite keeps a PMID longer than VARCHAR(16); PostgreSQL refuses it, in the copy's last chunk.
        last = session.scalar(select(func.max(Study.id)))
        session.execute(update(Study).where(Study.id == last).values(pmid="1" * 20))
    before = everything(target)

    with pytest.raises(DatabaseError) as failed:
        copy_library(source, target, replace=True)
    message = str(failed.value)
    assert message == (
        f"copy from sqlite:///{tmp_path / 'source.db'} to {make_url(pg_database).render_as_string()} failed "
        "while copying studies, the target is unchanged: value too long for type character varying(16)"
    )
    password = make_url(pg_database).password
    assert "\n" not in message and password and password not in message
    assert everything(target) == before
    with target.transaction() as session:  # its sequences still work, its rows are still there
        assert records.add_study(session, {"title": "After the failure"}).id == 50


def test_a_failure_mid_copy_leaves_the_sqlite_target_unchanged(
    tmp_path: Path, databases: list[Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy, "CHUNK_ROWS", 10)
    target_path = tmp_path / "target.db"
    source = opened(sqlite_url(tmp_path / "source.db"), seed=True)
    target = opened(sqlite_url(target_path), seed=True)
    databases.extend([source, target])
    made = enrich_library(source)
    with target.transaction() as session:
        library.note_ref(session, "id:3", "kept note")
    before = everything(target)
    real_insert = copy._insert_chunk
    calls: list[str] = []

    def insert_then_fail(writer: Session, table: Any, rows: list[dict[str, Any]]) -> None:
        real_insert(writer, table, rows)
        calls.append(table.name)
        if table.name == "authors" and calls.count("authors") == 2:
            raise OperationalError("INSERT INTO authors", {}, Exception("disk I/O error"))

    monkeypatch.setattr(copy, "_insert_chunk", insert_then_fail)
    with pytest.raises(
        DatabaseError,
        match=r"^copy from .* failed while copying authors, the target is unchanged: disk I/O error$",
    ):
        copy_library(source, target, replace=True)
    assert everything(target) == before
    target.close()
    with sqlite3.connect(target_path) as conn:
        conn.execute("INSERT INTO studies_fts(studies_fts, rank) VALUES ('integrity-check', 1)")
    assert found_ids(target_path, "kept note") == [3]

    monkeypatch.setattr(copy, "_insert_chunk", real_insert)  # and without the fault, it is replaced
    target = opened(sqlite_url(target_path))
    databases.append(target)
    assert copy_library(source, target, replace=True).count("studies") == 50
    assert everything(target) == everything(source)
    target.close()
    with sqlite3.connect(target_path) as conn:
        conn.execute("INSERT INTO studies_fts(studies_fts, rank) VALUES ('integrity-check', 1)")
    assert found_ids(target_path, "kept note") == []
    assert found_ids(target_path, "zygomorphic") == [made["first"]]
