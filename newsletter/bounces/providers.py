"""Bounce and complaint events from the sending providers people use: Amazon SES (through
SNS), Postmark, Mailgun and SendGrid. Each is checked the provider's own way (SNS: the
message's RSA signature against its signing certificate; Postmark: HTTP basic auth or a secret
path; Mailgun: HMAC-SHA256 of timestamp and token; SendGrid: the ECDSA P-256 signature of
timestamp and body), then read into the same ``Report`` a bounce email becomes, so the same
rules apply (newsletter.bounces.record: hard/soft/complaint, suppression, history, the issue's
counts), matched to the delivery by our Message-ID or else by the address.

``verify_*`` raise Refused(401) for a forged or unsigned event and Refused(403) for a stale
one (older than ``[providers] max_age_seconds``); the web layer answers with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from ..config import Settings
from .parse import Failure, Report
from .record import record_report


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _report(
    provider: str,
    event_id: str,
    kind: str,
    email: str,
    *,
    status: str = "",
    diagnostic: str = "",
    message_id: str = "",
    at: datetime | None = None,
    envelope: str = "",
) -> Report:
    failure = Failure(kind=kind, recipient=email, status=status[:20],  # type: ignore[arg-type]
                      action="failed" if kind != "complaint" else "abuse",
                      diagnostic=" ".join(diagnostic.split())[:500])  # fmt: skip
    mid = message_id.strip()
    if mid and not mid.startswith("<"):
        mid = f"<{mid}>"
    return Report(
        category="complaint" if kind == "complaint" else "bounce",
        format=provider,
        reason="",
        failures=(failure,),
        key=f"{provider}:{event_id}"[:200],
        message_id="",
        date=at,
        subject="",
        sender="",
        envelope_to=(envelope,) if envelope else (),  # the VERP address we sent from
        original_message_id=mid,
        original_to=(email,),
        headers="",
    )


def _fresh(at: datetime, now: datetime, max_age: float) -> None:
    if abs((now - at).total_seconds()) > max_age:
        raise Refused(403, "the event is too old (or from the future): a replay is refused")


def _epoch(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise Refused(401, "the event has no valid timestamp") from None


def _iso(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(401, "the body is not JSON") from None


def _hard_or_soft(status: str, permanent: bool) -> str:
    return "hard" if permanent or status.startswith("5.1.") else "soft"


# --- Amazon SES through SNS ------------------------------------------------------------------

_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SNS_CERT_HOST = re.compile(r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^?#]+\.pem$")


def sns_string_to_sign(message: dict[str, Any]) -> bytes:
    """The canonical text SNS signs (its documentation, "Verifying the signatures of Amazon
    SNS messages"): each present field as "Name\\nvalue\\n", in this order."""
    fields = _SNS_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise Refused(401, "not an SNS notification or subscription confirmation")
    return "".join(
        f"{name}\n{message[name]}\n" for name in fields if message.get(name) is not None
    ).encode()


def verify_sns(
    message: dict[str, Any],
    certificate: Callable[[str], bytes],
    *,
    topics: tuple[str, ...],
    now: datetime,
    max_age: float,
) -> None:
    """Check an SNS message's signature with the certificate ``certificate(url)`` gives for
    its SigningCertURL (only https://sns.REGION.amazonaws.com/....pem is fetched)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    if not isinstance(message, dict) or not message.get("Signature"):
        raise Refused(401, "the SNS message is not signed")
    if topics and message.get("TopicArn") not in topics:
        raise Refused(403, "the SNS message is from a topic not in [providers] ses_topic_arns")
    try:
        signature = base64.b64decode(str(message["Signature"]), validate=True)
        cert = x509.load_pem_x509_certificate(certificate(str(message.get("SigningCertURL"))))
    except (ValueError, TypeError) as exc:
        raise Refused(401, f"the SNS signature cannot be checked: {exc}") from None
    digest = hashes.SHA1() if str(message.get("SignatureVersion")) == "1" else hashes.SHA256()
    try:
        cert.public_key().verify(  # type: ignore[union-attr,call-arg]
            signature, sns_string_to_sign(message), padding.PKCS1v15(), digest
        )
    except (InvalidSignature, TypeError, ValueError):
        raise Refused(401, "the SNS signature does not verify") from None
    at = _iso(message.get("Timestamp"))
    if at is None:
        raise Refused(401, "the SNS message has no valid Timestamp")
    _fresh(at, now, max_age)


def sns_certificate_url_allowed(url: str) -> bool:
    return bool(_SNS_CERT_HOST.match(url))


def ses_reports(message: dict[str, Any]) -> list[Report]:
    """The bounces and complaints of an SES notification (the JSON in SNS's Message)."""
    try:
        ses = json.loads(message.get("Message") or "{}")
    except ValueError:
        return []
    if not isinstance(ses, dict):
        return []
    kind = ses.get("notificationType") or ses.get("eventType")
    mail = ses.get("mail") or {}
    ours = str((mail.get("commonHeaders") or {}).get("messageId") or "")
    if not ours:
        for header in mail.get("headers") or []:
            if str(header.get("name", "")).lower() == "message-id":
                ours = str(header.get("value", ""))
    event_id = str(message.get("MessageId", ""))
    source = str(mail.get("source") or "")
    reports = []
    if kind == "Bounce":
        bounce = ses.get("bounce") or {}
        permanent = bounce.get("bounceType") == "Permanent"
        for i, r in enumerate(bounce.get("bouncedRecipients") or []):
            status = str(r.get("status") or "")
            reports.append(_report("ses", f"{event_id}:{i}", _hard_or_soft(status, permanent),
                                   str(r.get("emailAddress", "")), status=status,
                                   diagnostic=str(r.get("diagnosticCode") or ""),
                                   message_id=ours, at=_iso(bounce.get("timestamp")),
                                   envelope=source))  # fmt: skip
    elif kind == "Complaint":
        complaint = ses.get("complaint") or {}
        if complaint.get("complaintFeedbackType") == "not-spam":
            return []
        for i, r in enumerate(complaint.get("complainedRecipients") or []):
            feedback = str(complaint.get("complaintFeedbackType") or "")
            at = _iso(complaint.get("timestamp"))
            reports.append(_report("ses", f"{event_id}:{i}", "complaint",
                                   str(r.get("emailAddress", "")), diagnostic=feedback,
                                   message_id=ours, at=at, envelope=source))  # fmt: skip
    return reports


# --- Postmark --------------------------------------------------------------------------------


def verify_basic(header: str, username: str, password: str) -> None:
    """HTTP basic auth, compared in constant time."""
    scheme, _, value = header.partition(" ")
    try:
        given = base64.b64decode(value, validate=True).decode() if scheme.lower() == "basic" else ""
    except (ValueError, UnicodeDecodeError):
        given = ""
    expected = f"{username}:{password}"
    if not (username and password) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(401, "wrong or missing credentials")


def postmark_reports(body: bytes) -> list[Report]:
    event = parse_json(body)
    if not isinstance(event, dict):
        raise Refused(401, "not a Postmark event")
    record = event.get("RecordType")
    email = str(event.get("Email", ""))
    event_id = str(event.get("ID", ""))
    headers = {str(h.get("Name", "")).lower(): str(h.get("Value", ""))
               for h in event.get("Headers") or [] if isinstance(h, dict)}  # fmt: skip
    ours = headers.get("message-id", "")
    if record == "Bounce":
        hard = event.get("Type") in ("HardBounce", "BadEmailAddress", "ManuallyDeactivated")
        kind = "hard" if hard else "soft"
        return [_report("postmark", event_id, kind, email, status="5.1.1" if hard else "",
                        diagnostic=str(event.get("Details") or event.get("Description") or ""),
                        message_id=ours, at=_iso(event.get("BouncedAt")))]  # fmt: skip
    if record == "SpamComplaint":
        return [_report("postmark", event_id, "complaint", email, message_id=ours,
                        at=_iso(event.get("BouncedAt")))]  # fmt: skip
    return []


# --- Mailgun ---------------------------------------------------------------------------------


def verify_mailgun(event: Any, key: str, *, now: datetime, max_age: float) -> None:
    """Mailgun's webhook signature: hex HMAC-SHA256 of timestamp + token with the webhook
    signing key."""
    sig = event.get("signature") if isinstance(event, dict) else None
    if not isinstance(sig, dict) or not all(
        sig.get(k) for k in ("timestamp", "token", "signature")
    ):
        raise Refused(401, "the Mailgun event is not signed")
    expected = hmac.new(key.encode(), f"{sig['timestamp']}{sig['token']}".encode(),
                        hashlib.sha256).hexdigest()  # fmt: skip
    if not key or not hmac.compare_digest(expected, str(sig["signature"])):
        raise Refused(401, "the Mailgun signature does not verify")
    _fresh(_epoch(sig["timestamp"]), now, max_age)


def mailgun_reports(event: dict[str, Any]) -> list[Report]:
    data = event.get("event-data") or {}
    kind_name = data.get("event")
    email = str(data.get("recipient", ""))
    ours = str(((data.get("message") or {}).get("headers") or {}).get("message-id", ""))
    event_id = str(data.get("id") or event["signature"]["token"])
    status_block = data.get("delivery-status") or {}
    if kind_name == "failed":
        permanent = data.get("severity") == "permanent"
        code = str(status_block.get("code", ""))
        status = "5.1.1" if permanent and code.startswith("55") else ""
        return [_report("mailgun", event_id, "hard" if permanent else "soft", email,
                        status=status, diagnostic=str(status_block.get("message", "")),
                        message_id=ours, at=_epoch_or_none(data.get("timestamp")))]  # fmt: skip
    if kind_name == "complained":
        return [_report("mailgun", event_id, "complaint", email, message_id=ours,
                        at=_epoch_or_none(data.get("timestamp")))]  # fmt: skip
    return []


def _epoch_or_none(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# --- SendGrid --------------------------------------------------------------------------------


def verify_sendgrid(
    body: bytes, signature: str, timestamp: str, public_key: str, *, now: datetime,
    max_age: float,
) -> None:  # fmt: skip
    """SendGrid's signed event webhook: an ECDSA (P-256, SHA-256) signature, base64 DER, of
    the timestamp header followed by the raw body, checked with the verification key
    (base64 DER SubjectPublicKeyInfo) from SendGrid's settings."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not signature or not timestamp:
        raise Refused(401, "the SendGrid event is not signed")
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key))
        key.verify(base64.b64decode(signature, validate=True),  # type: ignore[union-attr,call-arg]
                   timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))  # fmt: skip
    except (InvalidSignature, ValueError, TypeError):
        raise Refused(401, "the SendGrid signature does not verify") from None
    _fresh(_epoch(timestamp), now, max_age)


def sendgrid_reports(body: bytes) -> list[Report]:
    events = parse_json(body)
    if not isinstance(events, list):
        raise Refused(401, "not a SendGrid event batch")
    reports = []
    for e in events:
        if not isinstance(e, dict):
            continue
        name, email = e.get("event"), str(e.get("email", ""))
        event_id = str(e.get("sg_event_id") or e.get("sg_message_id") or "")
        ours = str(e.get("smtp-id") or "")
        at = _epoch_or_none(e.get("timestamp"))
        status = str(e.get("status") or "")
        if name in ("bounce", "dropped"):
            blocked = e.get("type") == "blocked" or status.startswith("4")
            kind = "soft" if blocked else "hard"
            reports.append(_report("sendgrid", event_id, kind, email, status=status,
                                   diagnostic=str(e.get("reason") or ""), message_id=ours,
                                   at=at))  # fmt: skip
        elif name == "spamreport":
            reports.append(_report("sendgrid", event_id, "complaint", email, message_id=ours,
                                   at=at))  # fmt: skip
    return reports


# --- recording -------------------------------------------------------------------------------


def record(
    session: Session, reports: list[Report], settings: Settings, source: str
) -> tuple[int, int]:
    """Record each report under the rules of ``[bounces]`` (and pause an issue whose
    complaint rate passed the limit, as the mailbox processor does). Returns (recorded,
    already seen)."""
    from . import verp
    from .process import pause_for_complaints

    codec = verp.codec_for(settings, session)
    recorded = seen = 0
    for report in reports:
        outcome = record_report(session, report, rules=settings.bounces, codec=codec,
                                source=source)  # fmt: skip
        if outcome.outcome == "duplicate":
            seen += 1
            continue
        recorded += 1
        for issue_id in outcome.complained_issues:
            pause_for_complaints(session, issue_id, settings.sending)
    return recorded, seen
