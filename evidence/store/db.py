"""Engine, sessions and migrations. Opening a library upgrades its schema.

Alembic is imported only when the stored revision is not the head this code knows, so an ordinary query
pays nothing for migrations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from evidence import vocab
from evidence.config import Settings
from evidence.errors import DatabaseError
from evidence.store.models import Claim, Mechanism, Meta

log = logging.getLogger(__name__)

# The newest migration in evidence/migrations/versions; a test checks the two agree.
HEAD_REVISION = "0002"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SEEDED_KEY = "seeded"


@dataclass
class Database:
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, rollback: bool = False) -> Iterator[Session]:
        """One session, one transaction: committed on success (rolled back with `rollback`, a dry run),
        rolled back on any error."""
        with self.sessions() as session, session.begin() as transaction:
            yield session
            if rollback:
                transaction.rollback()

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The busy timeout first: switching a new file to WAL takes a lock another process may hold.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # Let SQLAlchemy, not the sqlite3 module, say when a transaction begins (see _begin_immediate).
    dbapi_connection.isolation_level = None


def _begin_immediate(conn: Any) -> None:
    # Every transaction takes the write lock at its start, so a read-modify-write (appending a note,
    # migrating, seeding) cannot interleave with another process's: the second waits (busy timeout)
    # instead of silently losing an update. Readers of a WAL database are never blocked by it.
    # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
    return engine


def current_revision(bind: Engine | Connection) -> str | None:
    """The schema revision stored in the database, or None for a database without one. Given a
    Connection (a session's, say), reads through it: a second connection would wait behind the
    first one's write lock on SQLite."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return current_revision(conn)
    try:
        with bind.begin_nested():
            return bind.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):  # no such table: SQLite / PostgreSQL
        return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` on ``engine``."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def sync_vocabulary(session: Session) -> None:
    """Insert any mechanism or claim of `evidence.vocab` the database does not have yet."""
    mechanisms = {m.name: m for m in session.scalars(select(Mechanism))}
    for spec in vocab.MECHANISMS:
        if spec.name not in mechanisms:
            mechanisms[spec.name] = Mechanism(name=spec.name, label=spec.label, description=spec.description)
            session.add(mechanisms[spec.name])
    session.flush()
    known = set(session.scalars(select(Claim.name)))
    for claim in vocab.CLAIMS:
        if claim.name not in known:
            session.add(
                Claim(
                    name=claim.name,
                    mechanism_id=mechanisms[claim.mechanism].id,
                    label=claim.label,
                    description=claim.description,
                )
            )


def open_database(settings: Settings) -> Database:
    """Open the library at ``settings.db_url``, upgrading its schema (seeding a new library is the
    service layer's: `evidence.library.open_library`)."""
    try:
        engine = make_engine(settings.db_url)
        sessions = sessionmaker(engine, expire_on_commit=False)
        db = Database(engine, sessions)
        if current_revision(engine) != HEAD_REVISION:
            upgrade(engine)
            with db.transaction() as session:
                sync_vocabulary(session)
    except ImportError as exc:
        raise DatabaseError(
            f"cannot open {settings.db_url}: its database driver is not installed ({exc.name})"
        ) from exc
    except OSError as exc:
        raise DatabaseError(f"cannot open {settings.db_url}: {exc.strerror or exc}") from exc
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot open the library at {settings.db_url}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return db


def mark_seeded(session: Session, how: str) -> None:
    from evidence.store.models import utcnow

    meta = session.get(Meta, SEEDED_KEY)
    value = f"{how} {utcnow().isoformat(timespec='seconds')}"
    if meta is None:
        session.add(Meta(key=SEEDED_KEY, value=value))
    else:
        meta.value = value
