"""Signing: a ``Signer`` made once per process from ``[dkim]``; ``sign(message)`` puts one
DKIM-Signature per key in front of the message (relaxed/relaxed, sha256).

The relaxed canonicalization (RFC 6376 3.4.2 and 3.4.4, a few lines) is done here on the
whole message at once: dkimpy's, line by line in Python, took 2.6 ms of a 51 KB message and
made sending 8 times slower (docs/performance.md, "DKIM"). dkimpy verifies what this signs
in the tests, and folds the signature header."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence

from ..config import DkimSettings
from ..errors import ConfigError
from .keys import LoadedKey, load

# The headers that matter (the email checklist; RFC 6376 5.4.1), signed when present.
SIGNED = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id", b"mime-version",
    b"content-type", b"content-transfer-encoding",
)  # fmt: skip
NAME = b"DKIM-Signature"
CANON = b"relaxed/relaxed"


_WSP = re.compile(rb"[ \t]+")
_RUNS = re.compile(rb"  +")
_TRAILING_WSP = re.compile(rb" +\r\n")
_FOLD = re.compile(rb"\r\n(?=[ \t])")


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: whitespace at line ends dropped, runs of it made one space, empty
    lines at the end dropped, one CRLF at the end (of a body that is not empty). On the whole
    body at once (dkimpy's per-line canonicalization was most of the cost of signing)."""
    # Each step only where there is something to change: quoted-printable and base64 leave
    # no tab and no space at a line's end, so most bodies need just the runs of spaces.
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    if b" \r\n" in body:
        body = _TRAILING_WSP.sub(b"\r\n", body)
    if b"  " in body:
        body = _RUNS.sub(b" ", body)  # a regex that starts with a literal: fast
    end = len(body)
    while body.endswith(b"\r\n", 0, end):  # the empty lines at the end (as dkimpy reads it)
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2: the name in lower case, the value unfolded, its whitespace runs one
    space, none at either end; "name:value"."""
    value = _WSP.sub(b" ", _FOLD.sub(b"", value).replace(b"\r\n", b"")).strip(b" \t")
    return name.strip(b" \t").lower() + b":" + value


def split_headers(message: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields of ``message`` (name, raw value with its folding)."""
    head = message.split(b"\r\n\r\n", 1)[0]
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif b":" in line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


class Signer:
    def __init__(self, keys: Sequence[LoadedKey]) -> None:
        import dkim  # its folding of the signature header (imported when signing)

        self._fold = dkim.fold
        self.keys = list(keys)

    def sign(self, message: bytes, *, now: int | None = None) -> bytes:
        """``message`` (CRLF line ends) with a DKIM-Signature per key in front."""
        head_end = message.find(b"\r\n\r\n")
        body = message[head_end + 4 :] if head_end >= 0 else b""
        fields = split_headers(message)
        by_name: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            by_name.setdefault(name.strip().lower(), []).append(value)
        include = [h for h in SIGNED if h in by_name]
        # Each name once, its last field (RFC 6376 5.4.2: from the bottom up).
        signed = b"".join(relaxed_header(h, by_name[h][-1]) + b"\r\n" for h in include)
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        stamp = str(now if now is not None else int(time.time())).encode()
        out = []
        for key in self.keys:
            tags = [
                (b"v", b"1"), (b"a", key.algorithm), (b"c", CANON), (b"d", key.domain.encode()),
                (b"s", key.selector.encode()), (b"t", stamp), (b"h", b" : ".join(include)),
                (b"bh", body_hash), (b"b", b""),
            ]  # fmt: skip
            value = self._fold(b"; ".join(b"=".join(t) for t in tags), namelen=len(NAME),
                               linesep=b"\r\n")  # fmt: skip
            digest = hashlib.sha256(signed + relaxed_header(NAME, b" " + value)).digest()
            tags[-1] = (b"b", base64.b64encode(_signature(key, digest)))
            value = self._fold(b"; ".join(b"=".join(t) for t in tags) + b"\r\n",
                               namelen=len(NAME), linesep=b"\r\n")  # fmt: skip
            out.append(NAME + b": " + value)
        return b"".join(out) + message


def _signature(key: LoadedKey, digest: bytes) -> bytes:
    if key.kind == "ed25519":  # RFC 8463: Ed25519 over the SHA-256 of the signed headers
        return key.key.sign(digest)  # type: ignore[attr-defined]
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    return key.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))  # type: ignore[attr-defined]


def signer_for(settings: DkimSettings, base_dir: str = ".") -> Signer | None:
    """The signer of ``[dkim]``, or None when no key is configured. Raises ConfigError."""
    from pathlib import Path

    keys = []
    for domain, selector, path in settings.all_keys():
        if not (domain and selector and path):
            raise ConfigError("[dkim] needs domain, selector and private_key_file for each key")
        full = Path(path) if Path(path).is_absolute() else Path(base_dir) / path
        keys.append(load(full, domain=domain, selector=selector))
    return Signer(keys) if keys else None
