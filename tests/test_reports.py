"""The reports: `issue report --out` (one HTML file that opens offline, drawn in headless
Chromium), `stats [--json] [--out]`, and the engagement lines of `issue show`, on rows
written straight into a real SQLite file or PostgreSQL.

The seeded data (``seed``): five subscribers over two ISO weeks; issue 1 sent to four of
them (three delivered, one bounced), clicked by people and by machines, two unsubscribes;
issue 2 sent to two, nobody clicked; issue 3 a draft.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from newsletter.reports.issue import by_hour
from newsletter.reports.stats import weekly
from newsletter.store import connect, session_factory
from newsletter.store.models import (
    Delivery,
    Issue,
    IssueLink,
    Subscriber,
    SubscriberEvent,
    TrackingEvent,
    Unsubscribe,
)
from tests.conftest import Cli
from tests.web.browser import Chromium, chromium_path

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday: ISO week 2026-W49
SUBJECT = 'Prices <b>per seat</b> & "$5" plans'
LINK = "https://example.com/pricing?plan=team&seats=5#faq"
SCRIPT_LINK = "javascript:alert(1)"


def seed(url: str) -> None:
    engine = connect(url)
    try:
        with session_factory(engine)() as s, s.begin():
            people = []
            for i in range(5):
                joined = T0 - timedelta(days=7) + timedelta(days=i * 2)  # W48 x4, W49 x1
                people.append(Subscriber(
                    email=f"p{i}@example.com", email_key=f"p{i}@example.com",
                    status="active", created_at=joined,
                    confirmed_at=joined + timedelta(hours=1) if i < 3 else None,
                ))  # fmt: skip
            s.add_all(people)
            s.flush()
            s.add_all([
                SubscriberEvent(subscriber_id=people[3].id, kind="unsubscribed",
                                at=T0 + timedelta(days=1)),
                SubscriberEvent(subscriber_id=people[4].id, kind="bounced",
                                at=T0 + timedelta(days=8)),  # W50
                SubscriberEvent(subscriber_id=people[0].id, kind="confirmed", at=T0),  # ignored
            ])  # fmt: skip
            one = Issue(kind="post", subject=SUBJECT, status="sent", started_at=T0,
                        finished_at=T0 + timedelta(minutes=5))  # fmt: skip
            two = Issue(kind="post", subject="Second", status="sent",
                        started_at=T0 + timedelta(days=7))  # fmt: skip
            three = Issue(kind="post", subject="Draft", status="draft")
            s.add_all([one, two, three])
            s.flush()
            statuses = ["sent", "sent", "sent", "bounced"]
            s.add_all(
                Delivery(issue_id=one.id, subscriber_id=p.id, status=st, sent_at=T0,
                         last_code=550 if st == "bounced" else None,
                         last_enhanced="5.1.1" if st == "bounced" else "",
                         last_text="no such user" if st == "bounced" else "")
                for p, st in zip(people, statuses, strict=False)
            )  # fmt: skip
            s.add_all(Delivery(issue_id=two.id, subscriber_id=p.id, status="sent")
                      for p in people[:2])  # fmt: skip
            s.add_all([
                IssueLink(issue_id=one.id, idx=0, url="https://news.example.com/hp"),
                IssueLink(issue_id=one.id, idx=1, url=LINK),
                IssueLink(issue_id=one.id, idx=2, url=SCRIPT_LINK),
            ])  # fmt: skip

            def click(link: int, hours: float, visitor: str, machine: str = "") -> TrackingEvent:
                return TrackingEvent(issue_id=one.id, kind="click", link_idx=link,
                                     at=T0 + timedelta(hours=hours), visitor=visitor,
                                     machine=machine)  # fmt: skip

            s.add_all([
                # people: 4 clicks in 3 messages; one after the first 72 hours
                click(1, 1.5, "v1"), click(1, 2.2, "v1"), click(2, 30, "v2"), click(1, 80, "v3"),
                # machines: a burst just after delivery, a scanner, a HEAD (not a click)
                click(1, 0.01, "v9", "burst"), click(2, 0.01, "v9", "burst"),
                click(0, 0.01, "v9", "burst"), click(1, 5, "v8", "user_agent"),
                click(1, 0.02, "v7", "head"),
            ])  # fmt: skip
            s.add_all([
                Unsubscribe(issue_id=one.id, at=T0 + timedelta(days=1), reason="too_many"),
                Unsubscribe(issue_id=one.id, at=T0 + timedelta(days=1)),
                Unsubscribe(issue_id=None),
            ])  # fmt: skip
    finally:
        engine.dispose()


@pytest.fixture
def seeded(cli: Cli, migrated_url: str) -> Cli:
    seed(migrated_url)
    return cli


# --- the issue's HTML report ---------------------------------------------------------------


class _Refs(HTMLParser):
    """Every tag, and every URL an attribute or a style names."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "poster", "data"):
                self.refs.append((tag, name, value or ""))
            if name == "style":
                self.styles.append(value or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def assert_loads_nothing(html: str) -> _Refs:
    """No scripts, frames, images, external styles or fonts; links only in <a>, inner
    references (#id) only in the charts; no URL in any style."""
    found = _Refs()
    found.feed(html)
    assert not found.tags & {"script", "link", "img", "iframe", "object", "embed", "image",
                             "video", "audio", "source", "base", "form"}  # fmt: skip
    for tag, name, value in found.refs:
        assert (tag == "a" and name == "href") or value.startswith("#"), (tag, name, value)
    assert not [s for s in found.styles if re.search(r"url\(|@import|@font-face", s)]
    outside = {u for u in re.findall(r"https?://[^\s\"'<>]+", html)}
    assert outside <= {"https://news.example.com/hp", LINK.replace("&", "&amp;")}, outside
    return found


def test_issue_report_writes_one_page_that_loads_nothing(seeded: Cli, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = seeded.ok("issue", "report", "1", "--out", str(out))
    assert result.stdout.startswith(f"Wrote {out} (") and result.stdout.endswith(" KB).\n")
    html = out.read_text(encoding="utf-8")
    refs = assert_loads_nothing(html)
    assert html.count("<svg") == 3  # funnel, clicks per hour, people and machines
    # The subject and the URLs are escaped; only an http(s) URL becomes a link.
    assert "Prices &lt;b&gt;per seat&lt;/b&gt; &amp; &#34;$5&#34; plans" in html
    assert "<b>per seat" not in html
    assert ("a", "href", LINK) in refs.refs
    assert SCRIPT_LINK in html and not [r for r in refs.refs if r[2].startswith("javascript")]
    # The figures: sent 4, delivered 3, clicked 3 (by people, distinct messages), 2 left.
    text = re.sub(r"<svg.*?</svg>", "", html, flags=re.DOTALL)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))
    assert "4 sent 3 delivered (75.0% of sent) 3 clicked (75.0% of sent) " in text
    assert "2 unsubscribed (50.0% of sent)" in text
    assert "4 clicks by people (3 unique) 4 clicks by machines" in text
    assert "1 click(s) came later than that." in text
    assert "burst several links of one message" in text
    assert "1 hard bounce(s)" not in text and "0 hard bounce(s)" in text
    assert "1 bounced 550 5.1.1 no such user" in text
    assert "too_many 1" in text


