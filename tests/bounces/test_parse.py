"""Reading bounce messages: the real-world-shaped fixtures, the kind rules, odd input."""

from __future__ import annotations

import pytest

from newsletter.bounces.parse import (
    failure_kind,
    find_reply,
    find_status,
    our_message_id,
    parse_report,
)

from .conftest import fixture

# fixture: (category, format, [(kind, recipient, status, action)], original Message-ID)
EXPECTED = {
    "postfix_user_unknown.eml": (
        "bounce", "dsn", [("hard", "dana.moved@example.org", "5.1.1", "failed")],
        "<3.42.9f2c4e1ab7d05c36@example.com>",
    ),
    "exim_failed_recipients.eml": (
        "bounce", "non-standard", [("hard", "erik.gone@example.net", "5.1.1", "failed")],
        "<3.57.0c81f5be6a2d94e7@example.com>",
    ),
    "gmail_no_such_user.eml": (
        "bounce", "dsn", [("hard", "frida.nobody@example.com", "5.1.1", "failed")],
        "<3.63.e4a7d2c91b08f356@example.com>",
    ),
    "outlook_recipient_not_found.eml": (
        "bounce", "dsn", [("hard", "gustav.left@example.com", "5.1.10", "failed")],
        "<3.64.7b1e0d94c3a2f856@example.com>",
    ),
    "postfix_delayed.eml": (
        "bounce", "dsn", [("soft", "hanna.full@example.net", "4.2.2", "delayed")],
        "<3.71.2d6f0b8e4a1c97e3@example.com>",
    ),
    "arf_yahoo_abuse.eml": (
        "complaint", "arf", [("complaint", "ingrid.annoyed@example.com", "", "abuse")],
        "<3.88.5c3b9a7e1d0f2468@example.com>",
    ),
    "arf_hotmail_redacted.eml": (
        "complaint", "arf", [("complaint", "", "", "abuse")],
        "<3.93.a1b2c3d4e5f60718@example.com>",
    ),
    "qmail_failure_notice.eml": (  # no DSN, no X-Failed-Recipients: flufl.bounce's qmail
        "bounce", "non-standard", [("hard", "lars.missing@example.net", "5.1.1", "failed")],
        "<3.120.4b3a29180f7e6d5c@example.com>",
    ),
    "malformed_dsn_verp.eml": ("bounce", "dsn", [("hard", "", "5.1.1", "failed")], ""),
    "out_of_office.eml": ("other", "auto-reply", [], ""),
    "human_reply.eml": ("other", "not-a-bounce", [], ""),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_reads_as_expected(name: str) -> None:
    category, fmt, failures, original_mid = EXPECTED[name]
    report = parse_report(fixture(name))
    assert (report.category, report.format) == (category, fmt), report.reason
    assert [(f.kind, f.recipient, f.status, f.action) for f in report.failures] == failures
    assert report.original_message_id == original_mid
    if name != "qmail_failure_notice.eml":  # qmail-send adds no Message-ID
        assert report.key == report.message_id and report.message_id.startswith("<")
    else:
        assert report.key.startswith("sha256:") and report.message_id == ""
    assert report.date is not None and report.date.tzinfo is not None
    assert "Subject:" in report.headers


@pytest.mark.parametrize(
    "name",
    [n for n in sorted(EXPECTED) if not n.startswith("arf_hotmail")],
)
def test_the_verp_address_is_found_where_the_report_came_back_to(name: str) -> None:
    report = parse_report(fixture(name))
    assert any(a.startswith("bounces+") for a in report.envelope_to), report.envelope_to


def test_a_complaint_names_the_sender_it_complains_about() -> None:
    # ARF reports go to the feedback-loop address; the original sender is in the report.
    report = parse_report(fixture("arf_hotmail_redacted.eml"))
    assert "bounces+2u-a7nd3ky5tq2wx6cm@news.example.com" in report.envelope_to
    assert report.failures[0].diagnostic.startswith("spam complaint via Hotmail FBL")


def test_diagnostics_are_one_readable_line() -> None:
    gmail = parse_report(fixture("gmail_no_such_user.eml")).failures[0]
    assert gmail.diagnostic.startswith("smtp; 550-5.1.1 The email account")
    assert "\n" not in gmail.diagnostic
    exim = parse_report(fixture("exim_failed_recipients.eml")).failures[0]
    assert "550 5.1.1" in exim.diagnostic and "User unknown" in exim.diagnostic
    malformed = parse_report(fixture("malformed_dsn_verp.eml")).failures[0]
    assert malformed.diagnostic == "Reason: 550 5.1.1 mailbox unavailable (account disabled)"


@pytest.mark.parametrize(
    ("action", "status", "reply", "kind"),
    [
        ("failed", "5.1.1", None, "hard"),
        ("failed", "5.1.10", None, "hard"),
        ("failed", "5.2.1", None, "hard"),  # mailbox disabled
        ("failed", "5.0.0", None, "hard"),
        ("failed", "5.2.2", None, "soft"),  # mailbox full
        ("failed", "5.3.4", None, "soft"),  # message too big
        ("failed", "5.7.1", None, "soft"),  # policy: not about the address
        ("failed", "5.6.0", None, "soft"),
        ("failed", "4.4.7", None, "soft"),  # gave up after retrying
        ("delayed", "4.2.2", None, "soft"),
        ("delayed", "5.1.1", None, "soft"),
        ("Failed (bad mailbox)", "5.1.1", None, "hard"),
        ("", "5.1.1", None, "hard"),
        ("failed", "", 550, "hard"),
        ("failed", "", 452, "soft"),
        ("failed", "", None, "soft"),
        ("delivered", "2.0.0", None, None),
        ("relayed", "2.0.0", None, None),
        ("expanded", "2.0.0", None, None),
    ],
)
def test_failure_kind(action: str, status: str, reply: int | None, kind: str | None) -> None:
    assert failure_kind(action, status, reply) == kind


def test_codes_are_found_in_text_but_not_in_addresses_or_versions() -> None:
    assert find_status("host said: 550 5.1.1 <a@example.com>: unknown") == "5.1.1"
    assert find_status("host [10.4.2.2] said: 552 5.2.2 full") == "5.2.2"
    assert find_status("Exim 4.96.2 on 192.0.2.1") == ""
    assert find_reply("smtp; 550-5.1.1 gone") == 550
    assert find_reply("no code here 2026") is None


def test_our_message_ids_name_the_issue_and_subscriber() -> None:
    assert our_message_id("<3.42.9f2c4e1ab7d05c36@example.com>") == (3, 42)
    assert our_message_id("<CAF8s2=k3Jd9@mail.example.org>") is None
    assert our_message_id("<3.42.nothex@example.com>") is None


def test_a_dsn_reporting_only_successes_is_not_a_bounce() -> None:
    raw = fixture("postfix_user_unknown.eml")
    raw = raw.replace(b"Action: failed", b"Action: relayed").replace(
        b"Status: 5.1.1", b"Status: 2.0.0"
    )
    report = parse_report(raw)
    assert report.category == "other" and report.failures == ()


def test_a_policy_rejection_in_a_dsn_is_soft() -> None:
    raw = fixture("outlook_recipient_not_found.eml").replace(b"5.1.10", b"5.7.1")
    assert parse_report(raw).failures[0].kind == "soft"


def test_other_feedback_types_are_not_complaints() -> None:
    raw = fixture("arf_yahoo_abuse.eml").replace(
        b"Feedback-Type: abuse", b"Feedback-Type: not-spam"
    )
    report = parse_report(raw)
    assert report.category == "other" and "not-spam" in report.reason


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x00",
        b"Subject: hello\r\n\r\nno bounce here",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n",
        b"From: MAILER-DAEMON@example.net\r\nSubject: \xff\xfe\r\n\r\n\xc3\x28 550 5.1.1 \x00",
    ],
)
def test_garbage_never_raises(raw: bytes) -> None:
    report = parse_report(raw)
    assert report.key
    for f in report.failures:
        assert "\x00" not in f.diagnostic
    assert "\x00" not in report.headers


def test_a_message_without_message_id_gets_a_stable_key() -> None:
    raw = fixture("postfix_user_unknown.eml").replace(b"Message-Id:", b"X-Was-Message-Id:")
    first, second = parse_report(raw), parse_report(raw)
    assert first.key == second.key and first.key.startswith("sha256:")
