"""Engine, sessions and migrations, on SQLite or PostgreSQL. Opening a library upgrades its schema.

Alembic is imported only when the stored revision is not the head this code knows, so an ordinary query
pays nothing for migrations.

Several clients may share one library. On SQLite every transaction takes the write lock at its start
(`_begin_immediate`); on PostgreSQL transactions run at REPEATABLE READ, so a read-modify-write that
another client's commit overtook fails with a serialisation error instead of losing an update, and
`Database.write` runs such a unit of work again. Setting a new library up (migrating, seeding) happens
under an advisory lock, so that of several clients opening it at once one does it and the others wait.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from evidence import vocab
from evidence.config import Settings, masked_url
from evidence.errors import DatabaseError
from evidence.store.models import Claim, Mechanism, Meta

log = logging.getLogger(__name__)

# The newest migration in evidence/migrations/versions; a test checks the two agree.
HEAD_REVISION = "0003"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SEEDED_KEY = "seeded"
# pg_advisory_xact_lock key of "set this library up" (any constant: one per database).
SETUP_LOCK_KEY = 0x45564944  # "EVID"
# A unit of work that lost a race with another client is run again this many times in all.
WRITE_ATTEMPTS = 6
# How long a SQLite client waits for another's lock before "database is locked".
BUSY_TIMEOUT_MS = 15_000
# SQLSTATEs worth another attempt: serialisation failure, deadlock, a unique key another client took
# first (a citekey, a tag), and SQLite's "database is locked" (past the busy timeout).
RETRY_SQLSTATES = frozenset({"40001", "40P01", "23505"})

T = TypeVar("T")


@dataclass
class Database:
    engine: Engine
    sessions: sessionmaker[Session]
    # The backup `open_database` took before it migrated this library (SQLite), if it did.
    migration_backup: Path | None = None

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

    def write(self, work: Callable[[Session], T], *, attempts: int = WRITE_ATTEMPTS) -> T:
        """Run ``work(session)`` in one transaction and return its result; when another client's
        concurrent write makes it fail (a serialisation failure or deadlock, a unique key taken first),
        roll back and run it again, up to ``attempts`` times in all. ``work`` must only touch the
        database: it may run more than once."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as session:
                    return work(session)
            except DBAPIError as exc:
                if attempt == attempts or not is_retryable(exc):
                    if attempt > 1 and is_retryable(exc):
                        raise DatabaseError(
                            f"{self.display}: gave up after {attempts} attempts, other clients kept "
                            f"changing the same studies ({first_line(exc)}); try again"
                        ) from exc
                    raise
                log.info("attempt %d lost a race (%s); again", attempt, first_line(exc))
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def setup_transaction(self) -> Iterator[Session]:
        """A transaction for setting the library up (migrating, seeding), one client at a time: on
        PostgreSQL under an advisory lock, reading committed data, so a client that waited sees what
        the first one did; on SQLite BEGIN IMMEDIATE serialises it already."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SETUP_LOCK_KEY})
                with Session(bind=conn, expire_on_commit=False) as session:
                    yield session
                    session.flush()

    @property
    def display(self) -> str:
        """The database's URL with any password masked."""
        return masked_url(self.engine.url.render_as_string(hide_password=False))

    def close(self) -> None:
        self.engine.dispose()


