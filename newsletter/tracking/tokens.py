"""Signed tracking tokens: what a tracked URL names, never a URL.

A tracked link is ``{base_url}/l/{link}.{reader}``, the pixel ``{base_url}/o/{pixel}.{reader}.gif``:

- ``link`` names (issue, link index) and ``pixel`` the issue; both are the same for every
  recipient, so they are made once per issue.
- ``reader`` names the recipient within that issue, so a person's second click counts once
  in the unique figures and a scanner's burst is seen as one message's. It is the only part
  made per recipient: one HMAC.

Each token is base64url (no padding) of its numbers as varints and an 8-byte MAC over a
purpose byte and the numbers: keyed BLAKE2b (RFC 7693's keyed mode, a MAC by design and three
times faster than HMAC-SHA256 on these few bytes) with the deployment's key (the secrets
table, like the VERP key). A token that does not verify (edited, forged, from another
deployment, or any other text) parses to None: the redirector answers a plain 404, so it can
never be an open redirect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

MAC_BYTES = 8
_MAX_TOKEN = 40  # longer than any token we make: refused before decoding


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varints(data: bytes) -> list[int] | None:
    values, n, shift = [], 0, 0
    for byte in data:
        n |= (byte & 0x7F) << shift
        shift += 7
        if shift > 63:
            return None
        if not byte & 0x80:
            values.append(n)
            n, shift = 0, 0
    return values if shift == 0 else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(token: str) -> bytes | None:
    if not token or len(token) > _MAX_TOKEN or not token.isascii():
        return None
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    # The last character carries unused bits: only the canonical spelling is ours, so that
    # any edited character is refused, that one too.
    return data if _b64(data) == token else None


class Signer:
    """Makes and checks this deployment's tracking tokens with ``key`` (32 bytes)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: bytes, payload: bytes) -> bytes:
        return hashlib.blake2b(purpose + payload, key=self._key, digest_size=MAC_BYTES).digest()

    def _make(self, purpose: bytes, signed: bytes, payload: bytes) -> str:
        return _b64(payload + self._mac(purpose, signed))

    def _check(self, purpose: bytes, token: str, prefix: bytes = b"") -> list[int] | None:
        data = _unb64(token)
        if data is None or len(data) <= MAC_BYTES:
            return None
        payload, mac = data[:-MAC_BYTES], data[-MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(purpose, prefix + payload)):
            return None
        return _read_varints(payload)

    # -- per issue ------------------------------------------------------------------------

    def link(self, issue_id: int, idx: int) -> str:
        """The token of link ``idx`` of issue ``issue_id``."""
        payload = _varint(issue_id) + _varint(idx)
        return self._make(b"l", payload, payload)

    def pixel(self, issue_id: int) -> str:
        """The token of issue ``issue_id``'s open pixel."""
        payload = _varint(issue_id)
        return self._make(b"o", payload, payload)

    def parse_link(self, token: str) -> tuple[int, int] | None:
        """(issue id, link index), or None for anything that is not our link token."""
        values = self._check(b"l", token)
        return (values[0], values[1]) if values is not None and len(values) == 2 else None

    def parse_pixel(self, token: str) -> int | None:
        """The issue id, or None for anything that is not our pixel token."""
        values = self._check(b"o", token)
        return values[0] if values is not None and len(values) == 1 else None

    # -- per recipient --------------------------------------------------------------------

    def reader(self, issue_id: int, subscriber_id: int) -> str:
        """The token naming ``subscriber_id`` as the recipient of a message of ``issue_id``."""
        payload = _varint(subscriber_id)
        return self._make(b"r", _varint(issue_id) + payload, payload)

    def parse_reader(self, issue_id: int, token: str) -> int | None:
        """The subscriber id, or None if ``token`` is not a reader token of ``issue_id``."""
        values = self._check(b"r", token, _varint(issue_id))
        return values[0] if values is not None and len(values) == 1 else None

    def visitor(self, issue_id: int, subscriber_id: int) -> str:
        """A keyed hash of one message (issue, recipient) for unique counts: it names no one
        to a reader of the database without the key, and is cleared after retention."""
        data = b"v" + _varint(issue_id) + _varint(subscriber_id)
        return hashlib.blake2b(data, key=self._key, digest_size=12).hexdigest()
