"""Small helpers shared by the CLI tests."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, text

from cli import cli


def run(*args: str, input: str | None = None, expect: int | None = 0) -> Result:
    """Invoke the CLI in-process; assert the exit code unless ``expect`` is None."""
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--format", "json").stdout)


def db_rows(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows of one SQL statement on the library at ``url`` (SQLite or PostgreSQL)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def db_execute(url: str, sql: str, **params: Any) -> int:
    """Run one changing SQL statement on the library at ``url`` and commit it; the rows it changed."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            return conn.execute(text(sql), params).rowcount
    finally:
        engine.dispose()


# Tables a dump leaves out: SQLite's own and the FTS5 index (the database keeps it in step).
_NOT_DUMPED = ("sqlite_", "studies_fts")


def dump_tables(url: str, tables: Iterable[str] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables`` (default: every table of the library), sorted, to prove a command that
    failed or was a dry run changed nothing."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = list(tables) if tables is not None else inspect(conn).get_table_names()
            return {
                name: sorted((tuple(row) for row in conn.execute(text(f'SELECT * FROM "{name}"'))), key=repr)
                for name in names
                if not name.startswith(_NOT_DUMPED)
            }
    finally:
        engine.dispose()


_LIBRARIES = itertools.count(1)


def another_library_url(request: pytest.FixtureRequest, name: str) -> str:
    """The URL of a second library for this test, on its backend, not made yet on SQLite (a file
    ``name``.db in the test's folder) and migrated but empty on PostgreSQL (a database of its own,
    dropped after the test). ``db init --empty`` makes either ready."""
    if request.getfixturevalue("backend") != "postgresql":
        return f"sqlite:///{request.getfixturevalue('tmp_path') / f'{name}.db'}"
    from conftest import TEMPLATE

    server = request.getfixturevalue("pg_server")
    database = f"evidence_{name}_{os.getpid()}_{next(_LIBRARIES)}"
    url = server.create_database(database, template=TEMPLATE)
    request.addfinalizer(lambda: server.drop_database(database))
    return str(url)


def modules_imported_by(code: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of `candidates` are in sys.modules after running `code` in a fresh interpreter."""
    check = f"{code}\nimport sys\nprint(','.join(m for m in {candidates!r} if m in sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    return [m for m in result.stdout.strip().split(",") if m]
