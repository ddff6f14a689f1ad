"""What only PostgreSQL has: connecting to a server (and failing to, in one line, no password shown),
migrations on its dialect, full-text search by its own engine, and a server that goes away mid-import.

The rest of the CLI runs on PostgreSQL through the backend parametrisation in conftest.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from evidence.config import load_settings
from evidence.store.db import HEAD_REVISION, current_revision, make_engine, open_database, upgrade
from evidence.store.models import Base
from tests import pgserver
from tests.conftest import PgServer
from tests.crossref_fake import FakeCrossref, install, work
from tests.helpers import db_execute, db_rows, run, run_json

CLI = [sys.executable, str(Path(__file__).resolve().parent.parent / "cli.py")]


@pytest.fixture
def empty_pg(pg_server: PgServer) -> Iterator[str]:
    """A database with nothing in it, not even the schema."""
    name = f"evidence_pg_{os.getpid()}"
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


def _password(url: str) -> str:
    password = make_url(url).password
    assert password
    return str(password)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- connecting ------------------------------------------------------------------------------------


def test_db_path_and_verbose_logs_never_show_the_password(pg_database: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("EVIDENCE_DB", pg_database)
    secret = _password(pg_database)
    shown = run("db", "path").stdout.strip()
    assert secret not in shown and shown == pg_database.replace(f":{secret}@", ":***@")
    result = run("-vv", "find", "--limit", "1")
    assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("down", "cannot reach the PostgreSQL server 127.0.0.1:{port} (database 'evidence_x')"),
        ("password", "the PostgreSQL server 127.0.0.1:{port} refused user 'evidence' for database"),
        ("database", "database 'evidence_no_such_db' does not exist on the PostgreSQL server 127.0.0.1"),
    ],
)
def test_a_server_fault_is_one_line_naming_host_and_database(
    pg_server: PgServer, fault: str, expected: str
) -> None:
    parsed = make_url(pg_server.admin_url)
    if fault == "down":
        url = parsed.set(port=_closed_port(), database="evidence_x")
    elif fault == "password":
        url = parsed.set(password="not-the-password", database="evidence_x")
    else:
        url = parsed.set(database="evidence_no_such_db")
    rendered = url.render_as_string(hide_password=False)
    result = run("--db", rendered, "find", expect=1)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert expected.format(port=url.port) in result.stderr
    assert str(url.password) not in result.stderr
    assert _password(pg_server.admin_url) not in result.stderr


def test_unknown_database_kind_is_refused_with_the_supported_list() -> None:
    result = run("--db", "mysql://clinic:pw@db.example/evidence", "find", expect=1)
    assert result.stderr == (
        "Error: unsupported database 'mysql' in mysql://clinic:***@db.example/evidence; use "
        "sqlite:///PATH (or a plain path), postgresql://USER@HOST[:PORT]/DATABASE\n"
    )


def test_config_file_database_url_with_the_password_from_pgpassword_or_pgpass(
    pg_database: str, isolated_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    parsed = make_url(pg_database)
    secret = _password(pg_database)
    # postgresql:// without a driver: evidence gives it psycopg. No password in the file.
    bare = f"postgresql://{parsed.username}@{parsed.host}:{parsed.port}/{parsed.database}"
    (isolated_home / "config.toml").write_text(f'[database]\nurl = "{bare}"\n', encoding="utf-8")
    monkeypatch.delenv("EVIDENCE_DB", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    refused = run("find", expect=1)
    assert "wrong or missing password" in refused.stderr

    monkeypatch.setenv("PGPASSWORD", secret)
    assert len(run_json("find")) == 49  # the shared library, seeded on first open
    assert run("db", "path").stdout.strip() == bare.replace("postgresql://", "postgresql+psycopg://")

    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{parsed.host}:{parsed.port}:*:{parsed.username}:{secret}\n", encoding="utf-8")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    assert len(run_json("find", "--mechanism", "neural-stimulation")) > 0


# --- migrations ------------------------------------------------------------------------------------


def test_upgrade_creates_the_schema_with_postgresql_full_text_search(empty_pg: str) -> None:
    engine = make_engine(empty_pg)
    try:
        upgrade(engine)
        assert current_revision(engine) == HEAD_REVISION
        inspector = inspect(engine)
        assert set(Base.metadata.tables) <= set(inspector.get_table_names())
        search = {c["name"]: c for c in inspector.get_columns("studies")}["search"]
        assert str(search["type"]).upper() == "TSVECTOR"
        with engine.connect() as conn:
            index = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_studies_search'")
            ).scalar()
        assert index is not None and "USING gin (search)" in index

        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        # The generated search column and its index are the database's, deliberately not in the models.
        leftover = [d for d in diff if "search" not in repr(d)]
        assert leftover == []
    finally:
        engine.dispose()


def test_a_library_made_at_0001_upgrades_itself_on_open(empty_pg: str) -> None:
    engine = make_engine(empty_pg)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO crossref_cache (doi, fetched_at, message) VALUES (:doi, now(), :message)"),
            {"doi": "10.5555/cached.1", "message": json.dumps({"DOI": "10.5555/cached.1"})},
        )
        conn.execute(text("INSERT INTO studies (citekey, title) VALUES ('old2001study', 'An old study')"))
    engine.dispose()
    db = open_database(load_settings({}).with_db(empty_pg))
    try:
        assert current_revision(db.engine) == HEAD_REVISION
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT status FROM crossref_cache")).scalars().all() == ["found"]
            assert conn.execute(text("SELECT citekey FROM studies")).scalars().all() == ["old2001study"]
            assert conn.execute(text("SELECT count(*) FROM claims")).scalar() == 9
    finally:
        db.close()


def test_downgrade_to_nothing_and_up_again(empty_pg: str) -> None:
    from alembic import command
    from alembic.config import Config

    from evidence.store.db import MIGRATIONS_DIR

    engine = make_engine(empty_pg)
    try:
        upgrade(engine)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()


# --- full-text search ------------------------------------------------------------------------------


def test_text_search_runs_on_the_tsvector_index(pg_database: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("EVIDENCE_DB", pg_database)
    run("db", "init")
    engine = create_engine(pg_database)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                conn.execute(
                    text(
                        "EXPLAIN SELECT id FROM studies "
                        "WHERE search @@ websearch_to_tsquery('english', 'range of motion')"
                    )
                ).scalars()
            )
        assert "ix_studies_search" in plan
    finally:
        engine.dispose()
    found = run_json("find", "--text", "range of motion", "--sort", "relevance")
    assert found and all(
        "range" in (s["title"] + (s["abstract"] or "") + (s["notes"] or "")).lower() for s in found
    )


# --- the server going away ---------------------------------------------------------------------------


@pytest.fixture
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A cluster of this test's own, which it may stop and start (the session's stays up)."""
    if pgserver.bin_dir() is None:
        pytest.skip("PostgreSQL's initdb is not installed")
    folder = tmp_path_factory.mktemp("pg-own")
    url = pgserver.start(folder, durable=True)  # a commit must survive the immediate stop
    yield folder, url
    pgserver.stop(folder, mode="immediate")


