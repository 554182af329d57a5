"""Recording reports against a really sent issue: matching (VERP, Message-ID, address), the
rules, the delivery rows, the events. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select

from newsletter.bounces import issue_counts, parse_report
from newsletter.bounces.record import Recorded, record_report
from newsletter.bounces.verp import codec_for
from newsletter.config import BounceSettings
from newsletter.store.models import Bounce, Delivery, Subscriber, utcnow

from .conftest import SentIssue, fixture, retarget

PLAIN = "bounces@news.example.com"


def record(
    sent: SentIssue, raw: bytes, *, now: datetime | None = None, rules: BounceSettings | None = None
) -> Recorded:
    with sent.sessions() as session, session.begin():
        codec = codec_for(sent.settings, session)
        return record_report(
            session, parse_report(raw), rules=rules or sent.settings.bounces, codec=codec,
            source="test", now=now,
        )  # fmt: skip


def person(sent: SentIssue, address: str) -> dict:
    return json.loads(sent.cli.ok("subscriber", "show", address, "--json").stdout)


def delivery_of(sent: SentIssue, address: str) -> Delivery:
    with sent.sessions() as session:
        return session.scalars(
            select(Delivery)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == address)
        ).one()


def bounce_of(sent: SentIssue, raw: bytes, address: str, **kw) -> bytes:
    """``raw`` retargeted at the message ``address`` got, through its VERP address."""
    m = sent.messages[address]
    return retarget(raw, verp=m.mail_from, rcpt=address, message_id=m.message_id, **kw)


def test_every_message_went_out_with_its_own_verp_sender(sent_issue: SentIssue) -> None:
    senders = {m.mail_from for m in sent_issue.messages.values()}
    assert len(senders) == len(sent_issue.emails) == 6
    with sent_issue.sessions() as session, session.begin():
        codec = codec_for(sent_issue.settings, session)
        assert codec is not None
        for address, m in sent_issue.messages.items():
            d = session.get(Delivery, codec.decode(m.mail_from))
            assert d is not None and d.issue_id == 1 and d.message_id == m.message_id
            assert session.get(Subscriber, d.subscriber_id).email == address


def test_hard_bounce_through_verp(sent_issue: SentIssue) -> None:
    sent, victim = sent_issue, sent_issue.emails[0]
    result = record(sent, bounce_of(sent, fixture("postfix_user_unknown.eml"), victim))
    assert result.outcome == "recorded" and result.kinds == ["hard"]
    assert [(c.email, c.status) for c in result.changes] == [(victim, "bounced")]
    info = person(sent, victim)
    assert info["status"] == "bounced"
    event = info["events"][-1]
    assert (event["kind"], event["source"]) == ("bounced", "dsn")
    assert event["detail"]["status"] == "5.1.1" and event["detail"]["issue"] == 1
    assert event["detail"]["matched_by"] == "verp"
    assert "User unknown" in event["detail"]["diagnostic"]
    assert event["detail"]["rule"] == "1 hard bounce(s), limit 1"
    d = delivery_of(sent, victim)
    assert (d.status, d.last_code, d.last_enhanced) == ("bounced", 550, "5.1.1")
    with sent.sessions() as session:
        assert issue_counts(session, 1) == {"hard": 1, "soft": 0, "complaint": 0}
    show = json.loads(sent.cli.ok("issue", "show", "1", "--json").stdout)
    assert show["deliveries"]["bounced"] == 1 and show["deliveries"]["sent"] == 5
    # The same report again (a crash before the mailbox was marked) is not counted twice.
    again = bounce_of(sent, fixture("postfix_user_unknown.eml"), victim)
    assert record(sent, again).outcome == "recorded"  # a new report: counted, no change
    with sent.sessions() as session:
        key = session.scalars(select(Bounce.report_key)).first()
    raw = again.replace(parse_report(again).message_id.encode(), key.encode())
    assert record(sent, raw).outcome == "duplicate"


def test_malformed_dsn_is_resolved_through_verp(sent_issue: SentIssue) -> None:
    sent, victim = sent_issue, sent_issue.emails[1]
    raw = retarget(fixture("malformed_dsn_verp.eml"), verp=sent.messages[victim].mail_from)
    result = record(sent, raw)
    assert result.kinds == ["hard"] and result.unmatched == 0
    assert person(sent, victim)["status"] == "bounced"
    with sent.sessions() as session:
        b = session.scalars(select(Bounce)).one()
        assert (b.recipient, b.matched_by, b.status) == (victim, "verp", "5.1.1")


def test_without_verp_the_original_message_id_decides(sent_issue: SentIssue) -> None:
    sent, victim = sent_issue, sent_issue.emails[2]
    m = sent.messages[victim]
    raw = retarget(fixture("outlook_recipient_not_found.eml"), verp=PLAIN,
                   rcpt="someone.else@example.org", message_id=m.message_id)  # fmt: skip
    assert record(sent, raw).kinds == ["hard"]
    assert person(sent, victim)["status"] == "bounced"
    with sent.sessions() as session:
        b = session.scalars(select(Bounce)).one()
        assert (b.matched_by, b.issue_id) == ("message-id", 1)
    # A Message-ID of our shape that we did not send (forged digest) matches nothing.
    forged = m.message_id.replace(m.message_id.split(".")[2][:4], "0000")
    raw = retarget(fixture("postfix_user_unknown.eml"), verp=PLAIN,
                   rcpt="nobody@example.org", message_id=forged)  # fmt: skip
    assert record(sent, raw).unmatched == 1


def test_without_verp_or_message_id_the_final_recipient_decides(sent_issue: SentIssue) -> None:
    sent, victim = sent_issue, sent_issue.emails[3]
    raw = retarget(fixture("gmail_no_such_user.eml"), verp=PLAIN, rcpt=victim.upper(),
                   message_id="<unknown@elsewhere.example.net>")  # fmt: skip
    result = record(sent, raw)
    assert result.kinds == ["hard"] and person(sent, victim)["status"] == "bounced"
    with sent.sessions() as session:
        b = session.scalars(select(Bounce)).one()
        assert (b.matched_by, b.delivery_id, b.issue_id) == ("recipient", None, None)


def test_a_non_standard_bounce_names_the_address(sent_issue: SentIssue) -> None:
    sent, victim = sent_issue, sent_issue.emails[4]
    raw = retarget(fixture("qmail_failure_notice.eml"), verp=PLAIN, rcpt=victim,
                   message_id="<unknown@elsewhere.example.net>")  # fmt: skip
    assert record(sent, raw).kinds == ["hard"]
    assert person(sent, victim)["status"] == "bounced"
    # The returned copy carries the Message-ID: the delivery is found through it.
    m = sent.messages[sent.emails[5]]
    raw = retarget(fixture("qmail_failure_notice.eml"), verp=PLAIN, rcpt="x@example.org",
                   message_id=m.message_id)  # fmt: skip
    record(sent, raw)
    assert person(sent, sent.emails[5])["status"] == "bounced"


def test_a_forged_token_for_an_unknown_address_changes_nothing(sent_issue: SentIssue) -> None:
    sent = sent_issue
    real = sent.messages[sent.emails[0]].mail_from
    forged = real.replace(real.split("-")[1][:4], "aaaa")
    raw = retarget(fixture("postfix_user_unknown.eml"), verp=forged, rcpt="x@example.org",
                   message_id="<nope@example.org>")  # fmt: skip
    result = record(sent, raw)
    assert result.unmatched == 1 and result.changes == []
    assert all(person(sent, e)["status"] == "active" for e in sent.emails)
    rows = json.loads(sent.cli.ok("bounces", "ls", "--json").stdout)
    assert [(r["email"], r["matched_by"], r["subscriber_id"]) for r in rows] == [
        ("x@example.org", "", None)
    ]


def test_soft_bounces_count_distinct_messages_within_the_window(sent_issue: SentIssue) -> None:
    sent = sent_issue
    delayed = fixture("postfix_delayed.eml")
    now = utcnow()
    # Three "still retrying" notices about one message: one soft bounce, still active.
    one = sent.emails[0]
    for _ in range(3):
        assert record(sent, bounce_of(sent, delayed, one), now=now).kinds == ["soft"]
    info = person(sent, one)
    assert info["status"] == "active"
    assert [e["kind"] for e in info["events"]][-3:] == ["bounce"] * 3
    assert delivery_of(sent, one).status == "sent"  # a delay is not a failure
    # Three soft bounces of three messages (known only by address): the third suppresses.
    three = sent.emails[1]
    for i in range(3):
        raw = retarget(delayed, verp=PLAIN, rcpt=three, message_id=f"<old{i}@example.org>")
        record(sent, raw, now=now)
    info = person(sent, three)
    assert info["status"] == "bounced"
    assert info["events"][-1]["detail"]["rule"] == "3 soft bounces in 30 days, limit 3"
    # Two of three are older than the window: still active.
    late = sent.emails[2]
    for i, age in enumerate((45, 40, 0)):
        raw = retarget(delayed, verp=PLAIN, rcpt=late, message_id=f"<late{i}@example.org>")
        record(sent, raw, now=now - timedelta(days=age))
    assert person(sent, late)["status"] == "active"


def test_a_final_soft_failure_marks_the_delivery_failed(sent_issue: SentIssue) -> None:
    sent, victim = sent_issue, sent_issue.emails[4]
    raw = fixture("postfix_user_unknown.eml").replace(b"5.1.1", b"5.2.2")
    assert record(sent, bounce_of(sent, raw, victim)).kinds == ["soft"]
    assert delivery_of(sent, victim).status == "failed"
    assert person(sent, victim)["status"] == "active"


def test_complaints(sent_issue: SentIssue) -> None:
    sent = sent_issue
    angry, patient = sent.emails[0], sent.emails[1]
    result = record(sent, bounce_of(sent, fixture("arf_yahoo_abuse.eml"), angry))
    assert result.kinds == ["complaint"]
    info = person(sent, angry)
    assert info["status"] == "complained"
    assert info["events"][-1]["kind"] == "complained" and info["events"][-1]["source"] == "arf"
    assert delivery_of(sent, angry).status == "sent"  # it was delivered, and reported
    # Hotmail redacts the recipient: the Original-Mail-From VERP address still names them.
    lenient = BounceSettings(complaint_limit=2)
    raw = retarget(fixture("arf_hotmail_redacted.eml"), verp=sent.messages[patient].mail_from)
    record(sent, raw, rules=lenient)
    assert person(sent, patient)["status"] == "active"
    assert person(sent, patient)["events"][-1]["kind"] == "complaint"
    # The same message reported again is still one complaint; another message makes two.
    record(sent, raw.replace(b"JMRP.8f7e", b"JMRP.9f7e"), rules=lenient)
    assert person(sent, patient)["status"] == "active"
    other = retarget(fixture("arf_yahoo_abuse.eml"), verp=PLAIN, rcpt=patient,
                     message_id="<an-older-issue@example.com>")  # fmt: skip
    record(sent, other, rules=lenient)
    assert person(sent, patient)["status"] == "complained"


def test_suppressed_people_keep_their_status_but_get_the_history(sent_issue: SentIssue) -> None:
    sent, gone = sent_issue, sent_issue.emails[5]
    sent.cli.ok("subscriber", "unsubscribe", gone)
    result = record(sent, bounce_of(sent, fixture("postfix_user_unknown.eml"), gone))
    assert result.changes == []
    info = person(sent, gone)
    assert info["status"] == "unsubscribed" and info["events"][-1]["kind"] == "bounce"
    # A complaint is stronger than an unsubscription.
    record(sent, bounce_of(sent, fixture("arf_yahoo_abuse.eml"), gone))
    assert person(sent, gone)["status"] == "complained"


def test_auto_replies_and_human_replies_are_ignored(sent_issue: SentIssue) -> None:
    sent, reader = sent_issue, sent_issue.emails[0]
    for name in ("out_of_office.eml", "human_reply.eml"):
        assert record(sent, bounce_of(sent, fixture(name), reader)).outcome == "ignored"
    assert person(sent, reader)["status"] == "active"
    assert json.loads(sent.cli.ok("bounces", "ls", "--json").stdout) == []


def test_erasing_a_person_erases_their_bounces(sent_issue: SentIssue) -> None:
    sent, victim, other = sent_issue, sent_issue.emails[0], sent_issue.emails[1]
    record(sent, bounce_of(sent, fixture("postfix_user_unknown.eml"), victim))
    sent.cli.ok("subscriber", "erase", victim, "--yes")
    assert json.loads(sent.cli.ok("bounces", "ls", "--json").stdout) == []
    # Reports that arrive after the erasure keep the count, not the address.
    record(sent, bounce_of(sent, fixture("gmail_no_such_user.eml"), victim))
    sent.cli.ok("subscriber", "erase", other, "--yes")
    raw = retarget(fixture("postfix_delayed.eml"), verp=PLAIN, rcpt=other,
                   message_id="<gone@example.org>")  # fmt: skip
    record(sent, raw)
    rows = json.loads(sent.cli.ok("bounces", "ls", "--json").stdout)
    assert [(r["kind"], r["email"], r["diagnostic"], r["issue_id"]) for r in rows] == [
        ("soft", "", "", None), ("hard", "", "", 1),
    ]  # fmt: skip
    with sent.sessions() as session:
        assert all(b.headers == "" for b in session.scalars(select(Bounce)))
        assert issue_counts(session, 1)["hard"] == 1
