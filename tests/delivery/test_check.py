"""`newsletter check`: each problem a newcomer meets, reported on one line with the fix."""

from __future__ import annotations

import pytest

from newsletter.config import database_url, load_settings
from newsletter.store import connect, upgrade

from .conftest import PASSWORD, USERNAME


def lines(result) -> list[str]:
    return result.stdout.splitlines()


def set_smtp(cli, text: str) -> None:
    cli.config.write_text(cli.config.read_text() + "\n[smtp]\n" + text)


def test_all_good(cli, smtp_server) -> None:
    server = smtp_server()
    set_smtp(cli, f'host = "127.0.0.1"\nport = {server.port}\n')
    result = cli("check")
    assert result.exit_code == 0, result.stdout
    assert any(line.startswith("ok   smtp") and "PIPELINING" in line for line in lines(result))
    assert "0 problem(s)" in result.stdout
    assert server.handler.messages == []  # nothing was sent


def test_wrong_smtp_port(cli, smtp_server) -> None:
    server = smtp_server()
    set_smtp(cli, f'host = "127.0.0.1"\nport = {server.port + 1}\ntimeout = 3.0\n')
    result = cli("check")
    assert result.exit_code == 1
    (line,) = [x for x in lines(result) if x.startswith("FAIL smtp")]
    assert "connection refused" in line and "check smtp.host, smtp.port" in line


def test_bad_password(cli, smtp_server, tls_files, monkeypatch: pytest.MonkeyPatch) -> None:
    server = smtp_server(tls="starttls", auth=True)
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", PASSWORD + "-wrong")
    set_smtp(
        cli,
        f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "starttls"\n'
        f'username = "{USERNAME}"\nca_file = "{tls_files.ca}"\n',
    )
    result = cli("check")
    assert result.exit_code == 1
    (line,) = [x for x in lines(result) if x.startswith("FAIL smtp")]
    assert "authentication" in line and "smtp.password_env" in line
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
    good = cli("check")
    assert good.exit_code == 0 and f"AUTH as '{USERNAME}' accepted" in good.stdout


def test_missing_template(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    (tmp_path / "mine" / "email").mkdir(parents=True)
    (tmp_path / "mine" / "email" / "post.html").write_text(
        '{% extends "email/no-such-base.html" %}'
    )
    cli.config.write_text(cli.config.read_text() + f'\n[templates]\ndir = "{tmp_path / "mine"}"\n')
    set_smtp(cli, f'host = "127.0.0.1"\nport = {server.port}\n')
    result = cli("check")
    assert result.exit_code == 1
    (line,) = [x for x in lines(result) if x.startswith("FAIL templates")]
    assert "no-such-base.html" in line and "check [templates] dir" in line


def test_old_database_schema(tmp_path, capsys, smtp_server) -> None:
    from tests.conftest import Cli, write_config

    server = smtp_server()
    config = write_config(tmp_path / "n.toml", f"sqlite:///{tmp_path / 'old.db'}")
    config.write_text(config.read_text() + f'\n[smtp]\nhost = "127.0.0.1"\nport = {server.port}\n')
    engine = connect(database_url(load_settings(config)))
    upgrade(engine, "0002")
    engine.dispose()
    result = Cli(config, capsys)("check")
    assert result.exit_code == 1
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("FAIL database")]
    assert "at revision 0002" in line and "run `newsletter db upgrade`" in line


def test_broken_config(tmp_path, capsys) -> None:
    from tests.conftest import Cli

    config = tmp_path / "bad.toml"
    config.write_text("[smtp]\nport = 'twenty-five'\n")
    result = Cli(config, capsys)("check")
    assert result.exit_code == 1
    assert "FAIL config" in result.stdout and "smtp.port" in result.stdout
