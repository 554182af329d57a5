"""Bounce and complaint events from SES (through SNS), Postmark, Mailgun and SendGrid, on the
real web service: payloads shaped like each provider's documentation, signed here with test
keys (SNS with a test certificate the endpoint is told to trust); each bounces or suppresses
the right subscriber through the same rules as the mailbox; a forged, an unsigned and a
replayed event are refused and change nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.bounces.providers import sns_string_to_sign
from tests.web.conftest import web  # noqa: F401  (fixture)

TOPIC = "arn:aws:sns:eu-west-1:123456789012:newsletter-bounces"
MAILGUN_KEY = "key-test-mailgun-signing"


def _sent(site, *addresses: str) -> dict[str, str]:
    """Each address's Message-ID of a real send."""
    for a in addresses:
        site.cli.ok("subscriber", "add", a, "--list", "blog")
    site.send_issue(site.seed_issue())
    return {a: str(site.wait_for_mails(a)[-1]["Message-ID"]) for a in addresses}


def _status(site, address: str) -> str:
    return site.person(address)["status"]


def _unchanged(site, addresses) -> dict[str, str]:
    return {a: _status(site, a) for a in addresses}


# --- SES through SNS ---------------------------------------------------------------------------


@pytest.fixture
def sns_key(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-west-1.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    path = tmp_path / "sns.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, path


def _sns(key, kind: str, inner: dict | None, **extra) -> dict:
    message = {
        "Type": kind,
        "MessageId": extra.pop("MessageId", f"m-{time.time_ns()}"),
        "TopicArn": TOPIC,
        "Message": json.dumps(inner) if inner is not None else "confirm it",
        "Timestamp": extra.pop("Timestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")),
        "SignatureVersion": "2",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
        **extra,
    }
    signature = key.sign(sns_string_to_sign(message), padding.PKCS1v15(), hashes.SHA256())
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def _ses_bounce(address: str, message_id: str) -> dict:
    return {
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": address, "status": "5.1.1",
                                          "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                   "timestamp": "2026-12-03T07:00:00.000Z", "feedbackId": "0102-abc"},
        "mail": {"messageId": "0102-ses-id", "commonHeaders": {"messageId": message_id},
                 "destination": [address]},
    }  # fmt: skip


def test_ses_through_sns(web, sns_key, http_server) -> None:  # noqa: F811
    key, cert = sns_key
    site = web(extra_config=f'\n[providers]\nses_topic_arns = ["{TOPIC}"]\n'
                            f'ses_certificate_file = "{cert}"\n')  # fmt: skip
    ids = _sent(site, "gone@example.com", "angry@example.com", "fine@example.com")
    http_server["/confirm"] = (200, b"<ConfirmSubscriptionResponse/>", {})
    confirm = _sns(key, "SubscriptionConfirmation", None, Token="tok",
                   SubscribeURL=http_server.url("/confirm"))  # fmt: skip
    assert site.http.post("/providers/ses", json=confirm).status_code == 200
    assert http_server.hits["/confirm"] == 1

    bounce = _sns(key, "Notification", _ses_bounce("gone@example.com", ids["gone@example.com"]))
    answer = site.http.post("/providers/ses", json=bounce)
    assert answer.status_code == 200 and answer.json()["recorded"] == 1
    assert _status(site, "gone@example.com") == "bounced"
    complaint = _sns(key, "Notification", {
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "angry@example.com"}],
                      "complaintFeedbackType": "abuse", "timestamp": "2026-12-03T07:00:00Z"},
        "mail": {"commonHeaders": {"messageId": ids["angry@example.com"]}},
    })  # fmt: skip
    assert site.http.post("/providers/ses", json=complaint).status_code == 200
    assert _status(site, "angry@example.com") == "complained"
    shown = json.loads(site.cli.ok("issue", "show", "1", "--json").stdout)
    assert shown["deliveries"].get("bounced") == 1

    before = _unchanged(site, ids)
    forged = _sns(rsa.generate_private_key(public_exponent=65537, key_size=2048), "Notification",
                  _ses_bounce("fine@example.com", ids["fine@example.com"]))  # fmt: skip
    unsigned = {k: v for k, v in forged.items() if k != "Signature"}
    stale = _sns(key, "Notification", _ses_bounce("fine@example.com", ids["fine@example.com"]),
                 Timestamp="2026-01-01T00:00:00.000Z")  # fmt: skip
    other_topic = _sns(key, "Notification", _ses_bounce("fine@example.com", "<x@y>"),
                       TopicArn="arn:aws:sns:eu-west-1:999:evil")  # fmt: skip
    assert site.http.post("/providers/ses", json=forged).status_code == 401
    assert site.http.post("/providers/ses", json=unsigned).status_code == 401
    assert site.http.post("/providers/ses", json=bounce).status_code == 403  # a replay
    assert site.http.post("/providers/ses", json=stale).status_code == 403
    assert site.http.post("/providers/ses", json=other_topic).status_code == 403
    assert _unchanged(site, ids) == before


