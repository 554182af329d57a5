"""VERP: a signed, per-delivery token in the envelope sender, so a bounce names its message.

With ``[bounces] return_path = "bounces+{token}@example.com"`` the message of delivery 1234
goes out with ``MAIL FROM:<bounces+ya-5m2kqz7hxd3wtr4e@example.com>``. The token is

    base36(delivery id) "-" base32(HMAC-SHA256(key, "verp:" + base36 id))[:16]

lower case (some mail systems lower-case the local part on the way back), 80 bits of MAC:
it cannot be forged or altered to point at another delivery, and decoding needs no database
lookup of secrets: the key is read once per process. The delivery row then gives the issue
and the subscriber.

The key is 32 random bytes made on first use and kept in the ``secrets`` table (name
"verp"), so every worker process and machine that shares the database signs and checks with
the same key, with nothing to configure. Anyone who can read the database can forge tokens,
but could change the subscribers directly anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from ..config import Settings
from ..store import secrets as stored_secrets

TOKEN = "{token}"
KEY_NAME = "verp"
MAC_CHARS = 16  # base32 characters of MAC: 80 bits
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_TOKEN_RE = re.compile(rf"([0-9a-z]{{1,13}})-([a-z2-7]{{{MAC_CHARS}}})")


def uses_verp(return_path: str) -> bool:
    """True when ``return_path`` asks for a per-delivery token."""
    return TOKEN in return_path


def plain_return_path(return_path: str) -> str:
    """``return_path`` without its token (and the separator before it): the address for mail
    that belongs to no delivery, such as a test send. "" stays ""."""
    return re.sub(r"[+\-=._]?\{token\}", "", return_path)


def _base36(n: int) -> str:
    if n < 0:
        raise ValueError("a delivery id is not negative")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if n == 0:
            return out


class VerpCodec:
    """Encodes delivery ids into VERP addresses and back, with one key and one template.

    Pure and cheap: ``address`` costs one HMAC of a few bytes. Build one per process.
    """

    def __init__(self, template: str, key: bytes) -> None:
        if not uses_verp(template):
            raise ValueError(f"{template!r} has no {TOKEN}")
        if len(key) < 16:
            raise ValueError("a VERP key needs at least 16 bytes")
        self.prefix, _, self.suffix = template.partition(TOKEN)
        self._prefix_l, self._suffix_l = self.prefix.lower(), self.suffix.lower()
        self._mac = hmac.new(key, b"verp:", hashlib.sha256)

    def _sign(self, id36: str) -> str:
        mac = self._mac.copy()
        mac.update(id36.encode("ascii"))
        return base64.b32encode(mac.digest()[:10]).decode("ascii").lower()

    def token(self, delivery_id: int) -> str:
        """The token of ``delivery_id``."""
        id36 = _base36(delivery_id)
        return f"{id36}-{self._sign(id36)}"

    def address(self, delivery_id: int) -> str:
        """The envelope sender for ``delivery_id``'s message."""
        return self.prefix + self.token(delivery_id) + self.suffix

    def decode_token(self, token: str) -> int | None:
        """The delivery id a token names, or None when it is malformed or its MAC is wrong."""
        m = _TOKEN_RE.fullmatch(token.strip().lower())
        if m is None:
            return None
        id36, mac = m.groups()
        if not hmac.compare_digest(mac, self._sign(id36)):
            return None
        return int(id36, 36)

    def decode(self, address: str) -> int | None:
        """The delivery id of a VERP address (angle brackets and case do not matter), or None
        for an address that is not ours or carries no valid token."""
        addr = address.strip().strip("<>").strip().lower()
        if not (addr.startswith(self._prefix_l) and addr.endswith(self._suffix_l)):
            return None
        end = len(addr) - len(self._suffix_l)
        if end <= len(self._prefix_l):
            return None
        return self.decode_token(addr[len(self._prefix_l) : end])

    def first(self, addresses: Iterable[str]) -> int | None:
        """The delivery id of the first address in ``addresses`` with a valid token."""
        for address in addresses:
            delivery_id = self.decode(address)
            if delivery_id is not None:
                return delivery_id
        return None


def load_key(session: Session, name: str = KEY_NAME) -> bytes:
    """The VERP key (or another named secret), made and stored on first use."""
    return stored_secrets.key(session, name)


def codec_for(settings: Settings, session: Session) -> VerpCodec | None:
    """The codec for ``[bounces] return_path``, or None when it has no token."""
    template = settings.bounces.return_path
    if not uses_verp(template):
        return None
    return VerpCodec(template, load_key(session))


def sender_for(settings: Settings, session: Session) -> Callable[[int], str]:
    """A function from delivery id to envelope sender (MAIL FROM), built once per process:
    the signed VERP address when ``return_path`` has "{token}", else the same address for
    every delivery (``return_path`` or, when empty, ``sender.from_address``)."""
    codec = codec_for(settings, session)
    if codec is not None:
        return codec.address
    fixed = plain_return_path(settings.bounces.return_path) or settings.sender.from_address
    return lambda _delivery_id: fixed
