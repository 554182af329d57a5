"""No header can be injected through a subscriber's name or address, the subject, or the
sender's name: CR, LF and other control characters never reach a header."""

from __future__ import annotations

import copy
import email
import email.policy
import re

import msgspec
import pytest

from newsletter.compose import IssueContent, PreparedIssue, Recipient, prepare_issue
from newsletter.errors import ConfigError, InvalidEmailError

from .samples import ADA, make_settings

EVIL = [
    "Eve\r\nBcc: victim@example.com",
    "Eve\nBcc: victim@example.com",
    "Eve\rBcc: victim@example.com",
    "Eve\r\n\r\n<h1>body</h1>",
    "Eve\x00\x0b\x0c\x1c\x85Bcc: victim@example.com",
    "Eve\u2028Bcc: victim@example.com\u2029",
    "Eve =?utf-8?q?=0D=0ABcc=3A_victim=40example=2Ecom?=",
    'Eve" <victim@example.com>, "Mallory',
]


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    return [line.split(":", 1)[0] for line in head.split("\r\n") if not line.startswith(" ")]


def check_clean(data: bytes, baseline: bytes) -> email.message.EmailMessage:
    assert header_names(data) == header_names(baseline)
    assert b"\r\nBcc:" not in data.split(b"\r\n\r\n", 1)[0]
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert "Bcc" not in msg
    assert len(msg["To"].addresses) == 1
    return msg  # type: ignore[return-value]


@pytest.mark.parametrize("name", EVIL)
def test_recipient_name_cannot_inject_a_header(prepared: PreparedIssue, name: str):
    r = Recipient(subscriber_id=1, email="eve@example.org", name=name, token="tok1")
    msg = check_clean(prepared.message_bytes(r), prepared.message_bytes(ADA))
    assert msg["To"].addresses[0].addr_spec == "eve@example.org"
    assert "\n" not in msg["To"].addresses[0].display_name
    assert "Hi Eve" in prepared.text_for(r)


@pytest.mark.parametrize("subject", EVIL)
def test_subject_cannot_inject_a_header(post_issue: IssueContent, settings, subject: str):
    content = IssueContent(
        issue_id=1, kind="post", subject=subject, preheader="", posts=post_issue.posts
    )
    prepared = prepare_issue(content, settings)
    msg = check_clean(prepared.message_bytes(ADA), prepared.message_bytes(ADA))
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    assert msg["Subject"].startswith("Eve")


@pytest.mark.parametrize("from_name", EVIL)
def test_sender_name_cannot_inject_a_header(post_issue, prepared, from_name: str):
    """The config refuses such a name when it is read; and should one reach the composer
    anyway (settings made in code, unvalidated), the header stays one clean line."""
    if any(ch in from_name for ch in "\r\n\x00\x85\u2028"):  # a control or a line break
        with pytest.raises(ConfigError, match=r"sender\.from_name"):
            make_settings(sender={"from_name": from_name})
    settings = make_settings()
    sender = copy.copy(settings.sender)
    msgspec.structs.force_setattr(sender, "from_name", from_name)  # past the config's checks
    injected = prepare_issue(post_issue, msgspec.structs.replace(settings, sender=sender))
    msg = check_clean(injected.message_bytes(ADA), prepared.message_bytes(ADA))
    assert len(msg["From"].addresses) == 1
    assert msg["From"].addresses[0].addr_spec == "maja@fieldnotes.example.com"


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.org\r\nBcc: victim@example.com",
        "ada@example.org>, <victim@example.com",
        "ada @example.org",
        "ada@",
        "@example.org",
        "no-at-sign",
        "ada@exa\x00mple.org",
    ],
)
def test_unusable_address_is_refused(prepared: PreparedIssue, address: str):
    r = Recipient(subscriber_id=1, email=address, name="Ada", token="tok1")
    with pytest.raises(InvalidEmailError, match=re.escape(repr(address))):
        prepared.message_bytes(r)
    with pytest.raises(InvalidEmailError):
        prepared.envelope_recipient(r)
