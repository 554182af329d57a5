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

from newsletter.compose import PreparedIssue, Recipient, inline_css, prepare_issue

from .samples import ADA, RECIPIENTS

SEND_TIME = datetime(2026, 3, 12, 9, 30, 15, tzinfo=UTC)
# Names the standard library itself cannot round-trip are left out of the comparison: more
# than one encoded-word (its parser keeps the space between them), or a literal "=?" (it
# writes it in a quoted string, which its parser then decodes). test_compose_checklist
# reads those names back exactly.
SHORT_NAMES = [r for r in RECIPIENTS if len(r.name.encode()) < 45 and "=?" not in r.name]


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def reference(prepared: PreparedIssue, r: Recipient, settings) -> EmailMessage:
    """The message as the standard library builds it (EmailMessage + set_content)."""
    sender, base = settings.sender, settings.site.base_url
    msg = EmailMessage()
    msg["From"] = Address(sender.from_name, addr_spec=sender.from_address)
    local, domain = prepared.envelope_recipient(r).split("@")
    msg["To"] = Address(" ".join(r.name.split()), local, domain)
    msg["Subject"] = prepared.content.subject
    msg["Date"] = formatdate(SEND_TIME.timestamp(), usegmt=True)
    msg["Message-ID"] = prepared.message_id(r)
    msg["Reply-To"] = sender.reply_to
    msg["List-Id"] = "Field Notes <field-notes.fieldnotes.example.com>"
    msg["List-Unsubscribe"] = (
        f"<{base}/unsubscribe/{r.token}>, "
        f"<mailto:{settings.sending.unsubscribe_mailto}?subject=unsubscribe-{r.token}>"
    )
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Precedence"] = "bulk"
    msg["Feedback-ID"] = settings.sending.feedback_id
    msg.set_content(prepared.text_for(r), cte="quoted-printable")
    msg.add_alternative(prepared.html_for(r), subtype="html", cte="quoted-printable")
    return msg


@pytest.mark.parametrize("r", SHORT_NAMES, ids=lambda r: f"subscriber{r.subscriber_id}")
@pytest.mark.parametrize("kind", ["post", "digest"])
def test_fast_path_equals_the_standard_library(kind, r, prepared, prepared_digest, settings):
    issue = prepared if kind == "post" else prepared_digest
    fast = parse(issue.message_bytes(r, date=SEND_TIME))
    ref = parse(reference(issue, r, settings).as_bytes(policy=email.policy.SMTP))

    assert sorted(fast.keys()) == sorted(ref.keys())
    for name in ref:
        if name == "Content-Type":
            continue  # the boundary differs
        assert " ".join(str(fast[name]).split()) == " ".join(str(ref[name]).split()), name
    assert fast.get_content_type() == ref.get_content_type() == "multipart/alternative"
    for got, want in zip(fast.iter_parts(), ref.iter_parts(), strict=True):
        assert got.get_content_type() == want.get_content_type()
        assert got.get_content_charset() == want.get_content_charset() == "utf-8"
        assert got["Content-Transfer-Encoding"] == want["Content-Transfer-Encoding"]
        assert got.get_content().replace("\r\n", "\n") == want.get_content().replace("\r\n", "\n")


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
