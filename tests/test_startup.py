"""The CLI answers at once: `--help` and `--version` load none of the commands' modules, nor
the store, the composer or the web service; the constants that let them do so agree with what
they stand for. (Timings are for bench/startup.py, not for tests.)"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import typer

import newsletter
from newsletter.cli import COMMANDS, app
from newsletter.store.migrate import HEAD, head_revision

HEAVY = ("sqlalchemy", "lxml", "premailer", "httpx", "alembic", "pydantic", "starlette",
         "feedparser", "rich", "newsletter.store", "newsletter.compose")  # fmt: skip


def _modules_after(*args: str) -> set[str]:
    code = (
        "import json, sys\n"
        "from newsletter.cli import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_help_and_version_import_nothing_heavy() -> None:
    for args in (["--help"], ["--version"], []):
        loaded = _modules_after(*args)
        heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY
                       or any(m.startswith(h + ".") for h in HEAVY))  # fmt: skip
        assert heavy == [], (args, heavy)


def test_a_command_loads_only_what_it_needs() -> None:
    loaded = _modules_after("subscriber", "--help")
    assert "newsletter.cli.subscriber" in loaded
    assert not {"newsletter.cli.issues", "newsletter.web", "premailer", "alembic"} & loaded


def test_the_command_table_says_what_the_commands_say() -> None:
    group = typer.main.get_group(app)
    ctx = typer.Context(group)
    for name, (_module, text) in COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None and command.get_short_help_str(200) == text, name
    assert group.get_command(ctx, "nonsense") is None


def test_constants_agree() -> None:
    assert newsletter.__version__ == version("newsletter")
    assert head_revision() == HEAD


def test_subscriber_list_reads_without_the_orm_or_pydantic(tmp_path) -> None:
    """`subscriber list` (bench/startup.py's third bar) reads with Core queries: no ORM, no
    models, no pydantic (Typer's own conversion of option values is replaced, cli/params.py),
    no address validation."""
    (tmp_path / "newsletter.toml").write_text('[database]\nurl = "sqlite:///n.db"\n')
    subprocess.run([sys.executable, "-m", "newsletter", "init"], cwd=tmp_path, check=True,
                   capture_output=True)  # fmt: skip
    code = (
        "import json, sys\n"
        "from newsletter.cli import main\n"
        "try:\n"
        "    main(['subscriber', 'list', '--limit', '5', '--search', 'x'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert "newsletter.subscribers.listing" in loaded
    unwanted = ("sqlalchemy.orm", "pydantic", "email_validator", "newsletter.store.models",
                "newsletter.subscribers.service", "alembic")  # fmt: skip
    assert not [m for m in loaded if any(m == u or m.startswith(u + ".") for u in unwanted)]


def test_the_core_tables_name_columns_the_models_have() -> None:
    from newsletter.store import subscribers
    from newsletter.store.models import Base

    for core in (subscribers.subscribers, subscribers.lists, subscribers.memberships):
        model = Base.metadata.tables[core.name]
        assert set(core.c.keys()) <= set(model.c.keys()), core.name
