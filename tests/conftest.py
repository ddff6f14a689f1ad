"""Shared fixtures: every test runs against its own EVIDENCE_HOME and its own library, never the user's.

The CLI tests (modules named ``test_cli_*``, and those marked ``both_backends``) run twice: on a SQLite
file in the home folder and on a fresh database of a real PostgreSQL server. The server is
``EVIDENCE_TEST_PG_URL`` (a superuser URL) when set, else a throw-away cluster that `tests/pgserver.py`
starts for the session when Debian's PostgreSQL is installed. Without one, the PostgreSQL half skips with
the reason; under ``CI=true`` that is a failure, so a missing install step cannot hide.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")
TEMPLATE = "evidence_template"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_backends: run on SQLite and on PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only(reason): a test of SQLite itself (a file, its pragmas)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    wanted = module.startswith("test_cli_") or metafunc.definition.get_closest_marker("both_backends")
    if wanted and "backend" in metafunc.fixturenames:
        backends = BACKENDS
        if metafunc.definition.get_closest_marker("sqlite_only"):
            backends = ("sqlite",)
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@dataclass
class PgServer:
    """A PostgreSQL server the tests may create and drop databases on."""

    admin_url: str  # SQLAlchemy URL of a superuser, database "postgres"
    folder: Path | None  # the throw-away cluster's folder (None for EVIDENCE_TEST_PG_URL)

    def url(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """A new database ``name`` (dropped first if it is left from a run before), empty or a copy of
        ``template``; its URL."""
        copy = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}{copy}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def execute(self, *statements: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        parsed = make_url(self.admin_url)
        with psycopg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            password=parsed.password,
            dbname=parsed.database or "postgres",
            autocommit=True,
        ) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]


_SERVER_PROBLEM: list[str] = []


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    if _SERVER_PROBLEM:
        _no_server(_SERVER_PROBLEM[0])
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _SERVER_PROBLEM.append("psycopg is not installed (pip install -e '.[postgres]')")
        _no_server(_SERVER_PROBLEM[0])
    given = os.environ.get("EVIDENCE_TEST_PG_URL")
    folder = None
    if given:
        server = PgServer(given, None)
    else:
        from tests import pgserver

        if pgserver.bin_dir() is None:
            _SERVER_PROBLEM.append("no PostgreSQL server: set EVIDENCE_TEST_PG_URL or install postgresql")
            _no_server(_SERVER_PROBLEM[0])
        folder = tmp_path_factory.mktemp("pg", numbered=True)
        try:
            server = PgServer(pgserver.start(folder), folder)
        except Exception as exc:
            _SERVER_PROBLEM.append(f"could not start a PostgreSQL cluster: {exc}")
            _no_server(_SERVER_PROBLEM[0])
    # A migrated (not seeded) template: each test's database is a copy of it, as a new library would be.
    from evidence.config import load_settings
    from evidence.store.db import open_database

    open_database(load_settings({}).with_db(server.create_database(TEMPLATE))).close()
    yield server
    server.drop_database(TEMPLATE)
    if folder is not None:
        from tests import pgserver

        pgserver.stop(folder, mode="immediate")


def _no_server(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"PostgreSQL tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL: {reason}")


_DATABASES = itertools.count(1)


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """The URL of a fresh database (migrated, empty, not yet seeded), dropped after the test."""
    name = f"evidence_test_{os.getpid()}_{next(_DATABASES)}"
    yield pg_server.create_database(name, template=TEMPLATE)
    pg_server.drop_database(name)


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, request: pytest.FixtureRequest
) -> Iterator[Path]:
    home = tmp_path / "evidence-home"
    home.mkdir()
    monkeypatch.setenv("EVIDENCE_HOME", str(home))
    for name in ("EVIDENCE_DB", "EVIDENCE_MAILTO", "EVIDENCE_CROSSREF_URL", "EVIDENCE_CROSSREF_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    if backend == "postgresql":
        monkeypatch.setenv("EVIDENCE_DB", request.getfixturevalue("pg_database"))
    yield home


@pytest.fixture
def library_url(isolated_home: Path, backend: str) -> str:
    """The URL of this test's library, whichever the backend (the default file on SQLite)."""
    return os.environ.get("EVIDENCE_DB") or f"sqlite:///{isolated_home / 'evidence.db'}"
