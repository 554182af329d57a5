"""The fast path (pieces encoded once, joined per recipient) against the standard library,
and the promise that CSS is inlined once per issue, not per recipient."""

from __future__ import annotations

import email
import email.policy
import pickle
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

import pytest

from newsletter.compose import IssueContent, PreparedIssue, Recipient, inline_css, prepare_issue
from newsletter.compose.mime import clean_name

from .samples import ADA, RECIPIENTS
from .test_header_lines import LONG_NAMES, LONG_SUBJECTS, assert_name_reads_back, field

SEND_TIME = datetime(2026, 3, 12, 9, 30, 15, tzinfo=UTC)
# The samples and long names: 200 characters, non-ASCII, quotes and commas, one long word.
NAMES = [
    *RECIPIENTS,
    *(
        Recipient(subscriber_id=100 + i, email=f"long{i}@example.org", name=name, token=f"t{i}x")
        for i, name in enumerate(LONG_NAMES.values())
    ),
]
ADDRESS_HEADERS = ("From", "To", "Reply-To")


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


@pytest.fixture
def prepared_long_subject(post_issue, settings) -> PreparedIssue:
    content = IssueContent(
        issue_id=44,
        kind="post",
        subject=LONG_SUBJECTS["non-ascii"],
        preheader="",
        posts=post_issue.posts,
    )
    return prepare_issue(content, settings)


def reference(prepared: PreparedIssue, r: Recipient, settings) -> EmailMessage:
    """The headers as the standard library holds them (EmailMessage, not serialised)."""
    sender, base = settings.sender, settings.site.base_url
    msg = EmailMessage()
    msg["From"] = Address(sender.from_name, addr_spec=sender.from_address)
    local, domain = prepared.envelope_recipient(r).split("@")
    msg["To"] = Address(clean_name(r.name), local, domain)
    msg["Subject"] = prepared.content.subject
    msg["Date"] = formatdate(SEND_TIME.timestamp(), usegmt=True)
    msg["Message-ID"] = prepared.message_id(r)
    msg["Reply-To"] = sender.reply_to
    msg["List-Id"] = "Field Notes <field-notes.fieldnotes.example.com>"
    msg["List-Unsubscribe"] = (
        f"<{base}/unsubscribe/{r.token}?issue={prepared.issue_id}>, "
        f"<mailto:{settings.sending.unsubscribe_mailto}?subject=unsubscribe-{r.token}>"
    )
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Precedence"] = "bulk"
    msg["Feedback-ID"] = settings.sending.feedback_id
    return msg


def reference_parts(prepared: PreparedIssue, r: Recipient) -> EmailMessage:
    """The parts as the standard library serialises and parses them (set_content and
    add_alternative, no headers: Python 3.11.7 writes the CR LF an encoded-word in a display
    name hides back out, which would cut its message short)."""
    msg = EmailMessage()
    msg.set_content(prepared.text_for(r), cte="quoted-printable")
    msg.add_alternative(prepared.html_for(r), subtype="html", cte="quoted-printable")
    return parse(msg.as_bytes(policy=email.policy.SMTP))


@pytest.mark.parametrize("r", NAMES, ids=lambda r: f"subscriber{r.subscriber_id}")
@pytest.mark.parametrize("kind", ["post", "digest", "long-subject"])
def test_fast_path_equals_the_standard_library(
    kind, r, prepared, prepared_digest, prepared_long_subject, settings
):
    issues = {"post": prepared, "digest": prepared_digest, "long-subject": prepared_long_subject}
    issue = issues[kind]
    data = issue.message_bytes(r, date=SEND_TIME)
    fast = parse(data)
    # Headers: against the values the standard library holds for what we set, since its
    # own folding cannot carry long or non-ASCII names (it splits a word between two
    # encoded-words, or reads back a name it wrote with "=?" in a quoted string).
    want = reference(issue, r, settings)
    ref = reference_parts(issue, r)

    assert sorted(fast.keys()) == sorted([*want.keys(), "MIME-Version", "Content-Type"])
    assert fast["MIME-Version"] == ref["MIME-Version"] == "1.0"
    head = data.split(b"\r\n\r\n", 1)[0]
    for name in want:
        if name in ADDRESS_HEADERS:
            (got,), (expected,) = fast[name].addresses, want[name].addresses
            assert got.addr_spec == expected.addr_spec, name
            assert_name_reads_back(field(head, name), got.display_name, expected.display_name)
            continue
        assert " ".join(str(fast[name]).split()) == " ".join(str(want[name]).split()), name
    assert fast.get_content_type() == ref.get_content_type() == "multipart/alternative"
    for part, ref_part in zip(fast.iter_parts(), ref.iter_parts(), strict=True):
        assert part.get_content_type() == ref_part.get_content_type()
        assert part.get_content_charset() == ref_part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == ref_part["Content-Transfer-Encoding"]
        text = part.get_content().replace("\r\n", "\n")
        assert text == ref_part.get_content().replace("\r\n", "\n")


def test_previews_are_what_the_message_carries(prepared: PreparedIssue):
    for r in RECIPIENTS:
        text, html = parse(prepared.message_bytes(r)).iter_parts()
        assert text.get_content().replace("\r\n", "\n") == prepared.text_for(r)
        assert html.get_content().replace("\r\n", "\n") == prepared.html_for(r)


class CountingInliner:
    """Our inliner with a call counter (a real wrapper, not a mock)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, html: str) -> str:
        self.calls += 1
        return inline_css(html)


def test_css_is_inlined_once_per_issue_not_per_recipient(post_issue, settings):
    inliner = CountingInliner()
    prepared = prepare_issue(post_issue, settings, inliner=inliner)
    assert inliner.calls == 1

    recipients = [
        Recipient(subscriber_id=i, email=f"r{i}@example.com", name=f"Reader {i}", token=f"t{i}")
        for i in range(500)
    ]
    for r in recipients:
        prepared.message_bytes(r)
        prepared.html_for(r)
    assert inliner.calls == 1
    assert 'class="card" style="' in prepared.html_for(ADA)  # the inlined HTML is what is sent


def test_prepared_issue_survives_pickling(prepared: PreparedIssue):
    """Worker processes can receive a prepared issue instead of preparing it again."""
    copy = pickle.loads(pickle.dumps(prepared))
    assert copy.message_bytes(ADA, date=SEND_TIME) == prepared.message_bytes(ADA, date=SEND_TIME)