def test_a_report_for_an_issue_not_sent_yet_and_errors(seeded: Cli, tmp_path: Path) -> None:
    out = tmp_path / "draft.html"
    seeded.ok("issue", "report", "3", "--out", str(out))
    html = out.read_text(encoding="utf-8")
    assert_loads_nothing(html)
    assert html.count("<svg") == 1 and "Not sent yet." in html  # the funnel alone
    missing = seeded("issue", "report", "9", "--out", str(out))
    assert (missing.exit_code, missing.stderr) == (1, "Error: no issue with id 9\n")
    nowhere = seeded("issue", "report", "1", "--out", str(tmp_path / "no" / "such.html"))
    assert nowhere.exit_code == 1 and nowhere.stderr.startswith("Error: cannot write ")
    assert "\n" not in nowhere.stderr.rstrip("\n")


def _pixels(path: Path) -> tuple[int, float, set[tuple[int, int, int]]]:
    """(distinct colours, share of pixels that are not white, the colours)."""
    from PIL import Image  # matplotlib's own dependency, so there with the reports extra

    image = Image.open(path).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    total = image.width * image.height
    white = sum(n for n, c in colours if min(c) >= 250)
    return len(colours), 1 - white / total, {c for _, c in colours}


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")
def test_the_reports_open_in_chromium_with_their_charts(seeded: Cli, tmp_path: Path) -> None:
    issue_page, stats_page = tmp_path / "issue.html", tmp_path / "stats.html"
    seeded.ok("issue", "report", "1", "--out", str(issue_page))
    seeded.ok("stats", "--out", str(stats_page))
    profile = tmp_path / "profile"
    profile.mkdir()
    shots = Path(os.environ.get("NEWSLETTER_SCREENSHOTS") or tmp_path / "shots")
    with Chromium.start(profile) as browser:
        pages = ((issue_page, "report-issue", 3, "Clicks over the first 72 hours"),
                 (stats_page, "report-stats", 2, "Click rate per issue"))  # fmt: skip
        for page, name, charts, heading in pages:
            browser.open(page.as_uri())
            assert heading in browser.text()
            # Drawn at their size, and nothing was fetched (no resource besides the page).
            heights = browser.evaluate(
                "[...document.querySelectorAll('figure svg')]"
                ".map(s => s.getBoundingClientRect().height)"
            )
            assert len(heights) == charts and min(heights) > 80, heights
            assert browser.evaluate("performance.getEntriesByType('resource').length") == 0
            shot = shots / f"{name}.png"
            browser.screenshot(shot)
            colours, inked, seen = _pixels(shot)
            assert colours > 100 and inked > 0.05, (name, colours, inked)
            assert (0x2F, 0x6D, 0xB5) in seen  # people's blue, in the charts' bars