def is_retryable(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    if code in RETRY_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def first_line(exc: BaseException) -> str:
    """The first line of what the driver (or the exception itself) says, or its class name."""
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def hide_passwords(message: str, *urls: str | URL) -> str:
    """``message`` with the password of each of ``urls`` replaced by ``***``."""
    for url in urls:
        password = make_url(url).password
        if password:
            message = message.replace(str(password), "***")
    return message


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # Let SQLAlchemy, not the sqlite3 module, say when a transaction begins (see _begin_immediate).
    dbapi_connection.isolation_level = None


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode, waiting (up to the busy timeout) for a lock another process holds.

    Switching a file to WAL needs it to itself, and SQLite does not run the busy handler for that: of
    several processes opening a new library at once, one got "database is locked" at once (in 3 runs
    of 60 with 16 openers, whatever the busy timeout). WAL is a property of the file, so once one
    process has switched it the others find it so and take no lock at all."""
    import sqlite3

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")  # 'memory' for an in-memory database: kept
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _begin_immediate(conn: Any) -> None:
    # Every transaction takes the write lock at its start, so a read-modify-write (appending a note,
    # migrating, seeding) cannot interleave with another process's: the second waits (busy timeout)
    # instead of silently losing an update. Readers of a WAL database are never blocked by it.
    # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout on every connection,
    PostgreSQL REPEATABLE READ transactions and a connect timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(
            url,
            isolation_level="REPEATABLE READ",
            connect_args={"connect_timeout": 10, "application_name": "evidence"},
        )
    else:
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
    """Run Alembic migrations up to ``revision`` on ``engine`` (one client at a time)."""
    db = Database(engine, sessionmaker(engine))
    with db.setup_transaction() as session:
        run_migrations(session.connection(), revision)


def run_migrations(conn: Connection, revision: str = "head") -> None:
    """Alembic's upgrade on ``conn``, inside the caller's transaction."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
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
            with db.setup_transaction() as session:
                # Read again under the lock: another client may have done it while this one waited.
                revision = current_revision(session.connection())
                if revision != HEAD_REVISION:
                    if revision is not None:
                        db.migration_backup = _backup_before_migrating(session, revision)
                    run_migrations(session.connection())
                sync_vocabulary(session)
    except ImportError as exc:
        raise DatabaseError(
            f"cannot open {settings.db_display}: its database driver is not installed ({exc.name}); "
            "for PostgreSQL: pip install 'evidence[postgres]'"
        ) from exc
    except OSError as exc:
        raise DatabaseError(f"cannot open {settings.db_display}: {exc.strerror or exc}") from exc
    except SQLAlchemyError as exc:
        raise DatabaseError(describe_failure(settings.db_url, exc)) from exc
    return db


def _backup_before_migrating(session: Session, revision: str) -> Path | None:
    """A copy of a SQLite library as it is before a migration, beside it (``evidence.db.0001-backup-
    20261202T054512``), taken while the setup transaction holds the write lock. On PostgreSQL, none:
    the server's own dumps (pg_dump) are the backup there."""
    from evidence.store.maintenance import backup_sqlite_file
    from evidence.store.models import utcnow

    url = session.connection().engine.url
    database = url.database
    if url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    path = Path(database)
    target = path.with_name(f"{path.name}.{revision}-backup-{utcnow():%Y%m%dT%H%M%S}")
    log.info("backing up %s to %s before migrating from revision %s", path, target, revision)
    return backup_sqlite_file(path, target)


def describe_failure(url: str, exc: BaseException) -> str:
    """One line for a database failure: where (host and database, never a password) and why."""
    parsed = make_url(url)
    reason = first_line(exc)
    if parsed.get_backend_name() != "postgresql":
        return f"cannot use the library at {masked_url(url)}: {reason}"
    where = f"PostgreSQL server {parsed.host or 'localhost'}:{parsed.port or 5432}"
    database = parsed.database or parsed.username or "postgres"
    reason = hide_passwords(reason, parsed).removeprefix("connection failed: ")
    text_ = reason.lower()
    if "does not exist" in text_ and "database" in text_:
        return (
            f"database {database!r} does not exist on the {where}; create it first "
            f"(createdb -h {parsed.host or 'localhost'} {database})"
        )
    if "password authentication failed" in text_ or "no password supplied" in text_:
        return (
            f"the {where} refused user {parsed.username!r} for database {database!r}: wrong or missing "
            "password (give it in the URL, PGPASSWORD or ~/.pgpass)"
        )
    if (
        "connection refused" in text_
        or "could not connect" in text_
        or "timeout" in text_
        or ("could not translate host name" in text_)
    ):
        return f"cannot reach the {where} (database {database!r}): is it running? ({reason})"
    if (
        "server closed the connection" in text_
        or "terminating connection" in text_
        or "consuming input failed" in text_
        or "connection is lost" in text_
        or "connection is closed" in text_
    ):
        return (
            f"lost the connection to the {where} (database {database!r}): nothing of this command was saved"
        )
    return f"database {database!r} on the {where}: {reason}"


def mark_seeded(session: Session, how: str) -> None:
    from evidence.store.models import utcnow

    meta = session.get(Meta, SEEDED_KEY)
    value = f"{how} {utcnow().isoformat(timespec='seconds')}"
    if meta is None:
        session.add(Meta(key=SEEDED_KEY, value=value))
    else:
        meta.value = value
