"""`newsletter sequence …` on a real database: creating, steps and their files, the counts,
refusals in one line (no daemon here: tests/sequences/test_sequence_daemon.py sends)."""

from __future__ import annotations

import json

import pytest

from newsletter.sequences.steps import in_window
from tests.sequences.conftest import FOLLOW_UP, WELCOME, step_file


def _show(cli, name: str = "welcome") -> dict:
    return json.loads(cli.ok("sequence", "show", name, "--json").stdout)


def test_create_add_steps_and_show(cli, tmp_path) -> None:
    cli.ok("list", "create", "blog")
    out = cli.ok("sequence", "create", "welcome", "--list", "blog")
    assert "trigger confirm" in out.stdout
    cli.ok("sequence", "step", "add", "welcome", str(step_file(tmp_path, "1.md", WELCOME)),
           "--after", "0s")  # fmt: skip
    cli.ok("sequence", "step", "add", "welcome", str(step_file(tmp_path, "2.md", FOLLOW_UP)),
           "--after", "3d", "--window", "09:00-17:00")  # fmt: skip
    shown = _show(cli)
    assert shown["list"] == "blog" and shown["trigger"] == "confirm"
    assert shown["status"] == "active" and shown["enrolled"] == 0
    assert [(s["step"], s["after"], s["window"]) for s in shown["steps"]] == [
        (1, "0s", None),
        (2, "3d", "09:00-17:00"),
    ]
    assert shown["steps"][0]["subject"] == "Welcome, here are my five best essays"
    assert {k for k in shown["steps"][0]} >= {"waiting", "sent", "skipped", "failed", "clicks"}
    listed = json.loads(cli.ok("sequence", "ls", "--json").stdout)
    assert [(s["name"], s["steps"]) for s in listed] == [("welcome", 2)]
    # The steps' issues are not the marketer's issues.
    assert json.loads(cli.ok("issue", "ls", "--json").stdout) == []

    # Admin-added readers: enrolled only when asked.
    cli.ok("subscriber", "add", "quiet@example.com", "--list", "blog")
    out = cli.ok("subscriber", "add", "new@example.com", "--list", "blog", "--trigger-sequences")
    assert "Started 1 sequence" in out.stdout
    assert _show(cli)["enrolled"] == 1 and _show(cli)["steps"][0]["waiting"] == 1
    out = cli.ok("sequence", "enrol", "welcome", "quiet@example.com", "new@example.com")
    assert "Enrolled 1 reader" in out.stdout  # new@ was in already: keeps their place
    assert _show(cli)["enrolled"] == 2

    # Edit and remove; the step file's new text is what readers who have not had it get.
    step_file(tmp_path, "2.md", FOLLOW_UP.replace("A follow-up", "A second note"))
    cli.ok("sequence", "step", "edit", "welcome", "2", "--after", "2d")
    assert _show(cli)["steps"][1]["subject"] == "A follow-up, three days later"
    cli.ok("sequence", "step", "edit", "welcome", "2")
    assert _show(cli)["steps"][1]["subject"] == "A second note, three days later"
    assert _show(cli)["steps"][1]["after"] == "2d"
    preview = tmp_path / "preview"
    out = cli.ok("sequence", "preview", "welcome", "1", "--out", str(preview))
    html = next(preview.glob("*.html")).read_text()
    assert "five best essays" in html and "pricing essay" in html
    cli.ok("sequence", "step", "rm", "welcome", "2")
    assert [s["step"] for s in _show(cli)["steps"]] == [1]
    assert cli("sequence", "step", "rm", "welcome", "2").exit_code == 1
    cli.ok("sequence", "pause", "welcome")
    assert _show(cli)["status"] == "paused"
    cli.ok("sequence", "resume", "welcome")
    assert _show(cli)["status"] == "active"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("no front matter at all\n", "no front matter"),
        ("---\nsubject: [unclosed\n---\nbody\n", "invalid front matter"),
        ("---\npreheader: only\n---\nbody\n", "no 'subject'"),
        ("---\nsubject: Hi\ncolour: red\n---\nbody\n", "unknown front matter key 'colour'"),
        ("---\nsubject: Hi\ntemplate: missing\n---\nbody\n", "missing"),
        ("---\nsubject: Hi\ntemplate: ../../etc/passwd\n---\nbody\n", "not a template name"),
        ("---\nsubject: Hi\n", "not closed"),
    ],
)
def test_a_bad_step_file_is_one_line_and_changes_nothing(cli, tmp_path, text, says) -> None:
    cli.ok("list", "create", "blog")
    cli.ok("sequence", "create", "welcome", "--list", "blog")
    cli.ok("sequence", "step", "add", "welcome", str(step_file(tmp_path, "1.md", WELCOME)),
           "--after", "0s")  # fmt: skip
    before = _show(cli)
    result = cli("sequence", "step", "add", "welcome", str(step_file(tmp_path, "b.md", text)),
                 "--after", "1d")  # fmt: skip
    assert result.exit_code == 1, result.stdout
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    edit = cli("sequence", "step", "edit", "welcome", "1", str(tmp_path / "b.md"))
    assert edit.exit_code == 1 and says in edit.stderr
    assert _show(cli) == before


