"""Issues to part of a list, through the real CLI, a real aiosmtpd server and, for clicks, the
real redirector: segments and --where, exclusions, the plan, resends to who did not click."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import insert, select

from newsletter.store.models import Issue, Subscriber, TrackingEvent, utcnow
from tests.conftest import FIXTURES
from tests.delivery.test_send_issue import smtp_config
from tests.web.test_tracking import BROWSER, clicks_when, tracked_links

from .conftest import import_people, tag

POST = FIXTURES / "posts" / "pricing-per-seat.md"
CUSTOMERS = ["ada@example.com", "bo@example.com", "cy@gmail.com", "di@googlemail.com"]
OTHERS = ["eve@example.org", "fay@example.org"]


def seeded(cli, tmp_path) -> None:
    """Six on the list "blog" (four customers, one of them churned), two on "staff" (one of
    them a customer), and a post."""
    import_people(cli, tmp_path, [{"email": e} for e in CUSTOMERS + OTHERS], list_name="blog")
    import_people(cli, tmp_path, [{"email": "bo@example.com"}, {"email": "zed@example.com"}],
                  list_name="staff")  # fmt: skip
    tag(cli.config, {"customer": CUSTOMERS, "churned": ["cy@gmail.com"]})
    cli.ok("post", "add", str(POST))


def last_issue(cli) -> int:
    return max(i["id"] for i in json.loads(cli.ok("issue", "ls", "--json").stdout))


def plan(cli, issue_id: int) -> dict:
    return json.loads(cli.ok("issue", "plan", str(issue_id), "--json").stdout)


def test_where_reaches_exactly_that_set_and_exclusions_remove_more(
    cli, smtp_server, tmp_path
) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    seeded(cli, tmp_path)
    where = "tag:customer and not tag:churned"
    out = cli.ok("issue", "create", "--latest", "--list", "blog", "--where", where).stdout
    assert "3 active recipients now" in out
    cli.ok("issue", "create", "--latest", "--list", "blog", "--where", where,
           "--exclude-list", "staff")  # fmt: skip
    assert json.loads(cli.ok("issue", "show", "1", "--json").stdout)["audience"] == 3
    assert json.loads(cli.ok("issue", "show", "2", "--json").stdout)["audience"] == 2

    cli.ok("issue", "send", "1")
    first = set(server.handler.recipients())
    assert first == {"ada@example.com", "bo@example.com", "di@googlemail.com"}
    server.handler.messages.clear()
    cli.ok("subscriber", "unsubscribe", "ada@example.com")  # meanwhile: never again
    cli.ok("issue", "send", "2")
    assert server.handler.recipients() == ["di@googlemail.com"]


def test_a_segment_is_read_when_sending_starts(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    seeded(cli, tmp_path)
    cli.ok("segment", "create", "churned", "tag:churned")
    cli.ok("issue", "create", "--latest", "--list", "blog", "--exclude-segment", "churned",
           "--where", "tag:customer")  # fmt: skip
    tag(cli.config, {"churned": ["ada@example.com"]})  # after the issue was made
    cli.ok("issue", "send", "1")
    assert sorted(server.handler.recipients()) == ["bo@example.com", "di@googlemail.com"]


def test_plan_counts_who_gets_it_and_who_is_left_out(cli, tmp_path) -> None:
    seeded(cli, tmp_path)
    import_people(cli, tmp_path, [{"email": "new@example.com"}], list_name="blog")
    cli.ok("subscriber", "unsubscribe", "eve@example.org")
    cli.ok("segment", "create", "loyal", "tag:customer and not tag:churned")
    cli.ok("issue", "create", "--latest", "--list", "blog", "--segment", "loyal",
           "--exclude-list", "staff")  # fmt: skip
    found = plan(cli, 1)
    assert found["issue"] == 1 and found["recipients"] == 2
    assert found["excluded"] == {
        "suppressed": 1, "unconfirmed": 0, "not_matching": 3, "exclusions": 1,
        "preferences": 0,
    }  # fmt: skip
    assert found["by_list"] == {"blog": 2}
    assert found["by_domain"] == {"example.com": 1, "google": 1}
    assert sorted(found["sample"]) == ["ada@example.com", "di@googlemail.com"]
    assert found["estimated_seconds"] is None and found["warnings"] == []
    assert json.loads(cli.ok("issue", "show", "1", "--json").stdout)["audience"] == 2
    text = cli.ok("issue", "plan", "1").stdout
    assert "Issue 1: 2 recipients" in text and "no rate limit" in text

    config = cli.config.read_text()
    cli.config.write_text(config + "\n[sending]\nrate_per_second = 2\nrate_per_hour = 3600\n")
    assert plan(cli, 1)["estimated_seconds"] == 2.0  # the stricter: 1 a second


def test_plan_warns_when_clicks_name_no_reader(cli, tmp_path) -> None:
    seeded(cli, tmp_path)
    cli.ok("issue", "create", "--latest", "--where", "clicked_within:30d")
    result = cli.ok("issue", "plan", "1")
    assert "Warning: clicked:, opened: and clicked_within: match nobody" in result.stderr
    assert result.stderr.count("\n") == 1 and "Issue 1: 0 recipients" in result.stdout


def test_resend_to_non_clickers_after_real_clicks(web) -> None:
    site = web(tracking={"per_subscriber": True})
    readers = [f"reader{i}@example.com" for i in range(4)]
    for address in readers:
        site.cli.ok("subscriber", "add", address, "--list", "blog")
    first = site.seed_issue()
    site.send_issue(first)
    for address in readers[:2]:  # two of them click, as people do
        link = tracked_links(site, site.wait_for_mails(address)[0])[1]
        site.http.get(link, headers={"User-Agent": BROWSER})
    clicks_when(site, first, lambda c: c["unique"] == 2)
    site.cli.ok("subscriber", "unsubscribe", readers[3])  # meanwhile: never again

    out = site.cli.ok("issue", "create", "--resend-of", str(first), "--to", "non-clickers",
                      "--subject", "In case you missed it").stdout  # fmt: skip
    assert "1 active recipients now" in out
    resend = last_issue(site.cli)
    assert plan(site.cli, resend)["sample"] == [readers[2]]
    before = len(site.smtp.handler.messages)
    site.send_issue(resend)
    again = site.smtp.handler.messages[before:]
    assert [m.rcpt_tos for m in again] == [[readers[2]]]
    assert "In case you missed it" in again[0].content.decode()
    issues = {i["id"]: i for i in json.loads(site.cli.ok("issue", "ls", "--json").stdout)}
    assert issues[resend]["post_ids"] == issues[first]["post_ids"]
    assert issues[resend]["audience_rule"] == {"resend_of": first, "to": "non-clickers"}


def test_resend_to_non_openers_and_clicked_with_stored_events(cli, tmp_path, engine) -> None:
    """The same rule from events written straight into the store (opens, machines)."""
    import_people(cli, tmp_path, [{"email": f"r{i}@example.com"} for i in range(4)],
                  list_name="blog")  # fmt: skip
    cli.config.write_text(cli.config.read_text() + "\n[tracking]\nper_subscriber = true\n"
                          "opens = true\n[sending]\ntransport = \"maildir\"\n"
                          f"maildir_path = \"{tmp_path / 'out'}\"\n")  # fmt: skip
    cli.ok("post", "add", str(POST))
    cli.ok("issue", "create", "--latest", "--list", "blog")
    cli.ok("issue", "send", "1")
    with engine.begin() as conn:
        ids = dict(conn.execute(select(Subscriber.email, Subscriber.id)).all())
        conn.execute(insert(TrackingEvent), [
            {"issue_id": 1, "kind": "open", "machine": "", "subscriber_id": ids["r0@example.com"]},
            {"issue_id": 1, "kind": "click", "machine": "", "subscriber_id": ids["r1@example.com"]},
            {"issue_id": 1, "kind": "open", "machine": "user_agent",
             "subscriber_id": ids["r2@example.com"]},
        ])  # fmt: skip
    cli.ok("issue", "create", "--resend-of", "1", "--to", "non-openers")
    assert sorted(plan(cli, 2)["sample"]) == ["r1@example.com", "r2@example.com", "r3@example.com"]
    cli.ok("segment", "create", "clickers", "clicked:1 or opened:1")
    shown = json.loads(cli.ok("segment", "show", "clickers", "--json").stdout)
    assert sorted(shown["sample"]) == ["r0@example.com", "r1@example.com"]


def test_resend_to_not_delivered(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    import_people(cli, tmp_path, [{"email": e} for e in [*OTHERS, "gus@example.org"]],
                  list_name="blog")  # fmt: skip
    cli.ok("post", "add", str(POST))
    cli.ok("issue", "create", "--latest", "--list", "blog")
    server.handler.inject("RCPT", "fay@example.org", *["452 4.2.2 Mailbox full"] * 3)
    server.handler.inject("RCPT", "gus@example.org", "550 5.1.1 No such user")
    assert "1 failed, 1 bounced" in cli.ok("issue", "send", "1").stdout
    cli.ok("issue", "create", "--resend-of", "1", "--to", "not-delivered")
    server.handler.messages.clear()
    cli.ok("issue", "send", "2")
    assert server.handler.recipients() == ["fay@example.org"]  # not the bounced address


def test_resend_after_is_scheduled_from_when_the_first_finished(cli, tmp_path, engine) -> None:
    import_people(cli, tmp_path, [{"email": "a@example.com"}], list_name="blog")
    cli.config.write_text(cli.config.read_text() + "\n[sending]\ntransport = \"maildir\"\n"
                          f"maildir_path = \"{tmp_path / 'out'}\"\n")  # fmt: skip
    cli.ok("post", "add", str(POST))
    cli.ok("issue", "create", "--latest", "--list", "blog")
    never = cli("issue", "create", "--resend-of", "1", "--to", "not-delivered")
    assert never.exit_code == 1 and "issue 1 was never sent" in never.stderr
    cli.ok("issue", "send", "1")
    refused = cli("issue", "create", "--resend-of", "1", "--to", "non-clickers")
    assert refused.exit_code == 1 and "needs [tracking] per_subscriber = true" in refused.stderr
    out = cli.ok("issue", "create", "--resend-of", "1", "--to", "not-delivered", "--after", "3d")
    assert "Created scheduled issue 2" in out.stdout
    with engine.connect() as conn:
        finished = conn.scalar(select(Issue.finished_at).where(Issue.id == 1))
        scheduled = conn.scalar(select(Issue.scheduled_at).where(Issue.id == 2))
    assert scheduled == finished + timedelta(days=3)
    with engine.begin() as conn:  # a first issue that finished long ago: now
        conn.execute(Issue.__table__.update().where(Issue.id == 1)
                     .values(finished_at=utcnow() - timedelta(days=30)))  # fmt: skip
    cli.ok("issue", "create", "--resend-of", "1", "--to", "not-delivered", "--after", "3d")
    with engine.connect() as conn:
        scheduled = conn.scalar(select(Issue.scheduled_at).where(Issue.id == 3))
    assert abs(scheduled - utcnow()) < timedelta(minutes=1)
    bad = cli("issue", "create", "--resend-of", "1", "--to", "everyone")
    assert bad.exit_code == 1 and "--to must be one of" in bad.stderr
    mixed = cli("issue", "create", "--latest", "--after", "3d")
    assert mixed.exit_code == 1 and "--after is for resends" in mixed.stderr


def test_a_mailchimp_export_with_tags_and_where(cli, smtp_server, tmp_path) -> None:
    """The acceptance as a marketer does it: Mailchimp's export with TAGS "customer, vip" and
    churned, through `subscriber import`, then `--where` and `--exclude-list`."""
    server = smtp_server()
    smtp_config(cli, server)
    cli.ok("list", "create", "blog")
    cli.ok("list", "create", "staff")
    cli.ok("subscriber", "import", str(FIXTURES / "import" / "mailchimp_tags.csv"),
           "--list", "blog")  # fmt: skip
    customers = {
        p["email"]
        for p in json.loads(cli.ok("subscriber", "list", "--tag", "customer", "--json").stdout)
    }
    assert customers == {"cus@example.com", "both@example.com"}
    cli.ok("subscriber", "add", "cus@example.com", "--list", "staff")
    cli.ok("post", "add", str(POST))
    where = "tag:customer and not tag:churned"
    cli.ok("issue", "create", "--latest", "--list", "blog", "--where", where)
    cli.ok("issue", "send", "1")
    assert server.handler.recipients() == ["cus@example.com"]
    cli.ok("issue", "create", "--latest", "--list", "blog", "--where", "tag:vip",
           "--exclude-list", "staff")  # fmt: skip
    server.handler.messages.clear()
    cli.ok("issue", "send", "2")
    assert server.handler.recipients() == ["shout@example.com"]
