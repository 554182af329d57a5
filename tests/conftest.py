"""Shared fixtures: real databases (a SQLite file, the real PostgreSQL) and the real CLI.

Tests that take ``database_url`` run once on SQLite and, when NEWSLETTER_TEST_DATABASE_URL is
set, once on PostgreSQL in a schema of their own. If that variable is set but the server
cannot be reached, the PostgreSQL tests fail: they never skip silently.
"""

from __future__ import annotations

import os
import secrets
import shutil
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


def _admin_engine():
    """An engine on the base PostgreSQL database; fails the test when it cannot be reached."""
    base = _pg_base_url()
    if base is None:
        pytest.skip(f"{PG_ENV} not set")
    admin = create_engine(_psycopg_url(base))
    try:
        with admin.connect():
            pass
    except Exception as exc:  # any failure here must fail the test, loudly
        admin.dispose()
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is unreachable: {exc}")
    return admin


def _schema_url(schema: str) -> str:
    base = _pg_base_url() or ""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def _postgres_schema() -> Iterator[str]:
    """A URL of a fresh PostgreSQL schema, dropped afterwards; skips when the variable is
    unset, fails when it is set and the server cannot be reached."""
    admin = _admin_engine()
    schema = "t_" + secrets.token_hex(6)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


class _MigratedSchemas:
    """Migrated PostgreSQL schemas, reused: running the migrations costs a PostgreSQL test
    about a quarter of a second, emptying the tables a twentieth. A schema goes back to the
    pool only when every table could be emptied; otherwise it is dropped."""

    def __init__(self) -> None:
        self.free: list[str] = []
        self.made: list[str] = []
        self.admin = None

    @contextmanager
    def url(self) -> Iterator[str]:
        if self.admin is None:
            self.admin = _admin_engine()
        if self.free:
            schema = self.free.pop()
        else:
            schema = "m_" + secrets.token_hex(6)
            with self.admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            self.made.append(schema)
            engine = connect(_schema_url(schema))
            upgrade(engine)
            engine.dispose()
        try:
            yield _schema_url(schema)
        finally:
            self._give_back(schema)

    def _give_back(self, schema: str) -> None:
        from newsletter.store.models import Base

        tables = ", ".join(f"{schema}.{t.name}" for t in Base.metadata.sorted_tables)
        try:
            with self.admin.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        except Exception:  # something still holds a lock: let the drop wait for it
            with self.admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            self.made.remove(schema)
            return
        self.free.append(schema)

    def close(self) -> None:
        if self.admin is None:
            return
        with self.admin.begin() as conn:
            for schema in self.made:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        self.admin.dispose()


@pytest.fixture(scope="session")
def _migrated_schemas() -> Iterator[_MigratedSchemas]:
    pool = _MigratedSchemas()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the head revision, migrated once and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    engine = connect(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def db_kind(request: pytest.FixtureRequest) -> str:
    """Which database a test runs on: SQLite always, PostgreSQL when the variable is set."""
    return request.param


@pytest.fixture
def database_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with _postgres_schema() as url:
        yield url


@pytest.fixture
def migrated_url(request: pytest.FixtureRequest, db_kind: str, tmp_path: Path) -> Iterator[str]:
    """A database at the head revision with empty tables (the state `newsletter db upgrade`
    leaves), for the tests that are not about migrating."""
    if db_kind == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    with request.getfixturevalue("_migrated_schemas").url() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL schema, for the tests that are about PostgreSQL only."""
    with _postgres_schema() as url:
        yield url


@pytest.fixture
def engine(migrated_url: str):
    """An engine on a migrated, empty database."""
    eng = connect(migrated_url)
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
def cli(tmp_path: Path, migrated_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI on a config whose database is migrated and empty."""
    return Cli(write_config(tmp_path / "newsletter.toml", migrated_url), capsys)


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 (random port); set routes[path] = (status, body, hdrs)."""
    from tests.httpserver import serve

    with serve() as routes:
        yield routes
