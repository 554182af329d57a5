"""Every header line of the mail we generate (issues on the per-recipient fast path, the
double opt-in confirmation) within the RFC limits: lines of at most 78 characters (RFC 5322
2.1.1; only a lone token that cannot be folded, an address or a <URI>, may be longer, never
over 998), encoded-words of at most 75 (RFC 2047 2), with long, non-ASCII, quoted and
comma-laden names and long subjects; and the standard library's parser reads back exactly
the display name, the address and the subject that went in."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest

from newsletter.compose import IssueContent, PostView, PreparedIssue, Recipient, prepare_issue
from newsletter.compose.mime import MAX_NAME_LENGTH, clean_name
from newsletter.content.text import clean_line
from newsletter.subscribers.optin import ConfirmationMail
from newsletter.web.mail import confirmation_message

from .samples import RECIPIENTS, make_settings

SEND_TIME = datetime(2026, 3, 12, 9, 30, 15, tzinfo=UTC)

LONG_NAMES = {
    "ascii-200": ("Ada Lovelace Byron King " * 9)[:200],
    "non-ascii-200": ("Åsa Öberg-Ñúñez " * 13)[:200],
    "quotes-commas-200": ('Lovelace, Ada "the Countess" (analyst), ' * 6)[:200],
    "backslashes": 'C:\\Users\\ada "Ada \\"AL\\" Lovelace", PhD',
    "spanish": "José María García López de la Vega y Montenegro Fernández de Córdoba Ruiz",
    "cyrillic": "Александр Сергеевич Пушкин",
    "cjk-no-spaces": "山田太郎" * 50,
    "one-long-word": "x" * 200,
    "emoji": "Zoë 🦊 " * 40,
    "encoded-word-lookalikes": "=?utf-8?q?=0D=0ABcc:_x@example.net?= " * 6,
}
NAMES = {**{f"sample{r.subscriber_id}": r.name for r in RECIPIENTS}, **LONG_NAMES}
LONG_SUBJECTS = {
    "ascii": "We changed our pricing three times, and here is what each change taught us "
    "about our customers, our product, our sales team and ourselves (a long read, sorry)",
    "non-ascii": "Prissättning, onboarding och support: tre essäer från april — och vad "
    "varje förändring lärde oss om kunderna, produkten och säljteamet 🦊",
    "long-first-word": "https://fieldnotes.example.com/essays/pricing-three-times-and-what-"
    "each-change-taught-us is our new essay",
    "encoded-word-lookalike": "Eve =?utf-8?q?=0D=0ABcc=3A_victim=40example=2Ecom?= " * 3,
    "cjk": "価格を三回変えました。それぞれの変更から学んだこと" * 5,
}
SENDER = {
    "from_name": "Måja Lindqvist — Fältanteckningar om prissättning, onboarding och support",
    "from_address": "maja@fieldnotes.example.com",
    "reply_to": '"Field Notes, the replies desk of Maja Lindqvist and the editors" '
    "<replies@fieldnotes.example.com>",
}
SITE = {"name": "Field Notes — essays on pricing, onboarding and support for B2B founders"}

ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
ADJACENT_ENCODED_WORDS = re.compile(r"\?=\s+=\?")
# An over-long line may only be one token that cannot be folded (RFC 2369 forbids spaces
# in a <URI>; an addr-spec or a msg-id has no place for one): "Header: token" or " token".
UNFOLDABLE = re.compile(rb'(?:[!-9;-~]+:)? (?:<[^<>\s]+>,?|[^<>"\s]+@[^<>"\s]+)')


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def _python_keeps_the_space_between_encoded_words() -> bool:
    """True while the standard library's address parser keeps the whitespace between two
    encoded-words of a display name, which RFC 2047 (6.2) and mail clients drop (CPython
    gh-128110; Python 3.11 has it)."""
    probe = parse(b"To: =?utf-8?q?a?= =?utf-8?q?b?= <x@example.com>\r\n\r\n")
    return probe["To"].addresses[0].display_name == "a b"


KEEPS_SPACE = _python_keeps_the_space_between_encoded_words()


def header_blocks(data: bytes) -> list[bytes]:
    """The message's header block and those of its MIME parts."""
    head, body = data.split(b"\r\n\r\n", 1)
    boundary = re.search(rb'boundary="([^"]+)"', head).group(1)
    parts = body.split(b"--" + boundary + b"\r\n")[1:]
    return [head] + [part.split(b"\r\n\r\n", 1)[0] for part in parts]