# --- Postmark ----------------------------------------------------------------------------------


def test_postmark_with_basic_auth_or_a_secret_path(web, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("NEWSLETTER_POSTMARK_PASSWORD", "pm-pass")
    monkeypatch.setenv("NEWSLETTER_POSTMARK_PATH_SECRET", "s3cr3t-path-value")
    site = web(extra_config='\n[providers]\npostmark_username = "postmark"\n')
    _sent(site, "gone@example.com", "angry@example.com")
    auth = "Basic " + base64.b64encode(b"postmark:pm-pass").decode()
    bounce = {"RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce",
              "TypeCode": 1, "Email": "gone@example.com", "BouncedAt": "2026-12-03T07:00:00Z",
              "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
              "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483"}  # fmt: skip
    assert site.http.post("/providers/postmark", json=bounce,
                          headers={"Authorization": auth}).status_code == 200  # fmt: skip
    assert _status(site, "gone@example.com") == "bounced"
    spam = {"RecordType": "SpamComplaint", "ID": 42, "Email": "angry@example.com",
            "BouncedAt": "2026-12-03T07:01:00Z"}  # fmt: skip
    assert site.http.post("/providers/postmark/s3cr3t-path-value", json=spam).status_code == 200
    assert _status(site, "angry@example.com") == "complained"
    wrong = "Basic " + base64.b64encode(b"postmark:guess").decode()
    fresh = bounce | {"ID": 7, "Email": "angry@example.com"}
    assert site.http.post("/providers/postmark", json=fresh,
                          headers={"Authorization": wrong}).status_code == 401  # fmt: skip
    assert site.http.post("/providers/postmark", json=fresh).status_code == 401
    assert site.http.post("/providers/postmark/guess", json=fresh).status_code == 401
    assert site.http.post("/providers/postmark", json=bounce,
                          headers={"Authorization": auth}).status_code == 403  # fmt: skip


# --- Mailgun -----------------------------------------------------------------------------------


def _mailgun(event: str, address: str, message_id: str, *, key: str = MAILGUN_KEY,
             stamp: int | None = None, token: str | None = None) -> dict:  # fmt: skip
    stamp = stamp or int(time.time())
    token = token or base64.b16encode(hashlib.sha256(str(time.time_ns()).encode()).digest()[:20])
    token = token.decode() if isinstance(token, bytes) else token
    signature = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    data = {"event": event, "id": f"ev-{token[:12]}", "timestamp": stamp, "recipient": address,
            "message": {"headers": {"message-id": message_id.strip("<>")}}}  # fmt: skip
    if event == "failed":
        data |= {"severity": "permanent", "reason": "bounce",
                 "delivery-status": {"code": 550, "message": "5.1.1 No such user"}}  # fmt: skip
    return {"signature": {"timestamp": str(stamp), "token": token, "signature": signature},
            "event-data": data}  # fmt: skip


def test_mailgun_signed_webhooks(web, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("NEWSLETTER_MAILGUN_SIGNING_KEY", MAILGUN_KEY)
    site = web(extra_config="\n[providers]\n")
    ids = _sent(site, "gone@example.com", "angry@example.com", "fine@example.com")
    failed = _mailgun("failed", "gone@example.com", ids["gone@example.com"])
    assert site.http.post("/providers/mailgun", json=failed).status_code == 200
    assert _status(site, "gone@example.com") == "bounced"
    complained = _mailgun("complained", "angry@example.com", ids["angry@example.com"])
    assert site.http.post("/providers/mailgun", json=complained).status_code == 200
    assert _status(site, "angry@example.com") == "complained"
    before = _unchanged(site, ids)
    forged = _mailgun("failed", "fine@example.com", ids["fine@example.com"], key="not-the-key")
    unsigned = {"event-data": forged["event-data"]}
    stale = _mailgun("failed", "fine@example.com", ids["fine@example.com"],
                     stamp=int(time.time()) - 3600)  # fmt: skip
    assert site.http.post("/providers/mailgun", json=forged).status_code == 401
    assert site.http.post("/providers/mailgun", json=unsigned).status_code == 401
    assert site.http.post("/providers/mailgun", json=stale).status_code == 403
    assert site.http.post("/providers/mailgun", json=failed).status_code == 403  # a replay
    assert _unchanged(site, ids) == before


# --- SendGrid ----------------------------------------------------------------------------------


def test_sendgrid_signed_event_webhook(web) -> None:  # noqa: F811
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = base64.b64encode(der).decode()
    site = web(extra_config=f'\n[providers]\nsendgrid_public_key = "{public}"\n')
    ids = _sent(site, "gone@example.com", "angry@example.com", "fine@example.com")

    def signed(events: list[dict], signer=key, stamp: int | None = None) -> dict:
        body = json.dumps(events).encode()
        ts = str(stamp or int(time.time()))
        sig = base64.b64encode(signer.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256())))
        return {"content": body, "headers": {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": sig.decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts}}  # fmt: skip

    batch = [
        {"email": "gone@example.com", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 unknown user", "sg_event_id": "sg-1", "timestamp": 1796281200,
         "smtp-id": ids["gone@example.com"]},
        {"email": "angry@example.com", "event": "spamreport", "sg_event_id": "sg-2",
         "timestamp": 1796281200, "smtp-id": ids["angry@example.com"]},
        {"email": "fine@example.com", "event": "delivered", "sg_event_id": "sg-3"},
    ]  # fmt: skip
    answer = site.http.post("/providers/sendgrid", **signed(batch))
    assert answer.status_code == 200 and answer.json()["recorded"] == 2
    assert _status(site, "gone@example.com") == "bounced"
    assert _status(site, "angry@example.com") == "complained"
    before = _unchanged(site, ids)
    bad = [{"email": "fine@example.com", "event": "bounce", "type": "bounce", "status": "5.1.1",
            "sg_event_id": "sg-4", "smtp-id": ids["fine@example.com"]}]  # fmt: skip
    forged = signed(bad, signer=ec.generate_private_key(ec.SECP256R1()))
    unsigned = {
        "content": json.dumps(bad).encode(),
        "headers": {"Content-Type": "application/json"},
    }
    stale = signed(bad, stamp=int(time.time()) - 3600)
    assert site.http.post("/providers/sendgrid", **forged).status_code == 401
    assert site.http.post("/providers/sendgrid", **unsigned).status_code == 401
    assert site.http.post("/providers/sendgrid", **stale).status_code == 403
    assert site.http.post("/providers/sendgrid", **signed(batch[:2])).status_code == 403  # replay
    assert _unchanged(site, ids) == before


def test_unconfigured_providers_are_not_served(web) -> None:  # noqa: F811
    site = web()
    for name in ("ses", "postmark", "mailgun", "sendgrid"):
        assert site.http.post(f"/providers/{name}", json={}).status_code == 404
