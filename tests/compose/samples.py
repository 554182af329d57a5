"""Sample settings and recipients for the composer tests (the fixtures are in conftest)."""

from __future__ import annotations

from pathlib import Path

from newsletter.compose import Recipient
from newsletter.config import Settings, settings_from_dict

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "compose"

CONFIG = {
    "site": {
        "name": "Field Notes",
        "base_url": "https://fieldnotes.example.com",
        "postal_address": "Field Notes AB, Storgatan 12, 114 51 Stockholm, Sweden",
    },
    "sender": {
        "from_name": "Maja Lindqvist",
        "from_address": "maja@fieldnotes.example.com",
        "reply_to": "replies@fieldnotes.example.com",
    },
    "sending": {
        "feedback_id": "essays:fieldnotes:newsletter:fn42",
        "unsubscribe_mailto": "unsubscribe@fieldnotes.example.com",
    },
}


def make_settings(**sections: dict) -> Settings:
    """The sample config with some sections' keys replaced."""
    raw = {name: dict(values) for name, values in CONFIG.items()}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return settings_from_dict(raw)


ADA = Recipient(
    subscriber_id=7, email="ada@example.org", name="Ada Lovelace", token="Qm9vdHN0cmFwVG9rZW4xMjM"
)
RECIPIENTS = (
    ADA,
    Recipient(subscriber_id=8, email="asa@example.org", name="Åsa Öberg-Ñúñez", token="tok8abcdef"),
    Recipient(subscriber_id=9, email="no.name@example.com", name="", token="tok9abcdef"),
    Recipient(
        subscriber_id=10,
        email="quoted@example.com",
        name='Dr. "Q" O\'Brien, PhD <boss> =?utf-8?q?x?=',
        token="tok10abcdef",
    ),
    Recipient(subscriber_id=11, email="jurgen@bücher.example", name="Jürgen", token="tok11abc"),
    Recipient(subscriber_id=12, email="zoe@example.com", name="Zoë 🦊 " * 30, token="tok12abc"),
)
