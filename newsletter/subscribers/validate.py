"""Address validation and field cleaning, shared by the importer, the CLI and the web forms."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email

from ..errors import InvalidEmailError

MAX_NAME_LENGTH = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s{2,}")


class Address(NamedTuple):
    """A validated address: ``email`` as stored (domain lower-cased), ``key`` for uniqueness."""

    email: str
    key: str


def normalise_email(raw: str) -> Address:
    """Validate syntax (no DNS) and normalise. Raises InvalidEmailError with the reason."""
    text = raw.strip()
    if not text:
        raise InvalidEmailError(raw, "it is empty")
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailError(text, str(exc)) from None
    email = info.normalized
    return Address(email, email.lower())


def clean_name(raw: str | None) -> str:
    """A display name safe for headers and CSV: no control characters (CR/LF), single spaces."""
    if not raw:
        return ""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", raw)).strip()
    return text[:MAX_NAME_LENGTH]


def suppression_hash(email_key: str) -> str:
    """SHA-256 of the lower-cased address: what is kept of an erased person."""
    return hashlib.sha256(email_key.encode("utf-8")).hexdigest()