# --- stats -----------------------------------------------------------------------------------


def test_stats_json_counts_growth_per_week_and_click_rates(seeded: Cli) -> None:
    data = json.loads(seeded.ok("stats", "--json").stdout)
    weeks = {w["week"]: w for w in data["weeks"]}
    assert weeks["2026-W48"] == {"week": "2026-W48", "starts": "2026-11-23", "new": 4,
                                 "confirmed": 3, "unsubscribed": 0, "bounced": 0}  # fmt: skip
    assert weeks["2026-W49"] == {"week": "2026-W49", "starts": "2026-11-30", "new": 1,
                                 "confirmed": 0, "unsubscribed": 1, "bounced": 0}  # fmt: skip
    assert weeks["2026-W50"]["bounced"] == 1
    assert list(weeks)[:3] == ["2026-W48", "2026-W49", "2026-W50"]  # up to this week, gapless
    starts = [date.fromisoformat(w["starts"]) for w in data["weeks"]]
    assert all(b - a == timedelta(days=7) for a, b in itertools.pairwise(starts))
    assert data["since"] is None
    assert [(i["id"], i["sent"], i["delivered"], i["unique_clicks"], i["click_rate"],
             i["unsubscribes"]) for i in data["issues"]] == [
        (1, 4, 3, 3, 1.0, 2),
        (2, 2, 2, 0, 0.0, 0),
    ]  # fmt: skip
    assert data["issues"][0]["subject"] == SUBJECT
    assert data["issues"][0]["started_at"] == T0.isoformat()

    later = json.loads(seeded.ok("stats", "--json", "--since", "2026-12-01").stdout)
    assert later["since"] == "2026-12-01T00:00:00+00:00"
    assert later["weeks"][0]["week"] == "2026-W49" and later["weeks"][0]["new"] == 1  # 1 Dec
    assert later["weeks"][0]["unsubscribed"] == 1  # on 1 December
    assert [i["id"] for i in later["issues"]] == [2]
    bad = seeded("stats", "--since", "last week")
    assert bad.exit_code == 1
    assert bad.stderr == "Error: --since 'last week' is not an ISO 8601 date\n"


def test_stats_on_an_empty_database(cli: Cli, tmp_path: Path) -> None:
    assert cli.ok("stats").stdout == "No subscribers yet.\n\nNo issue has been sent yet.\n"
    assert json.loads(cli.ok("stats", "--json").stdout) == {
        "since": None, "weeks": [], "issues": []
    }  # fmt: skip
    out = tmp_path / "empty.html"
    cli.ok("stats", "--out", str(out))
    html = out.read_text(encoding="utf-8")
    assert_loads_nothing(html)
    assert "Nothing happened yet." in html and "No issue has been sent yet." in html


