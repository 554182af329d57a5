"""`newsletter demo`, `issue preview` and `issue lint` through the real entry point."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

POSTS = FIXTURES / "posts"


def test_demo_runs_end_to_end_and_its_summary_matches_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "demo", "--dir", str(folder)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "301 subscribers, 3 posts, issue 1 sent to 301 of 301 readers" in proc.stdout
    assert "Lint: 0 errors" in proc.stdout
    delivered = sorted((folder / "outbox" / "new").iterdir(), key=lambda p: p.stat().st_mtime)
    # The issue to 301 readers, then the newcomer's confirmation and welcome emails.
    assert len(delivered) == 301 + 2
    sample = email.message_from_bytes(delivered[0].read_bytes(), policy=email.policy.default)
    assert sample["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    eml = (folder / "preview" / "issue-1.eml").read_bytes()
    msg = email.message_from_bytes(eml, policy=email.policy.default)
    assert msg["Subject"] == "The first hundred customers are a research project"
    assert (folder / "preview" / "issue-1.html").stat().st_size > 5000
    report = (folder / "import-report.csv").read_text(encoding="utf-8").splitlines()
    assert len(report) == 1 + 3  # header + 1 duplicate + 2 rejected
    import re

    unsubscribed = re.search(r"; (\S+@\S+) unsubscribed with one click", proc.stdout).group(1)
    shown = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(folder / "newsletter.toml"),
         "subscriber", "show", unsubscribed, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert '"status": "unsubscribed"' in shown.stdout and "web-one-click" in shown.stdout
    # The demo followed a tracked link as a reader and the report counted it, and the
    # unsubscribe for the issue it came from.
    assert "1 click by a person, 0 by machines, 1 unsubscribed because of this issue" in (
        proc.stdout
    )
    report = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(folder / "newsletter.toml"),
         "issue", "show", "1", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    clicks = json.loads(report.stdout)["clicks"]
    assert clicks["total"] == 1 and clicks["links"][0]["url"].startswith("https://")
    listed = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(folder / "newsletter.toml"),
         "subscriber", "list", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.stdout.count('"email"') == 301 + 1  # and the newcomer
    # The newcomer signed up on the form, confirmed, and the welcome sequence reached them.
    assert "newcomer@example.com signed up on the form and confirmed" in proc.stdout
    last = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in delivered[-2:]]  # fmt: skip
    assert [str(m["To"]) for m in last] == ["newcomer@example.com"] * 2
    assert "confirm" in str(last[0]["Subject"]).lower()
    assert str(last[1]["Subject"]) == "Welcome to Field Notes"
    welcome = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(folder / "newsletter.toml"),
         "sequence", "show", "welcome", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert json.loads(welcome.stdout)["steps"][0]["sent"] == 1
    # A second run starts afresh in the same folder; a folder it did not make is refused.
    again = subprocess.run(
        [sys.executable, "-m", "newsletter", "demo", "--dir", str(folder)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0 and "301 subscribers" in again.stdout
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    refused = subprocess.run(
        [sys.executable, "-m", "newsletter", "demo", "--dir", str(other)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "not a demo folder" in refused.stderr
    assert (other / "keep.txt").read_text() == "precious"


@pytest.fixture
def issue_cli(cli):
    cli.ok("list", "create", "blog")
    cli.ok("subscriber", "add", "ada@example.com", "--name", "Ada", "--list", "blog")
    cli.ok("post", "add", str(POSTS / "pricing-per-seat.md"))
    cli.ok("issue", "create", "--latest", "--list", "blog")
    return cli


def test_preview_writes_html_and_eml_for_a_real_subscriber(issue_cli, tmp_path) -> None:
    out = issue_cli.ok("issue", "preview", "1", "--out", str(tmp_path / "p")).stdout
    assert "personalised for ada@example.com" in out
    msg = email.message_from_bytes(
        (tmp_path / "p" / "issue-1.eml").read_bytes(), policy=email.policy.default
    )
    assert msg["To"] == "Ada <ada@example.com>"
    html = (tmp_path / "p" / "issue-1.html").read_text(encoding="utf-8")
    assert "Hi Ada" in html and "/unsubscribe/" in html


def test_lint_passes_a_good_issue_and_fails_without_postal_address(issue_cli) -> None:
    result = issue_cli("issue", "lint", "1")
    assert result.exit_code == 0, result.stdout
    assert "0 error(s)" in result.stdout
    text = issue_cli.config.read_text().replace('postal_address = "Example Ltd', 'x = "')
    issue_cli.config.write_text(text.replace("x = ", "# x = "))
    result = issue_cli("issue", "lint", "1")
    assert result.exit_code == 1
    assert "error: no postal address" in result.stdout


def test_lint_findings_on_a_bad_message() -> None:
    from newsletter.issues.lint import lint_message

    html = (
        "<html><head><style>p{color:red}</style></head><body>"
        '<p>Hello <img src="http://example.com/a.png"> <a href="/relative">x</a></p>'
        + "<p>" + "word " * 30_000 + "</p></body></html>"
    )  # fmt: skip
    findings = lint_message(
        subject="BUY NOW THIS AMAZING OFFER " * 4,
        html=html,
        text="Hello",
        unsubscribe_url="https://news.example.com/unsubscribe/t",
        postal_address="1 Main St",
    )
    messages = " | ".join(f.message for f in findings)
    for expected in (
        "Gmail clips", "image without alt", "insecure http link in <img src>",
        "relative or odd link in <a href>: /relative", "unsubscribe link is missing",
        "postal address is missing", "subject is 108 characters", "mostly capitals",
        "text part is a stub",
    ):  # fmt: skip
        assert expected in messages


def test_preview_of_unknown_issue(cli) -> None:
    result = cli("issue", "preview", "7")
    assert result.exit_code == 1 and "no issue with id 7" in result.stderr


def test_a_lead_image_that_is_also_in_the_body_is_shown_once() -> None:
    from newsletter.compose import IssueContent, PostView, prepare_issue
    from newsletter.config import settings_from_dict

    img = "https://blog.example.com/img/chart.png"

    def rendered(body: str) -> str:
        post = PostView(title="Charts", url="https://blog.example.com/p", html=body,
                        summary="s", published_at=None, image_url=img)  # fmt: skip
        content = IssueContent(issue_id=1, kind="post", subject="S", preheader="", posts=(post,))
        settings = settings_from_dict({"site": {"base_url": "https://news.example.com"}})
        return prepare_issue(content, settings).html_for(SAMPLE)

    from newsletter.issues.preview import SAMPLE

    assert rendered(f'<p>Look:</p><img src="{img}" alt="A chart">').count(img) == 1
    assert rendered("<p>No picture in the body.</p>").count(img) == 1  # shown as the lead
