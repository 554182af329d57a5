"""VERP tokens: one delivery each, unforgeable, surviving the trip back; the key is shared."""

from __future__ import annotations

import re

import pytest

from newsletter.bounces.verp import VerpCodec, load_key, plain_return_path, sender_for
from newsletter.config import settings_from_dict
from newsletter.errors import ConfigError
from newsletter.store import session_factory
from newsletter.store.models import Secret

KEY = bytes(range(32))
TEMPLATE = "bounces+{token}@news.example.com"


def test_round_trip_and_shape() -> None:
    codec = VerpCodec(TEMPLATE, KEY)
    for delivery_id in (0, 1, 35, 36, 1234, 2**40, 2**63 - 1):
        address = codec.address(delivery_id)
        assert re.fullmatch(r"bounces\+[0-9a-z]{1,13}-[a-z2-7]{16}@news\.example\.com", address)
        assert len(address.partition("@")[0]) <= 64  # RFC 5321 local-part limit
        assert codec.decode(address) == delivery_id
        assert codec.decode(f"<{address.upper()}>") == delivery_id  # case and brackets


def test_tokens_cannot_be_forged_or_moved() -> None:
    codec = VerpCodec(TEMPLATE, KEY)
    address = codec.address(1234)
    token = address[len("bounces+") : address.index("@")]
    id36, mac = token.split("-")
    other = codec.token(1235).split("-")[0]
    assert codec.decode(f"bounces+{other}-{mac}@news.example.com") is None  # moved
    flipped = mac[:-1] + ("a" if mac[-1] != "a" else "b")
    assert codec.decode(f"bounces+{id36}-{flipped}@news.example.com") is None
    assert VerpCodec(TEMPLATE, bytes(32)).decode(address) is None  # another key
    assert codec.decode(address.replace("news.example.com", "example.org")) is None
    assert codec.decode("bounces@news.example.com") is None
    assert codec.decode("bounces+@news.example.com") is None
    assert codec.first(["fbl@news.example.com", address]) == 1234


def test_templates_and_the_plain_return_path() -> None:
    assert (
        VerpCodec("{token}@bounce.example.com", KEY).decode(
            VerpCodec("{token}@bounce.example.com", KEY).address(7)
        )
        == 7
    )
    assert plain_return_path("bounces+{token}@example.com") == "bounces@example.com"
    assert plain_return_path("bounces-{token}@example.com") == "bounces@example.com"
    assert plain_return_path("bounces@example.com") == "bounces@example.com"
    assert plain_return_path("") == ""
    with pytest.raises(ValueError):
        VerpCodec("bounces@example.com", KEY)


@pytest.mark.parametrize(
    "value",
    ["bounces+{token}", "bounces+{token}@{token}.example.com", "a b+{token}@example.com",
     "bounces+{token}{token}@example.com", "bounces+{id}@example.com", "bouncés@example.com"],
)  # fmt: skip
def test_config_refuses_bad_return_paths(value: str) -> None:
    with pytest.raises(ConfigError, match=r"bounces\.return_path"):
        settings_from_dict({"bounces": {"return_path": value}})


def test_config_reads_the_imap_password_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MY_IMAP_SECRET", "s3cret")
    settings = settings_from_dict({"bounces": {"imap_password_env": "MY_IMAP_SECRET"}})
    assert settings.bounces.imap_password == "s3cret"
    assert "s3cret" not in repr(settings)
    with pytest.raises(ConfigError, match=r"bounces\.imap_password: unknown key"):
        settings_from_dict({"bounces": {"imap_password": "in the file"}})
    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", "later")
    assert settings_from_dict({}).bounces.imap_password == "later"  # read when needed


def test_the_key_is_made_once_and_shared(engine) -> None:
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        first = load_key(session)
    with sessions() as session, session.begin():
        assert load_key(session) == first
        assert len(first) == 32
        assert session.query(Secret).count() == 1
    settings = settings_from_dict({"bounces": {"return_path": TEMPLATE}})
    with sessions() as session, session.begin():
        mail_from = sender_for(settings, session)
    assert VerpCodec(TEMPLATE, first).decode(mail_from(99)) == 99
    plain = settings_from_dict({"sender": {"from_address": "letters@example.com"}})
    with sessions() as session, session.begin():
        assert sender_for(plain, session)(99) == "letters@example.com"
