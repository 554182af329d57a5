"""Reading one message from the return mailbox: pure, bytes in, a ``Report`` out.

    parse_report(raw) -> Report       never raises; anything unreadable is "other"

What a message is, in this order:

1. A feedback report (RFC 5965 ARF, ``multipart/report; report-type=feedback-report``):
   ``Feedback-Type: abuse`` is a complaint about the original recipient
   (``Original-Rcpt-To``, else the original message's To). Other types (``not-spam``,
   ``auth-failure`` DMARC reports, ``fraud``, ``virus``) are not about the subscriber: "other".
2. A delivery status notification (RFC 3464, ``multipart/report;
   report-type=delivery-status``): one ``Failure`` per recipient block whose Action is
   failed or delayed (see ``failure_kind``). Blocks that say delivered/relayed/expanded are
   not failures; a DSN with only those is "other". A DSN whose status part cannot be read
   (no recipient block) is still a bounce: its kind and code come from the human-readable
   text, and the recipient from the VERP address it was sent to.
3. Anything else is a bounce only with a bounce's marks: an ``X-Failed-Recipients`` header
   (Exim), a sender such as MAILER-DAEMON or postmaster, or a bounce subject on a message
   with an empty return path. Then flufl.bounce (Mailman's detectors for the non-standard
   formats) finds the addresses, and the text gives the status code.
4. Auto-replies (``Auto-Submitted``, ``X-Autoreply``, "Out of Office" / "Automatic reply"
   subjects) and everything else (human replies) are "other": never treated as bounces.

Where the report came from is kept too: the addresses it was delivered to (``envelope_to``:
Delivered-To, X-Original-To, To... and the original message's Return-Path, where a VERP
token is) and the original Message-ID, which together tie it to one delivery.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, message_from_string
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Literal

log = logging.getLogger("newsletter.bounces")

Kind = Literal["hard", "soft", "complaint"]
Category = Literal["bounce", "complaint", "other"]

HEADERS_LIMIT = 2000
"""Characters of the report's header block kept with each bounce."""
TEXT_LIMIT = 20_000
"""Characters of human-readable text searched for codes in a non-standard bounce."""
DIAGNOSTIC_LIMIT = 1000

SOFT_PERMANENT = ("5.2.2", "5.3.4")
"""Permanent (5.x.x) codes that do not mean the address is bad: mailbox full, message too
big. Counted as soft bounces, like the policy (5.7.x) and content (5.6.x) classes."""
SOFT_PERMANENT_CLASSES = ("5.6.", "5.7.")

_ENVELOPE_HEADERS = (
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "X-Delivered-To",
    "X-Rcpt-To",
    "To",
    "Cc",
)
_DAEMONS = frozenset(
    {"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster", "mdaemon", "mail.daemon"}
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery (?:has )?fail|"
    r"failure notice|returned mail|mail delivery|could not be delivered|non.?deliver|"
    r"delivery notification|returning message to sender|mail system error",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"delay|warning|still being retried|not yet been delivered", re.I)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response|"
    r"antwort|svar|risposta)|auto:|abwesenheit|absence|r[ée]ponse automatique|"
    r"respuesta autom[áa]tica|on vacation|vacation reply|away from)",
    re.IGNORECASE,
)
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation")
# RFC 3463 codes: class 2/4/5, subject 0-7, detail 0-999 (so "Exim 4.96.2" is not one).
_STATUS = re.compile(r"(?<![\d.])([245])\.([0-7])\.(\d{1,3})(?![\d]|\.\d)")
_REPLY = re.compile(r"(?<![\d.])([245]\d\d)(?:[ -]|$)")
_OUR_MESSAGE_ID = re.compile(r"<(\d+)\.(\d+)\.[0-9a-f]{16}@[^<>\s]+>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient's bad news from one report.

    ``kind``: hard (the address is bad), soft (try again later: delayed, mailbox full,
    policy) or complaint. ``recipient`` is the address the report names (DSN
    Final-Recipient, ARF Original-Rcpt-To), "" when it names none. ``status`` is the RFC 3463
    code, ``action`` the DSN Action or the ARF Feedback-Type, ``diagnostic`` one line.
    """

    kind: Kind
    recipient: str = ""
    original_recipient: str = ""
    status: str = ""
    action: str = ""
    diagnostic: str = ""
    remote_mta: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """What one message from the return mailbox says.

    ``category`` bounce / complaint carry at least one Failure; "other" (auto-replies,
    human replies, reports that are not about a recipient) carries none, and ``reason`` says
    why. ``format`` names what was read: "dsn", "arf", "non-standard", "auto-reply",
    "not-a-bounce". ``key`` identifies the report (its Message-ID, else a hash of its bytes)
    so it is never counted twice.
    """

    category: Category
    format: str
    reason: str
    failures: tuple[Failure, ...]
    key: str
    message_id: str
    date: datetime | None
    subject: str
    sender: str
    envelope_to: tuple[str, ...]
    original_message_id: str
    original_to: tuple[str, ...]
    headers: str

    @property
    def worst(self) -> Failure | None:
        """The most severe failure (complaint, then hard, then soft), or None."""
        order = {"complaint": 0, "hard": 1, "soft": 2}
        return min(self.failures, key=lambda f: order[f.kind], default=None)


# --- small pure helpers ----------------------------------------------------------------------


def clean(text: str, limit: int | None = None) -> str:
    """Text safe for the database and one screen line: raw 8-bit bytes (kept by the email
    package as surrogates) decoded as UTF-8, NULs and runs of whitespace collapsed."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\0", "")
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def failure_kind(action: str, status: str, reply: int | None = None) -> Kind | None:
    """The kind of one DSN recipient block, or None when it is not a failure.

    - Action delivered, relayed or expanded: None.
    - Action delayed: soft.
    - Action failed (or missing): hard for a 5.x.x status, except the codes that are not
      about the address (5.2.2 mailbox full, 5.3.4 too big, 5.6.x content, 5.7.x policy),
      which are soft like every 4.x.x. Without a status, a 5xx reply code is hard and
      anything else soft (unknown severity counts against the soft limit, not at once).
    """
    action = action.strip().lower()
    if action.startswith(("delivered", "relayed", "expanded")):
        return None
    if action.startswith("delayed"):
        return "soft"
    if status:
        if status.startswith("5."):
            if status in SOFT_PERMANENT or status.startswith(SOFT_PERMANENT_CLASSES):
                return "soft"
            return "hard"
        return "soft"
    return "hard" if reply is not None and 500 <= reply < 600 else "soft"