def field(head: bytes, name: str) -> str:
    """The raw value of header ``name`` in ``head``, unfolded (RFC 5322 2.2.3)."""
    match = re.search(rb"(?:^|\r\n)" + name.encode() + rb":(.*?)(?=\r\n(?! )|$)", head, re.S)
    assert match, name
    return match.group(1).replace(b"\r\n", b"").decode("utf-8").strip()


def assert_within_limits(data: bytes, *, smtputf8: bool = False) -> None:
    for block in header_blocks(data):
        if not smtputf8:
            assert block.isascii(), block
        lines = block.split(b"\r\n")
        assert not lines[0].startswith((b" ", b"\t"))
        for line in lines:
            assert line.strip(), block  # no line of only whitespace
            assert len(line) <= 998, line
            if len(line) > 78:
                assert UNFOLDABLE.fullmatch(line), line
        for word in ENCODED_WORD.findall(block.replace(b"\r\n ", b" ")):
            assert len(word) <= 75, word
            assert word.startswith(b"=?utf-8?"), word


def assert_name_reads_back(raw: str, parsed: str, expected: str) -> None:
    """``parsed`` (the standard library's display name) is ``expected`` exactly, except for
    the whitespace a Python with gh-128110 keeps between adjacent encoded-words; then the
    RFC 2047 reading of the raw field must be exact and no character may differ."""
    if parsed == expected:
        return
    phrase = raw.rpartition(" <")[0]
    assert KEEPS_SPACE and ADJACENT_ENCODED_WORDS.search(phrase), (parsed, expected)
    assert str(make_header(decode_header(phrase))) == expected
    assert "".join(parsed.split()) == "".join(expected.split())


def assert_address(msg: EmailMessage, head: bytes, header: str, name: str, addr: str) -> None:
    (address,) = msg[header].addresses
    assert address.addr_spec == addr
    assert "=?" not in address.addr_spec
    assert_name_reads_back(field(head, header), address.display_name, name)


def _post() -> PostView:
    return PostView(
        title="Pricing",
        url="https://fieldnotes.example.com/essays/pricing",
        html="<p>Our first price was a guess, the second a reaction, the third a decision.</p>",
        summary="",
        published_at=None,
    )


def _recipient(name: str, email_address: str = "reader@example.org") -> Recipient:
    return Recipient(subscriber_id=5, email=email_address, name=name, token="Qm9vdHN0cmFwVG9r")


@pytest.fixture(scope="module")
def long_issue() -> PreparedIssue:
    """A post with a long subject from a sender with a long name, on a long-named site."""
    settings = make_settings(sender=SENDER, site=SITE)
    content = IssueContent(
        issue_id=42, kind="post", subject=LONG_SUBJECTS["non-ascii"], preheader="", posts=(_post(),)
    )
    return prepare_issue(content, settings)


@pytest.mark.parametrize("key", NAMES)
def test_issue_headers_are_within_the_limits_and_read_back(long_issue, key):
    name = NAMES[key]
    r = _recipient(name)
    data = long_issue.message_bytes(r, date=SEND_TIME)
    assert_within_limits(data)
    msg = parse(data)
    assert not msg.defects
    for header in msg:
        assert not msg[header].defects, header
    head = header_blocks(data)[0]

    assert_address(msg, head, "To", clean_name(name), "reader@example.org")
    assert_address(msg, head, "From", clean_line(SENDER["from_name"]), SENDER["from_address"])
    assert_address(
        msg,
        head,
        "Reply-To",
        "Field Notes, the replies desk of Maja Lindqvist and the editors",
        "replies@fieldnotes.example.com",
    )
    assert str(msg["Subject"]) == clean_line(LONG_SUBJECTS["non-ascii"])
    list_id = field(head, "List-Id")
    assert list_id.endswith(
        "<field-notes-essays-on-pricing-onboarding-and-support-for-b2b-"
        "founders.fieldnotes.example.com>"
    )
    assert str(msg["List-Id"]).startswith("Field Notes — essays on pricing")
    uris = re.findall(r"<([^<>\s]+)>", field(head, "List-Unsubscribe"))
    assert uris == [
        f"https://fieldnotes.example.com/unsubscribe/{r.token}?issue={long_issue.issue_id}",
        f"mailto:unsubscribe@fieldnotes.example.com?subject=unsubscribe-{r.token}",
    ]


