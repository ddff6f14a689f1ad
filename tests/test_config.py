"""Settings: where the database is, and how a URL is shown (never with its password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidence.config import db_url_from, load_settings, masked_url
from evidence.errors import ConfigError


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("postgresql://clinic@server/evidence", "postgresql+psycopg://clinic@server/evidence"),
        ("postgres://clinic@server:5433/evidence", "postgresql+psycopg://clinic@server:5433/evidence"),
        ("postgresql+psycopg://clinic@server/evidence", "postgresql+psycopg://clinic@server/evidence"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_urls_get_their_driver(given: str, url: str) -> None:
    assert db_url_from(given) == url


@pytest.mark.parametrize("given", ["mysql://u:pw@h/db", "postgresql+psycopg2://u@h/db", "oracle://h"])
def test_other_databases_are_refused_with_the_supported_list(given: str) -> None:
    with pytest.raises(ConfigError, match=r"unsupported database .*; use sqlite:///PATH") as caught:
        db_url_from(given)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://clinic:p%40ss:w@h:5/db", "postgresql+psycopg://clinic:***@h:5/db"),
        (
            "postgresql://clinic@h/db?password=secret&sslmode=require",
            "postgresql://clinic@h/db?password=***&sslmode=require",
        ),
        ("postgresql://clinic@h/db", "postgresql://clinic@h/db"),
        ("sqlite:////home/me/evidence.db", "sqlite:////home/me/evidence.db"),
    ],
)
def test_masked_url_hides_every_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_config_file_database_table_and_the_environment_over_it(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[database]\nurl = "postgresql://me@server/lib"\n', "utf-8")
    env = {"EVIDENCE_HOME": str(tmp_path)}
    assert load_settings(env).db_url == "postgresql+psycopg://me@server/lib"
    assert load_settings({**env, "EVIDENCE_DB": str(tmp_path / "a.db")}).db_url == (
        f"sqlite:///{tmp_path / 'a.db'}"
    )
    (tmp_path / "config.toml").write_text('database = "postgresql://me@server/lib"\n', "utf-8")
    with pytest.raises(ConfigError, match=r"config.toml: \[database\] must be a table with a url"):
        load_settings(env)
