"""Address validation: the cached fast path gives exactly what email-validator gives."""

from __future__ import annotations

import random

import pytest

from newsletter.errors import InvalidEmailError
from newsletter.subscribers.validate import (
    clean_name,
    normalise_email,
    normalise_email_uncached,
)

CORPUS = [
    "ada@example.com", "Ada.Lovelace@Example.COM", "POSTMASTER@example.com", "Abuse@Example.org",
    "user+tag@example.co.uk", "o'brien@example.ie", "a.b.c@example.com", "x@bücher.de",
    "X@XN--BCHER-KVA.DE", "jürgen@bücher.de", "a..b@example.com", ".a@example.com",
    "a.@example.com", "a@example", "a@localhost", "a@example.test", "a@-bad.com",
    "a@[192.0.2.1]", '"quoted"@example.com', "a" * 64 + "@example.com",
    "a" * 65 + "@example.com", "b" * 60 + "@" + ("d" * 60 + ".") * 3 + "com",
    "c@" + "x" * 64 + ".com", "plain@EXAMPLE.com", "semi;colon@example.com",
    "space in@example.com", "emoji😀@example.com", "trailing@example.com.",
]  # fmt: skip


def outcome(fn, address):
    try:
        return fn(address)
    except InvalidEmailError as exc:
        return ("error", exc.reason)


@pytest.mark.parametrize("address", CORPUS)
def test_fast_path_equals_email_validator(address: str) -> None:
    reference = outcome(normalise_email_uncached, address)
    # Twice: the first call may fill the domain cache, the second uses it.
    assert outcome(normalise_email, address) == reference
    assert outcome(normalise_email, address) == reference


def test_fast_path_on_random_local_parts_of_known_domains() -> None:
    rnd = random.Random(7)
    alphabet = "abcXYZ019.+-_'!#~=@\\\" é"
    domains = ["example.com", "Example.COM", "bücher.de", "xn--bcher-kva.de"]
    for _ in range(3000):
        local = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 70)))
        address = f"{local}@{rnd.choice(domains)}"
        assert outcome(normalise_email, address) == outcome(normalise_email_uncached, address)


def test_normalisation() -> None:
    assert normalise_email("  Ada@Example.COM ") == ("Ada@example.com", "ada@example.com")
    with pytest.raises(InvalidEmailError, match="is not a valid email address"):
        normalise_email("nobody")


def test_clean_name_removes_line_breaks_and_controls() -> None:
    assert clean_name("Mal\r\nBcc: x@example.org\t\x00 ") == "Mal Bcc: x@example.org"
    assert clean_name("x" * 500) == "x" * 200
    assert clean_name(None) == ""