def find_status(text: str) -> str:
    """The first RFC 3463 code ("5.1.1") in ``text``, or ""."""
    m = _STATUS.search(text)
    return ".".join(m.groups()) if m else ""


def find_reply(text: str) -> int | None:
    """The first SMTP reply code (4xx/5xx) in ``text``, or None."""
    m = _REPLY.search(text)
    return int(m.group(1)) if m and m.group(1)[0] in "45" else None


def our_message_id(message_id: str) -> tuple[int, int] | None:
    """(issue id, subscriber id) from a Message-ID this program made
    (``<issue.subscriber.digest@domain>``, see compose.prepared), or None."""
    m = _OUR_MESSAGE_ID.fullmatch(message_id.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def _address(value: str) -> str:
    """The address in a DSN field ("rfc822; <a@b>", "a@b") or a header."""
    value = clean(value)
    if ";" in value:
        value = value.split(";", 1)[1]
    value = value.strip().strip("<>").strip()
    if "<" in value or " " in value:
        value = parseaddr(value)[1]
    return value if "@" in value else ""


def _message_id(value: str | None) -> str:
    """A Message-ID header's value, in angle brackets, or ""."""
    words = clean(str(value or "")).split()
    if not words:
        return ""
    value = words[0] if words[0].startswith("<") else f"<{words[0].strip('<>')}>"
    return value[:300]


def _decode_header(value: str | None) -> str:
    if not value:
        return ""
    try:
        return clean(str(make_header(decode_header(value))))
    except (ValueError, LookupError, UnicodeError):
        return clean(str(value))


def _addresses(msg: Message, names: tuple[str, ...]) -> list[str]:
    values: list[str] = []
    for name in names:
        values += [clean(str(v)) for v in msg.get_all(name, [])]
    return [a for _, a in getaddresses(values) if "@" in a]


def _date(msg: Message) -> datetime | None:
    value = msg.get("Date")
    if not value:
        return None
    try:
        date = parsedate_to_datetime(clean(str(value)))
    except (TypeError, ValueError, IndexError):
        return None
    return date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)


def _header_block(msg: Message) -> str:
    lines = [f"{k}: {clean(str(v))}" for k, v in msg.items()]
    text = "\n".join(lines)
    return text if len(text) <= HEADERS_LIMIT else text[: HEADERS_LIMIT - 1] + "…"


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part.

    The email package splits them into a list of messages; when it could not (an encoded
    or malformed part arrives as one string) the text is split here."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message) and p.keys()]
    blocks = re.split(r"\r?\n[ \t]*\r?\n", _text_of(part).strip())
    return [message_from_string(b.strip() + "\n", policy=compat32) for b in blocks if b.strip()]


