"""`evidence db backup` and `evidence db check`, and the backup `db upgrade` takes before it migrates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from tests.helpers import db_execute, db_rows, run, run_json


def _check(*db: str, expect: int) -> list[str]:
    result = run(*db, "db", "check", expect=expect)
    if expect:
        assert result.stderr.startswith(f"Error: {len(result.stdout.splitlines())} problems in ")
    else:
        assert result.stdout == "" and result.stderr.startswith("no problems in ")
    return result.stdout.splitlines()


def test_a_backup_is_a_whole_sqlite_library_that_opens_as_it_is(tmp_path: Path) -> None:
    run("tag", "crothers2016spinal", "-t", "before-backup")
    studies = run_json("find", "--sort", "title")
    target = tmp_path / "backup.db"
    result = run("db", "backup", str(target))
    assert result.stderr == f"backed up 49 studies to {target} ({target.stat().st_size:,} bytes)\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("backup", ".backup"))) == [
        "backup.db"
    ]  # one file: no -wal, -journal or partial file beside it
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert run_json("--db", str(target), "find", "--sort", "title") == studies
    assert "before-backup" in run_json("--db", str(target), "show", "crothers2016spinal")["tags"]
    _check("--db", str(target), expect=0)
    # Never over an existing file; never of a library that is not there.
    result = run("db", "backup", str(target), expect=1)
    assert result.stderr == f"Error: {target} exists already; give a new file name for the backup\n"
    result = run("--db", str(tmp_path / "typo.db"), "db", "backup", str(tmp_path / "b2.db"), expect=1)
    assert result.stderr == f"Error: no library at {tmp_path / 'typo.db'}\n"
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "b2.db").exists()
    result = run("db", "backup", str(tmp_path / "no" / "such" / "b.db"), expect=1)
    assert "folder" in result.stderr and "does not exist" in result.stderr


def test_check_passes_a_sound_library_and_names_each_problem(library_url: str) -> None:
    run_json("find")
    _check(expect=0)
    db_execute(
        library_url, "UPDATE studies SET title = :t WHERE citekey = 'crothers2016spinal'", t="Bell\x07 title"
    )
    db_execute(
        library_url, "UPDATE studies SET abstract = :a WHERE citekey = 'crothers2016spinal'", a="a" * 100_001
    )
    db_execute(library_url, "UPDATE studies SET design = 'anecdote' WHERE citekey = 'crothers2016spinal'")
    db_execute(
        library_url,
        "INSERT INTO claims (name, mechanism_id, label, description) "
        "SELECT 'bogus-claim', min(id), 'Bogus', 'Not ours' FROM mechanisms",
    )
    problems = _check(expect=1)
    (study_id,) = db_rows(library_url, "SELECT id FROM studies WHERE citekey = 'crothers2016spinal'")[0]
    assert "vocabulary: claim 'bogus-claim' is not one this version knows" in problems
    assert f"study {study_id} (crothers2016spinal): unknown design 'anecdote'" in problems
    assert f"study {study_id} (crothers2016spinal): title holds a NUL or control character" in problems
    assert (
        f"study {study_id} (crothers2016spinal): abstract is 100,001 characters (limit 100,000)" in problems
    )
    assert len(problems) == 4, problems


@pytest.mark.sqlite_only(reason="a damaged SQLite file: its index, its foreign keys switched off")
def test_check_finds_a_stale_full_text_index_and_orphans(library_url: str) -> None:
    run_json("find")
    # The full-text index out of step: a title changed with the trigger that follows it gone.
    db_execute(library_url, "DROP TRIGGER studies_fts_au")
    db_execute(
        library_url,
        "UPDATE studies SET title = 'Changed behind the index' WHERE citekey = 'crothers2016spinal'",
    )
    path = library_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:  # foreign keys are off in a plain sqlite3 connection
        conn.execute("INSERT INTO authors (study_id, position, family) VALUES (999999, 0, 'Orphan')")
        conn.execute("INSERT INTO study_tags (study_id, tag) VALUES (999999, 'lost')")
    problems = _check(expect=1)
    assert any(p.startswith("full-text index: out of step with the studies") for p in problems)
    assert any(p.startswith("author of no study: author ") for p in problems)
    assert "tag of no study: lost of study 999999" in problems
    assert sum(p.startswith("foreign key: ") for p in problems) == 2


@pytest.mark.sqlite_only(reason="the backup before a migration is of a SQLite file")
def test_upgrade_backs_a_library_up_before_it_migrates(tmp_path: Path) -> None:
    from evidence.seed import load_seed
    from evidence.store.db import Database, make_engine, sync_vocabulary, upgrade

    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine, "0001")
    with Database(engine, sessionmaker(engine)).transaction() as session:
        sync_vocabulary(session)
        load_seed(session)
    engine.dispose()
    result = run("--db", str(path), "db", "upgrade")
    (backup,) = tmp_path.glob("old.db.0001-backup-*")
    assert result.stderr.splitlines()[0] == f"backed up the library to {backup} before migrating"
    with sqlite3.connect(backup) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
        assert conn.execute("SELECT count(*) FROM studies").fetchone() == (49,)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # Up to date: nothing to back up; a new library has nothing to back up either.
    assert "backed up" not in run("--db", str(path), "db", "upgrade").stderr
    assert "backed up" not in run("--db", str(tmp_path / "new.db"), "db", "upgrade").stderr
    assert sorted(p.name for p in tmp_path.glob("*backup*")) == [backup.name]
