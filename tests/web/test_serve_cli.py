"""`newsletter serve` refuses to start with one clear line when it cannot work."""

from __future__ import annotations

from newsletter.web.server import listen
from tests.conftest import Cli, write_config


def test_serve_reports_a_busy_port(cli) -> None:
    busy = listen("127.0.0.1", 0)
    try:
        port = busy.getsockname()[1]
        result = cli("serve", "--host", "127.0.0.1", "--port", str(port))
    finally:
        busy.close()
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_serve_needs_a_migrated_database(tmp_path, capsys) -> None:
    config = write_config(tmp_path / "newsletter.toml", f"sqlite:///{tmp_path / 'empty.db'}")
    result = Cli(config, capsys)("serve", "--port", "0")
    assert result.exit_code == 1 and "newsletter db upgrade" in result.stderr


def test_serve_help(cli) -> None:
    out = cli.ok("serve", "--help").stdout
    assert "--host" in out and "--port" in out
