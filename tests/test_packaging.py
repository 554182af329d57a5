"""The package as users get it: the wheel's contents, the entry points, the README's commands."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import typer
import typer.main

from newsletter.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_migrations_demo_and_example_config(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("newsletter-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "newsletter/templates/email/base.html",
        "newsletter/templates/email/post.txt",
        "newsletter/templates/email/styles.css",
        "newsletter/store/migrations/env.py",
        "newsletter/store/migrations/script.py.mako",
        "newsletter/store/migrations/versions/0001_subscribers.py",
        "newsletter/demo/feed.xml",
        "newsletter/demo/subscribers.csv",
        "newsletter/config.example.toml",
    ):
        assert required in names, required
    assert not any(n.startswith("tests/") for n in names)


def test_python_dash_m_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "newsletter", "--version"], capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout  # fmt: skip
    assert re.fullmatch(r"newsletter \d+\.\d+\.\d+\n", out)


def _commands() -> dict[tuple[str, ...], object]:
    found = {}

    def walk(cmd, path, ctx):
        found[path] = cmd
        if hasattr(cmd, "list_commands"):  # a group, through its API: the root loads lazily
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), (*path, name), ctx)

    root = typer.main.get_command(app)
    walk(root, (), typer.Context(root))
    return found


def test_every_command_in_the_readme_and_guides_exists_with_its_options() -> None:
    commands = _commands()
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    checked = 0
    for doc in docs:
        for line in doc.read_text(encoding="utf-8").splitlines():
            line = line.strip().removeprefix("$ ")
            if not line.startswith("newsletter ") or "<" in line:
                continue
            words = shlex.split(line.split("  #")[0], comments=True)[1:]
            while words and words[0] == "--config":
                words = words[2:]
            path: tuple[str, ...] = ()
            while words and (*path, words[0]) in commands:
                path = (*path, words.pop(0))
            assert path, f"{doc.name}: unknown command in {line!r}"
            cmd = commands[path]
            options = {o for p in cmd.params for o in getattr(p, "opts", [])}
            for word in words:
                if word.startswith("--"):
                    option = word.split("=")[0]
                    assert option in options | {"--help", "--config"}, (
                        f"{doc.name}: {' '.join(path)} has no option {option} ({line!r})"
                    )
            checked += 1
    assert checked >= 10
