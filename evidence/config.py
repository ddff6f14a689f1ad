"""Settings: where the library lives and how to reach Crossref. The only reader of ``os.environ``.

``EVIDENCE_HOME`` moves every path (tests point it into a temporary folder); ``EVIDENCE_DB`` (or
``--db``) names the database as a path or URL (a SQLite file, or ``postgresql://user@host/db`` for a
shared library); ``EVIDENCE_MAILTO`` identifies us to Crossref's polite pool; ``EVIDENCE_CROSSREF_URL``
points the Crossref client elsewhere (tests use a server on 127.0.0.1). A ``config.toml`` in the home
folder may set ``mailto``, ``crossref_url``, ``crossref_timeout`` and the database, as ``db`` or as
``url`` in a ``[database]`` table; the environment wins over the file.

A PostgreSQL password may sit in the URL, in ``PGPASSWORD`` or in ``~/.pgpass``: libpq reads the last
two itself. Whatever shows a URL to a user shows `masked_url` of it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from evidence.errors import ConfigError, quoted

DEFAULT_CROSSREF_URL = "https://api.crossref.org"
APP_NAME = "evidence"
# The databases evidence runs on, and the driver each URL scheme is given.
SUPPORTED_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
}
SUPPORTED_DATABASES = "sqlite:///PATH (or a plain path), postgresql://USER@HOST[:PORT]/DATABASE"


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    crossref_url: str = DEFAULT_CROSSREF_URL
    mailto: str | None = None
    crossref_timeout: float = 20.0
    ci: bool = False

    @property
    def config_file(self) -> Path:
        return self.home / "config.toml"

    @property
    def db_display(self) -> str:
        """The database URL as a user may see it: any password masked."""
        return masked_url(self.db_url)

    def with_db(self, db: str | None) -> Settings:
        """A copy whose database is ``db`` (a path or URL); ``None`` keeps the current one."""
        return self if db is None else replace(self, db_url=db_url_from(db))


def db_url_from(value: str) -> str:
    """A SQLAlchemy URL from a path or URL: ``sqlite:///...`` for a plain path; ``postgresql://`` and
    ``postgres://`` get the psycopg 3 driver. Any other database is refused with the supported list."""
    if "://" not in value:
        return "sqlite:///" + str(Path(value).expanduser().resolve())
    scheme, rest = value.split("://", 1)
    driver = SUPPORTED_SCHEMES.get(scheme.lower())
    if driver is None:
        raise ConfigError(
            f"unsupported database {scheme!r} in {masked_url(value)}; use {SUPPORTED_DATABASES}"
        )
    return f"{driver}://{rest}"


def masked_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``; a non-URL comes back as it is."""
    if "://" not in url:
        return url
    url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)  # libpq also takes ?password=
    scheme, rest = url.split("://", 1)
    userinfo, at, location = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}"


def _default_home() -> Path:
    # platformdirs is imported here, not at module level: it is cheap, but only needed without EVIDENCE_HOME.
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _read_config_file(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment and the optional ``config.toml`` in the home folder."""
    env = os.environ if environ is None else environ
    home = Path(env["EVIDENCE_HOME"]).expanduser() if env.get("EVIDENCE_HOME") else _default_home()
    file_values = _read_config_file(home / "config.toml")

    db = env.get("EVIDENCE_DB") or _str_value(file_values, "db", home) or _database_url(file_values, home)
    db_url = db_url_from(db) if db else db_url_from(str(home / "evidence.db"))

    crossref_url = env.get("EVIDENCE_CROSSREF_URL") or _str_value(file_values, "crossref_url", home)
    crossref_url = (crossref_url or DEFAULT_CROSSREF_URL).rstrip("/")  # habanero appends "/works/"

    mailto = env.get("EVIDENCE_MAILTO") or _str_value(file_values, "mailto", home)

    timeout_raw = env.get("EVIDENCE_CROSSREF_TIMEOUT") or file_values.get("crossref_timeout") or 20.0
    try:
        timeout = float(str(timeout_raw))
    except ValueError as exc:
        raise ConfigError(f"crossref timeout must be a number of seconds, not {quoted(timeout_raw)}") from exc
    if timeout <= 0:
        raise ConfigError(f"crossref timeout must be positive, not {timeout}")

    return Settings(
        home=home,
        db_url=db_url,
        crossref_url=crossref_url,
        mailto=mailto or None,
        crossref_timeout=timeout,
        ci=env.get("CI", "").lower() in {"1", "true", "yes"},
    )


def _database_url(values: Mapping[str, object], home: Path) -> str | None:
    table = values.get("database")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{home / 'config.toml'}: [database] must be a table with a url")
    return _str_value(table, "url", home)


def _str_value(values: Mapping[str, object], key: str, home: Path) -> str | None:
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{home / 'config.toml'}: {key} must be a string, not {quoted(value)}")
    return value


PIPED_WIDTH = 80  # a table's width when stdout is not a terminal and $COLUMNS does not say


def output_width(environ: Mapping[str, str] | None = None) -> int:
    """How wide a table may be when stdout is not a terminal: ``$COLUMNS`` when it is a positive whole
    number (as the shell exports it), else 80. On a terminal rich asks the terminal itself."""
    env = os.environ if environ is None else environ
    raw = env.get("COLUMNS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else PIPED_WIDTH