def _original_headers(msg: Message) -> Message | None:
    """The returned message's headers: a message/rfc822 part, or a text/rfc822-headers one."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            text = _text_of(part)
            if text.strip():
                return message_from_string(text.lstrip(), policy=compat32)
    return None


def _body_text(msg: Message) -> str:
    """The human-readable text of a report: its text/plain parts (else text/html ones, with
    the tags dropped), outside any returned original message, cut to TEXT_LIMIT."""
    texts: list[str] = []
    html: list[str] = []

    def visit(part: Message) -> None:
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            return
        if part.is_multipart():
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    visit(sub)
        elif ctype == "text/plain":
            texts.append(_text_of(part))
        elif ctype == "text/html":
            html.append(re.sub(r"<[^>]+>", " ", _text_of(part)))

    visit(msg)
    text = "\n".join(texts or html)
    return text[:TEXT_LIMIT]


def _line_with(text: str, needle: str) -> str:
    for line in text.splitlines():
        if needle and needle in line:
            return clean(line, 300)
    return ""


# --- the parser ------------------------------------------------------------------------------


@dataclass
class _Reading:
    """What every report shares, gathered before deciding what the message is."""

    msg: Message
    key: str
    message_id: str
    envelope_to: list[str]
    original_to: list[str]
    original_message_id: str

    def report(
        self, category: Category, fmt: str, reason: str, failures: list[Failure] | None = None
    ) -> Report:
        msg = self.msg
        return Report(
            category=category,
            format=fmt,
            reason=reason,
            failures=tuple(failures or ()),
            key=self.key,
            message_id=self.message_id,
            date=_date(msg),
            subject=_decode_header(msg.get("Subject")),
            sender=parseaddr(clean(str(msg.get("From", ""))))[1],
            envelope_to=tuple(dict.fromkeys(a for a in self.envelope_to if a)),
            original_message_id=self.original_message_id,
            original_to=tuple(self.original_to),
            headers=_header_block(msg),
        )


def parse_report(raw: bytes) -> Report:
    """Read one message from the return mailbox. Pure; never raises for bad input (a message
    that cannot be read at all is "other" with the reason)."""
    key = "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        msg = message_from_bytes(raw, policy=compat32)
        reading = _read(msg, key)
        parts: dict[str, Message] = {}
        for part in msg.walk():  # the first part of each type (not one in a returned message)
            parts.setdefault(part.get_content_type(), part)
        report_type = clean(str(msg.get_param("report-type", "") or "")).lower()
        if report_type == "feedback-report" or (
            "message/feedback-report" in parts and report_type != "delivery-status"
        ):
            return _arf(reading, parts.get("message/feedback-report"))
        if report_type == "delivery-status" or "message/delivery-status" in parts:
            return _dsn(reading, parts.get("message/delivery-status"))
        return _non_standard(reading)
    except Exception as exc:  # the email package is lenient; this is the last resort
        log.warning("bounces.unreadable key=%s error=%s", key, exc, exc_info=True)
        return Report(
            "other", "unreadable", clean(f"cannot be read as a message: {exc}", 300), (),
            key, "", None, "", "", (), "", (), "",
        )  # fmt: skip


def _read(msg: Message, key: str) -> _Reading:
    message_id = _message_id(msg.get("Message-ID"))
    envelope_to = _addresses(msg, _ENVELOPE_HEADERS)
    original = _original_headers(msg)
    original_to: list[str] = []
    original_mid = ""
    if original is not None:
        envelope_to += _addresses(original, ("Return-Path",))
        original_to = _addresses(original, ("To",))
        original_mid = _message_id(original.get("Message-ID"))
    return _Reading(msg, message_id or key, message_id, envelope_to, original_to, original_mid)


def _arf(r: _Reading, part: Message | None) -> Report:
    fields = Message()
    for block in _field_blocks(part) if part is not None else []:
        for k, v in block.items():
            fields[k] = v
    feedback_type = clean(str(fields.get("Feedback-Type", "abuse"))).lower() or "abuse"
    r.envelope_to.append(_address(str(fields.get("Original-Mail-From", ""))))
    if feedback_type != "abuse":
        return r.report("other", "arf", f"feedback report of type {feedback_type!r}, not abuse")
    rcpt = _address(str(fields.get("Original-Rcpt-To", "")))
    agent = clean(str(fields.get("User-Agent", "")), 100)
    domain = clean(str(fields.get("Reported-Domain", "")), 100)
    detail = "spam complaint" + (f" via {agent}" if agent else "")
    detail += f" (reported domain {domain})" if domain else ""
    recipient = rcpt or (r.original_to[0] if r.original_to else "")
    failure = Failure("complaint", recipient, rcpt, "", feedback_type, detail)
    return r.report("complaint", "arf", "feedback report: abuse", [failure])


def _dsn(r: _Reading, part: Message | None) -> Report:
    failures: list[Failure] = []
    saw_recipient = False
    for block in _field_blocks(part) if part is not None else []:
        final = _address(str(block.get("Final-Recipient", "")))
        original = _address(
            str(block.get("Original-Recipient", "") or block.get("X-Actual-Recipient", ""))
        )
        action = clean(str(block.get("Action", ""))).lower()
        if not (final or original or action):
            continue  # the per-message block (Reporting-MTA, Arrival-Date...)
        saw_recipient = True
        diagnostic = clean(str(block.get("Diagnostic-Code", "")), DIAGNOSTIC_LIMIT)
        status = find_status(clean(str(block.get("Status", "")))) or find_status(diagnostic)
        kind = failure_kind(action, status, find_reply(diagnostic.partition(";")[2]))
        if kind is None:
            continue
        mta = clean(str(block.get("Remote-MTA", "")), 200)
        failures.append(
            Failure(
                kind, final or original, original, status, action.split()[0] if action else "",
                diagnostic, mta.partition(";")[2].strip() or mta,
            )
        )  # fmt: skip
    if failures:
        return r.report("bounce", "dsn", "delivery status notification", failures)
    if saw_recipient:
        return r.report("other", "dsn", "delivery status notification without a failure")
    # A DSN whose status part is missing or unreadable: the text says what happened, and
    # the VERP address it came back to (or the original Message-ID) says to whom.
    failure = _failure_from_text(r.msg, "")
    return r.report("bounce", "dsn", "malformed delivery status notification", [failure])


def _failure_from_text(msg: Message, recipient: str) -> Failure:
    text = _body_text(msg)
    status = find_status(text)
    reply = find_reply(text)
    diagnostic = _line_with(text, status) or (_line_with(text, str(reply)) if reply else "")
    if _DELAY_SUBJECT.search(_decode_header(msg.get("Subject"))):
        return Failure("soft", recipient, "", status, "delayed", diagnostic)
    kind = failure_kind("failed", status, reply) or "soft"
    return Failure(kind, recipient, "", status, "failed", diagnostic)


def _non_standard(r: _Reading) -> Report:
    msg = r.msg
    subject = _decode_header(msg.get("Subject"))
    sender = parseaddr(clean(str(msg.get("From", ""))))[1].lower()
    failed_header = _addresses(msg, ("X-Failed-Recipients",))
    daemon = sender.partition("@")[0] in _DAEMONS
    null_path = clean(str(msg.get("Return-Path", "x"))) in ("<>", "")
    strong = bool(failed_header) or daemon
    auto = (
        clean(str(msg.get("Auto-Submitted", "no"))).lower() not in ("no", "")
        or any(msg.get(h) for h in _AUTO_HEADERS)
        or clean(str(msg.get("Precedence", ""))).lower() == "auto_reply"
        or bool(_AUTO_SUBJECT.search(subject))
    )
    if auto and not strong:
        return r.report("other", "auto-reply", "an automatic reply (out of office), not a bounce")
    if not (strong or (_BOUNCE_SUBJECT.search(subject) and null_path)):
        return r.report("other", "not-a-bounce", "neither a bounce nor a complaint")

    # The returned message is often pasted into the text: its Message-ID and Return-Path
    # (a VERP address) tie the bounce to a delivery.
    text = _body_text(msg)
    if not r.original_message_id:
        m = re.search(r"^\s*Message-ID:\s*(<[^>\s]+>)", text, re.IGNORECASE | re.MULTILINE)
        r.original_message_id = _message_id(m.group(1)) if m else ""
    r.envelope_to += re.findall(r"^\s*Return-Path:\s*<([^>\s]+@[^>\s]+)>", text, re.I | re.M)

    base = _failure_from_text(msg, "")
    temporary, permanent = _flufl(msg)
    failures: list[Failure] = []
    for address in dict.fromkeys([*failed_header, *permanent]):
        kind = base.kind if base.status else "hard"
        line = base.diagnostic or _line_with(text, address)
        failures.append(Failure(kind, address, "", base.status, "failed", line))
    for address in temporary:
        if address not in permanent and address not in failed_header:
            line = base.diagnostic or _line_with(text, address)
            failures.append(Failure("soft", address, "", base.status, "delayed", line))
    reason = "bounce without a delivery status part"
    return r.report("bounce", "non-standard", reason, failures or [base])


def _flufl(msg: Message) -> tuple[list[str], list[str]]:
    """(temporary, permanent) failing addresses found by flufl.bounce's detectors (imported
    here, so that sending never depends on it)."""
    try:
        from flufl.bounce import all_failures
    except ImportError:  # a declared dependency; without it only X-Failed-Recipients is read
        log.warning("bounces.flufl_missing: pip install flufl.bounce")
        return [], []
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector choking on odd input must not stop the run
        log.warning("bounces.flufl_failed subject=%r", msg.get("Subject"), exc_info=True)
        return [], []

    def decode(addresses) -> list[str]:
        found = []
        for a in addresses:
            text = a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)
            text = clean(text).strip("<>")
            if "@" in text:
                found.append(text)
        return sorted(found)

    return decode(temporary), decode(permanent)