def test_names_are_kept_whole_up_to_the_stored_length(long_issue):
    """A 200-character name (as long as the store keeps) reaches the header whole."""
    name = LONG_NAMES["non-ascii-200"]
    assert len(clean_name(name)) == len(name.strip()) <= MAX_NAME_LENGTH
    msg = parse(long_issue.message_bytes(_recipient(name)))
    assert "".join(msg["To"].addresses[0].display_name.split()) == "".join(name.split())


def test_smtputf8_recipient_headers_are_within_the_limits(long_issue):
    """A non-ASCII local part: the To line is raw UTF-8 (RFC 6532), folded by octets."""
    for name in (*LONG_NAMES.values(), "Åsa"):
        r = _recipient(name, "åsa@bücher.example")
        data = long_issue.message_bytes(r, date=SEND_TIME)
        assert_within_limits(data, smtputf8=True)
        msg = email.message_from_string(data.decode("utf-8"), policy=email.policy.default)
        head = data.split(b"\r\n\r\n", 1)[0]
        assert_address(msg, head, "To", clean_name(name), "åsa@xn--bcher-kva.example")
        if "=?" in name:  # a quoted string that looks like an encoded-word is not sent
            assert '"=?' not in field(head, "To")


@pytest.mark.parametrize("key", LONG_SUBJECTS)
def test_long_subjects_are_within_the_limits_and_read_back(key):
    content = IssueContent(
        issue_id=7, kind="post", subject=LONG_SUBJECTS[key], preheader="", posts=(_post(),)
    )
    prepared = prepare_issue(content, make_settings())
    data = prepared.message_bytes(RECIPIENTS[0], date=SEND_TIME)
    assert_within_limits(data)
    msg = parse(data)
    assert str(msg["Subject"]) == clean_line(LONG_SUBJECTS[key])
    assert not msg["Subject"].defects


def test_long_domains_fold_message_id_and_list_unsubscribe_between_items():
    domain = "newsletters.a-rather-long-subdomain.fieldnotes.example.com"
    settings = make_settings(
        sender={"from_address": f"maja@{domain}"},
        sending={"unsubscribe_mailto": f"unsubscribe@{domain}"},
    )
    content = IssueContent(issue_id=42, kind="post", subject="s", preheader="", posts=(_post(),))
    prepared = prepare_issue(content, settings)
    r = RECIPIENTS[0]
    data = prepared.message_bytes(r, date=SEND_TIME)
    assert_within_limits(data)
    head = header_blocks(data)[0]
    assert f"\r\nMessage-ID:\r\n {prepared.message_id(r)}\r\n".encode() in head
    assert b"\r\nList-Unsubscribe:\r\n <https://fieldnotes.example.com/unsubscribe/" in head
    assert f">,\r\n <mailto:unsubscribe@{domain}?subject=unsubscribe-".encode() in head
    msg = parse(data)
    assert msg["Message-ID"].strip() == prepared.message_id(r)
    assert msg["List-Unsubscribe"].strip() == (
        f"<https://fieldnotes.example.com/unsubscribe/{r.token}?issue={prepared.issue_id}>, "
        f"<mailto:unsubscribe@{domain}?subject=unsubscribe-{r.token}>"
    )


@pytest.mark.parametrize("key", NAMES)
def test_confirmation_headers_are_within_the_limits_and_read_back(key):
    domain = "newsletters.a-rather-long-subdomain.fieldnotes.example.com"
    settings = make_settings(sender={**SENDER, "from_address": f"maja@{domain}"}, site=SITE)
    name = NAMES[key]
    mail = ConfirmationMail(confirmation_id=1, email="ada@example.org", name=name, token="t" * 32)
    data = confirmation_message(
        settings,
        mail,
        confirm_url="https://fieldnotes.example.com/confirm/" + "t" * 32,
        now=SEND_TIME,
    )
    assert_within_limits(data)
    msg = parse(data)
    assert not msg.defects
    head = header_blocks(data)[0]
    assert_address(msg, head, "To", clean_name(name), "ada@example.org")
    assert_address(msg, head, "From", clean_line(SENDER["from_name"]), f"maja@{domain}")
    assert str(msg["Subject"]) == f"Confirm your subscription to {SITE['name']}"
    assert re.fullmatch(rf"<c[0-9a-f]{{32}}@{re.escape(domain)}>", msg["Message-ID"].strip())
