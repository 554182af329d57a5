"""Shared fixtures: real databases (a SQLite file, the real PostgreSQL) and the real CLI.

Tests that take ``database_url`` run once on SQLite and, when NEWSLETTER_TEST_DATABASE_URL is
set, once on PostgreSQL in a schema of their own. If that variable is set but the server
cannot be reached, the PostgreSQL tests fail: they never skip silently.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from newsletter.cli import main
from newsletter.store import connect, upgrade

PG_ENV = "NEWSLETTER_TEST_DATABASE_URL"
FIXTURES = Path(__file__).parent / "fixtures"


def _pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _psycopg_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@contextmanager
def _postgres_schema() -> Iterator[str]:
    """A URL of a fresh PostgreSQL schema, dropped afterwards; skips when the variable is
    unset, fails when it is set and the server cannot be reached."""
    base = _pg_base_url()
    if base is None:
        pytest.skip(f"{PG_ENV} not set")
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(_psycopg_url(base))
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # any failure here must fail the test, loudly
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is unreachable: {exc}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with _postgres_schema() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL schema, for the tests that are about PostgreSQL only."""
    with _postgres_schema() as url:
        yield url


@pytest.fixture
def engine(database_url: str):
    """An engine on a migrated, empty database."""
    eng = connect(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


class Cli:
    """Runs the real entry point (newsletter.cli.main) in-process with a config file."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys

    def __call__(self, *args: str, input: str | None = None) -> CliResult:
        self.capsys.readouterr()
        old_stdin = sys.stdin
        if input is not None:
            import io

            sys.stdin = io.StringIO(input)
        code = 0
        try:
            main(["--config", str(self.config), *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdin = old_stdin
        out = self.capsys.readouterr()
        return CliResult(code, out.out, out.err)

    def ok(self, *args: str) -> CliResult:
        result = self(*args)
        assert result.exit_code == 0, f"{args} failed: {result.stderr}{result.stdout}"
        return result


def write_config(path: Path, database_url: str, extra: str = "") -> Path:
    path.write_text(
        f"""
[site]
name = "Example Essays"
base_url = "https://news.example.com"
postal_address = "Example Ltd, 1 Main Street, 111 22 Stockholm, Sweden"

[sender]
from_name = "Example Essays"
from_address = "letters@example.com"

[database]
url = "{database_url}"
{extra}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def cli(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI on a config whose database is migrated and empty."""
    runner = Cli(write_config(tmp_path / "newsletter.toml", database_url), capsys)
    runner.ok("db", "upgrade")
    return runner


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 (random port); set routes[path] = (status, body, hdrs)."""
    from tests.httpserver import serve

    with serve() as routes:
        yield routes
