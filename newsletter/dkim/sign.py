"""Signing: a ``Signer`` made once per process from ``[dkim]``; ``sign(message)`` puts one
DKIM-Signature per key in front of the message (relaxed/relaxed, sha256)."""

from __future__ import annotations

import base64
import hashlib
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


class Signer:
    def __init__(self, keys: Sequence[LoadedKey]) -> None:
        import dkim  # the canonicalization and folding of dkimpy (imported when signing)

        self._dkim = dkim
        self._policy = dkim.CanonicalizationPolicy.from_c_value(CANON)
        self.keys = list(keys)

    def sign(self, message: bytes, *, now: int | None = None) -> bytes:
        """``message`` (CRLF line ends) with a DKIM-Signature per key in front."""
        dkim = self._dkim
        headers, body = dkim.rfc822_parse(message)
        present = {name.lower() for name, _ in headers}
        include = [h for h in SIGNED if h in present]
        canonical = self._policy.canonicalize_headers(headers)
        body_hash = base64.b64encode(hashlib.sha256(self._policy.canonicalize_body(body)).digest())
        stamp = str(now if now is not None else int(time.time())).encode()
        out = []
        for key in self.keys:
            fields = [
                (b"v", b"1"), (b"a", key.algorithm), (b"c", CANON), (b"d", key.domain.encode()),
                (b"s", key.selector.encode()), (b"t", stamp), (b"h", b" : ".join(include)),
                (b"bh", body_hash), (b"b", b""),
            ]  # fmt: skip
            value = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(NAME),
                              linesep=b"\r\n")  # fmt: skip
            hasher = hashlib.sha256()
            dkim.hash_headers(hasher, self._policy, canonical, include, (NAME, b" " + value),
                              dict(fields))  # fmt: skip
            fields[-1] = (b"b", base64.b64encode(_signature(key, hasher.digest())))
            value = dkim.fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n",
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
