"""Address validation and field cleaning, shared by the importer, the CLI and the web forms."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from ..errors import InvalidEmailError

MAX_NAME_LENGTH = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s{2,}")


class Address(NamedTuple):
    """A validated address: ``email`` as stored (domain lower-cased), ``key`` for uniqueness."""

    email: str
    key: str


# A plain ASCII dot-atom local part (RFC 5322 atext), which email-validator accepts as is.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_MAX_LOCAL, _MAX_ADDRESS = 64, 254
# Domains that passed email-validator, as given -> normalised. Lists repeat a few domains
# (gmail.com, outlook.com...) millions of times; checking each once saves ~80% of the cost.
_valid_domains: dict[str, tuple[str, str]] = {}
_DOMAIN_CACHE_SIZE = 100_000


def normalise_email(raw: str) -> Address:
    """Validate syntax (no DNS) and normalise. Raises InvalidEmailError with the reason.

    Gives exactly what ``email_validator.validate_email(..., check_deliverability=False)``
    gives; an ASCII dot-atom address on an already validated domain skips the repeated
    domain checks (a test compares both paths).
    """
    text = raw.strip()
    if not text:
        raise InvalidEmailError(raw, "it is empty")
    local, _, domain = text.rpartition("@")
    known = _valid_domains.get(domain)
    if known is not None and len(local) <= _MAX_LOCAL and _PLAIN_LOCAL.fullmatch(local):
        if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
            local = local.lower()
        email = f"{local}@{known[0]}"
        longest = max(len(text.encode()), len(email.encode()), len(local) + 1 + len(known[1]))
        if longest <= _MAX_ADDRESS:
            return Address(email, email.lower())
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailError(text, str(exc)) from None
    if not domain.startswith("[") and len(_valid_domains) < _DOMAIN_CACHE_SIZE:
        _valid_domains[domain] = (info.domain, info.ascii_domain)
    email = info.normalized
    return Address(email, email.lower())


def normalise_email_uncached(raw: str) -> Address:
    """The reference path: email-validator on the whole address (tests compare the two)."""
    text = raw.strip()
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailError(text, str(exc)) from None
    return Address(info.normalized, info.normalized.lower())


def clean_name(raw: str | None) -> str:
    """A display name safe for headers and CSV: no control characters (CR/LF), single spaces."""
    if not raw:
        return ""
    if raw.isprintable() and "  " not in raw:  # the common case, checked in C
        return raw.strip()[:MAX_NAME_LENGTH]
    text = _SPACES.sub(" ", _CONTROL.sub(" ", raw)).strip()
    return text[:MAX_NAME_LENGTH]


def suppression_hash(email_key: str) -> str:
    """SHA-256 of the lower-cased address: what is kept of an erased person."""
    return hashlib.sha256(email_key.encode("utf-8")).hexdigest()