def _bibtex(n: int) -> str:
    return "".join(
        f"@article{{r{i},\n  title = {{Scraping trial number {i} of calf stiffness}},\n"
        f"  author = {{Tester{i}, Ann and Other, Bo}},\n  year = {{2020}},\n"
        f"  doi = {{10.5555/gone.{i}}}\n}}\n"
        for i in range(n)
    )


def test_server_stopped_mid_import_leaves_the_library_as_it_was(
    own_cluster: tuple[Path, str], tmp_path: Path
) -> None:
    folder, admin = own_cluster
    server = PgServer(admin, folder)
    url = server.create_database("clinic")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(EVIDENCE_HOME=str(tmp_path / "home"), EVIDENCE_DB=url)
    subprocess.run([*CLI, "db", "init"], env=env, check=True, capture_output=True)
    source = tmp_path / "big.bib"
    source.write_text(_bibtex(12_000), encoding="utf-8")

    importer = subprocess.Popen(
        [*CLI, "import", str(source)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # Stop the server once the import streams its rows in (COPY, evidence/store/bulk.py).
        assert _wait_for_query(url, "COPY %", importer), "the import ended before the server was stopped"
        pgserver.stop(folder, mode="immediate")
        _out, err = importer.communicate(timeout=60)
    finally:
        if importer.poll() is None:
            importer.kill()
        importer.communicate()
    assert importer.returncode == 1
    assert err.count("\n") == 1 and err.startswith("Error: "), err
    assert "lost the connection to the PostgreSQL server 127.0.0.1" in err and "'clinic'" in err

    pgserver.restart(folder)
    # The seed library, and nothing of the import.
    assert db_rows(url, "SELECT count(*) FROM studies") == [(49,)]
    again = subprocess.run([*CLI, "import", str(source)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert db_rows(url, "SELECT count(*) FROM studies") == [(49 + 12_000,)]


def test_server_stopped_mid_enrich_keeps_the_chunks_committed_before_it(
    own_cluster: tuple[Path, str], tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """enrich commits a chunk at a time (50 studies): the server stops while the second chunk is being
    fetched; the first chunk's answers stay, the second's transaction leaves nothing, one line, exit 1."""
    folder, admin = own_cluster
    url = PgServer(admin, folder).create_database("clinic")
    monkeypatch.setenv("EVIDENCE_DB", url)
    run("db", "init", "--empty")
    dois = [f"10.5555/enrich.{i}" for i in range(100)]
    for i, doi in enumerate(dois):
        run(
            "add",
            "--title",
            f"Scraping study {i}",
            "--doi",
            doi,
            "--author",
            f"Writer{i}, Ann",
            "--year",
            "2021",
        )
    fake = install(httpserver, monkeypatch)
    for doi in dois:
        fake.add(work(doi, "Scraping study", **{"is-referenced-by-count": 5}))

    def stop_on_the_second_chunk(request: Any, fake: FakeCrossref) -> None:
        kind, detail = fake.requests[-1]
        if kind == "batch" and "doi:10.5555/enrich.50" in detail.split(","):
            pgserver.stop(folder, mode="immediate")

    fake.faults.append(stop_on_the_second_chunk)
    result = run("enrich", "--all", "--quiet", expect=1)
    assert result.stderr.count("\n") == 1, result.stderr
    assert "lost the connection to the PostgreSQL server 127.0.0.1" in result.stderr

    pgserver.restart(folder)
    # The first chunk, whole; nothing of the second.
    assert db_rows(url, "SELECT count(*) FROM studies WHERE citations = 5") == [(50,)]
    assert db_rows(url, "SELECT count(*) FROM crossref_cache") == [(50,)]


def _wait_for_query(url: str, pattern: str, process: subprocess.Popen[str]) -> bool:
    """Whether an `evidence` client ran a statement LIKE ``pattern`` before ``process`` ended."""
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            with engine.connect() as conn:
                running = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'evidence' "
                        "AND state = 'active' AND query LIKE :pattern"
                    ),
                    {"pattern": pattern},
                ).scalar()
            if running:
                return True
            time.sleep(0.02)
        return False
    finally:
        engine.dispose()


# --- moving a library ----------------------------------------------------------------------------------


def test_db_copy_moves_a_laptop_library_in_and_back_out(pg_database: str, tmp_path: Path) -> None:
    laptop, back = tmp_path / "laptop.db", tmp_path / "back.db"
    run("--db", str(laptop), "db", "init")
    run("--db", str(laptop), "note", "crothers2016spinal", "-m", "Handout for the Tuesday group")
    secret = _password(pg_database)
    moved = run("db", "copy", str(laptop), pg_database)
    assert moved.stderr.startswith("copied 49 studies, ") and secret not in moved.stderr
    refused = run("db", "copy", str(laptop), pg_database, expect=1)
    assert "already holds a library (49 studies); pass --replace" in refused.stderr
    assert secret not in refused.stderr
    run("db", "copy", str(laptop), pg_database, "--replace")
    run("db", "copy", pg_database, str(back))
    original = run_json("--db", str(laptop), "find", "--sort", "title")
    assert run_json("--db", pg_database, "find", "--sort", "title") == original
    assert run_json("--db", str(back), "find", "--sort", "title") == original
    missing = run("db", "copy", str(tmp_path / "nowhere.db"), str(back), expect=1)
    assert missing.stderr == f"Error: no library at {tmp_path / 'nowhere.db'} to copy from\n"


def test_db_copy_failure_names_both_libraries_whole(pg_database: str, tmp_path: Path) -> None:
    laptop = tmp_path / "laptop.db"
    run("--db", str(laptop), "db", "init")
    # A PMID longer than PostgreSQL's column (SQLite keeps it): the copy fails mid-way.
    db_execute(f"sqlite:///{laptop}", "UPDATE studies SET pmid = :p WHERE id = 1", p="1" * 20)
    failed = run("db", "copy", str(laptop), pg_database, expect=1)
    shown = pg_database.replace(f":{_password(pg_database)}@", ":***@")
    assert failed.stderr.startswith(f"Error: copy from sqlite:///{laptop} to {shown} failed while copying ")
    assert "the target is unchanged" in failed.stderr and failed.stderr.count("\n") == 1
    assert db_rows(pg_database, "SELECT count(*) FROM studies") == [(0,)]
