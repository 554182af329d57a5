"""DKIM keys: generate one (RSA-2048 or Ed25519, PKCS#8 PEM, mode 0600), load one, and the DNS
TXT record that publishes its public half."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError

KeyType = Literal["rsa", "ed25519"]
PRIVATE_MODE = 0o600


@dataclass(frozen=True)
class LoadedKey:
    domain: str
    selector: str
    kind: KeyType
    key: object  # a cryptography private key
    path: str

    @property
    def algorithm(self) -> bytes:
        return b"rsa-sha256" if self.kind == "rsa" else b"ed25519-sha256"


def generate(kind: KeyType) -> object:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def write_private(key: object, path: Path) -> None:
    """The key as PKCS#8 PEM in ``path``, created 0600 (never readable by others, even for a
    moment). Refuses to overwrite."""
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        raise ConfigError(f"{path} exists already; choose another --out") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.chmod(path, PRIVATE_MODE)


def public_value(key: object) -> tuple[KeyType, str]:
    """(k=, p=) of the key's DNS record: RSA as base64 SubjectPublicKeyInfo, Ed25519 as the
    base64 raw 32-byte key (RFC 8463)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    public = key.public_key()  # type: ignore[attr-defined]
    if isinstance(public, rsa.RSAPublicKey):
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "rsa", base64.b64encode(der).decode()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "ed25519", base64.b64encode(raw).decode()
    raise ConfigError("a DKIM key is RSA or Ed25519")


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def record_text(key: object) -> str:
    kind, value = public_value(key)
    return f"v=DKIM1; k={kind}; p={value}"


def load(path: str | Path, *, domain: str, selector: str) -> LoadedKey:
    """Read a private key. Raises ConfigError (one line) for a missing, unreadable, world-
    readable or unusable file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"[dkim] private_key_file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"[dkim] private_key_file {path} is readable by others: chmod 600 it")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"[dkim] private_key_file {path}: not a PEM private key ({exc})"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise ConfigError(f"[dkim] {path}: an RSA key of {key.key_size} bits is too short")
        return LoadedKey(domain, selector, "rsa", key, str(path))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return LoadedKey(domain, selector, "ed25519", key, str(path))
    raise ConfigError(f"[dkim] {path}: a DKIM key is RSA or Ed25519")