def test_a_custom_template_from_the_templates_folder(cli, tmp_path) -> None:
    templates = tmp_path / "templates" / "email"
    templates.mkdir(parents=True)
    (templates / "welcome.html").write_text(
        "<html><body><h1>WELCOME TEMPLATE {{ issue.subject }}</h1>{{ post.html|safe }}"
        "{{ unsubscribe_url }}</body></html>"
    )
    (templates / "welcome.txt").write_text("WELCOME {{ issue.subject }} {{ unsubscribe_url }}")
    cli.config.write_text(
        cli.config.read_text() + f'\n[templates]\ndir = "{tmp_path / "templates"}"\n'
    )
    cli.ok("list", "create", "blog")
    cli.ok("sequence", "create", "welcome", "--list", "blog")
    text = WELCOME.replace("preheader:", "template: welcome\npreheader:")
    cli.ok("sequence", "step", "add", "welcome", str(step_file(tmp_path, "1.md", text)),
           "--after", "0s")  # fmt: skip
    cli.ok("sequence", "preview", "welcome", "1", "--out", str(tmp_path / "p"))
    assert "WELCOME TEMPLATE" in next((tmp_path / "p").glob("*.html")).read_text()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["sequence", "create", "x", "--list", "nope"], "nope"),
        (["sequence", "create", "x", "--list", "blog", "--trigger", "birthday"], "--trigger"),
        (["sequence", "create", "bad name!", "--list", "blog"], "sequence name"),
        (["sequence", "show", "nope"], "no sequence named 'nope'"),
        (["sequence", "step", "add", "welcome", "missing.md", "--after", "0s"], "missing.md"),
        (["sequence", "step", "add", "welcome", "x.md", "--after", "soon"], "--after"),
        (["sequence", "step", "add", "welcome", "x.md", "--after", "1d", "--window", "9-5"],
         "--window"),
    ],
)  # fmt: skip
def test_refusals_are_one_line(cli, args, says) -> None:
    cli.ok("list", "create", "blog")
    cli.ok("sequence", "create", "welcome", "--list", "blog")
    result = cli(*args)
    assert result.exit_code == 1 and says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_send_windows_in_the_readers_hours() -> None:
    from datetime import UTC, datetime

    # 07:00 UTC is 16:00 in Tokyo: inside 09:00-17:00 there, now.
    at = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    assert in_window("09:00-17:00", "Asia/Tokyo", at) == at
    # 09:00 in Stockholm (summer, UTC+2) is 07:00 UTC: 03:00 in New York waits for 09:00 there.
    assert in_window("09:00-17:00", "America/New_York", at) == datetime(
        2026, 6, 1, 13, 0, tzinfo=UTC
    )
    # After the window closes: the next day's opening.
    late = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # 18:00 in Stockholm
    assert in_window("09:00-17:00", "Europe/Stockholm", late) == datetime(
        2026, 6, 2, 7, 0, tzinfo=UTC
    )
    # A window over midnight.
    assert in_window("22:00-06:00", "UTC", datetime(2026, 6, 1, 23, 0, tzinfo=UTC)).hour == 23
    assert in_window("22:00-06:00", "UTC", late) == datetime(2026, 6, 1, 22, 0, tzinfo=UTC)
