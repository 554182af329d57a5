"""Standard Webhooks signatures (https://www.standardwebhooks.com/): the secret is "whsec_" +
base64 of random bytes; each message is signed as HMAC-SHA256 over "{id}.{timestamp}.{body}"
with the decoded secret, sent as ``webhook-signature: v1,<base64>`` beside ``webhook-id`` and
``webhook-timestamp`` (Unix seconds)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
        "user-agent": "newsletter-webhooks/1",
    }