def test_stats_text_is_plain_in_a_pipe(seeded: Cli) -> None:
    lines = seeded.ok("stats").stdout.splitlines()
    assert lines[:3] == [
        "week      new  confirmed  unsubscribed  bounced",
        "2026-W48    4          3             0        0",
        "2026-W49    1          0             1        0",
    ]
    gap = lines.index("")
    assert lines[gap + 1 :] == [
        "issue  sent  delivered  clicked    rate  unsubscribed  subject",
        f"    1     4          3        3  100.0%             2  {SUBJECT}",
        "    2     2          2        0    0.0%             0  Second",
    ]


def test_stats_json_with_out_keeps_stdout_json(seeded: Cli, tmp_path: Path) -> None:
    out = tmp_path / "s.html"
    result = seeded.ok("stats", "--json", "--out", str(out))
    assert json.loads(result.stdout)["issues"][0]["id"] == 1
    assert result.stderr.startswith(f"Wrote {out} (")
    assert out.stat().st_size > 10_000


# --- the terminal: issue show -------------------------------------------------------------


def test_issue_show_puts_people_first_and_machines_apart(seeded: Cli) -> None:
    out = seeded.ok("issue", "show", "1").stdout
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("  clicks ")))
    assert lines[start:] == [
        "  clicks    4 (3 unique) by people; 4 by machines (burst 3, user_agent 1); "
        "not counted: head 1",
        "            clicks  unique  link",
        f"                 3       2  {LINK}",
        f"                 1       1  {SCRIPT_LINK}",
        "  unsubscribed 2 (why: too_many 1)",
    ]


def test_issue_show_says_nothing_of_clicks_before_sending(seeded: Cli) -> None:
    assert "clicks" not in seeded.ok("issue", "show", "3").stdout


def test_on_a_terminal_the_rows_are_a_table(seeded: Cli) -> None:
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "120"}
    run = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(seeded.config), "stats"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout)
    assert "─" in plain and "2026-W48" in plain and "Second" in plain


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=120)  # fmt: skip


def test_text_commands_never_import_matplotlib(seeded: Cli, tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from newsletter.cli import main\n"
        f"for args in (['stats'], ['stats', '--json'], ['issue', 'show', '1']):\n"
        "    try:\n"
        f"        main(['--config', {str(seeded.config)!r}, *args])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code in (0, None), exit.code\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    run = _run_python(code, tmp_path)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stderr.strip().splitlines()[-1])
    assert "newsletter.reports.stats" in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("matplotlib", "numpy", "PIL")]


def test_without_the_extra_the_page_commands_say_how_to_install_it(
    seeded: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    for args in (["issue", "report", "1", "--out", str(out)], ["stats", "--out", str(out)]):
        code = (
            "import sys\n"
            "sys.modules['matplotlib'] = None  # as if the reports extra were not installed\n"
            "from newsletter.cli import main\n"
            f"main(['--config', {str(seeded.config)!r}, *{args!r}])\n"
        )
        run = _run_python(code, tmp_path)
        assert (run.returncode, run.stderr) == (
            1, "Error: the HTML reports need matplotlib: pip install 'newsletter[reports]'\n"
        ), args  # fmt: skip
        assert not out.exists()


# --- the pure parts --------------------------------------------------------------------------


def test_by_hour_counts_from_the_start() -> None:
    events = [
        (T0 - timedelta(minutes=1), False),  # a test message before the send: hour 0
        (T0 + timedelta(minutes=59), True),
        (T0 + timedelta(hours=71, minutes=59), False),
        (T0 + timedelta(hours=72), True),  # later
    ]
    people, machines, later = by_hour(events, T0)
    assert (len(people), people[0], people[71], machines[0], later) == (72, 1, 1, 1, 1)
    assert sum(people) == 2 and sum(machines) == 1
    assert by_hour(events, None) == ((0,) * 72, (0,) * 72, 0)


def test_weeks_are_iso_weeks_across_a_new_year() -> None:
    days = {"new": [(date(2026, 12, 31), 2), (date(2027, 1, 4), 1)], "bounced": []}
    weeks = weekly(days, since=None, now=datetime(2027, 1, 12, tzinfo=UTC))
    assert [(w.week, w.new) for w in weeks] == [("2026-W53", 2), ("2027-W01", 1),
                                                ("2027-W02", 0)]  # fmt: skip
    assert weekly({"new": []}, since=None, now=T0) == ()
