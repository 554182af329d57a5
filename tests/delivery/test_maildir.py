"""The maildir transport: one parseable .eml file per envelope, moved into new/ when complete."""

from __future__ import annotations

import asyncio
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from newsletter.config import SendingSettings, SmtpSettings
from newsletter.delivery.transports import (
    MaildirTransport,
    TransportError,
    make_transport,
)

from .conftest import SENDER, by_key, envelope


def test_each_envelope_becomes_one_parseable_file_in_new(tmp_path: Path):
    transport = make_transport(
        SmtpSettings(),
        SendingSettings(transport="maildir", maildir_path="outbox"),
        base_dir=tmp_path,
    )
    envelopes = [envelope(k) for k in range(1, 4)] + [
        envelope(4, "j\u00f6rg@example.com", smtputf8=True)
    ]

    results = by_key(asyncio.run(transport.send(envelopes)))

    maildir = tmp_path / "outbox"
    assert {r.outcome for r in results.values()} == {"sent"}
    assert sorted(p.name for p in maildir.iterdir()) == ["cur", "new", "tmp"]
    assert list((maildir / "tmp").iterdir()) == []  # nothing left half-written
    files = sorted((maildir / "new").iterdir())
    assert len(files) == 4
    for env in envelopes:
        (path,) = [p for p in files if f".K{env.key}P" in p.name]
        assert path.suffix == ".eml"
        assert str(path) in results[env.key].text
        raw = path.read_bytes()
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert message["Return-Path"] == f"<{SENDER}>"
        assert message["Delivered-To"] == env.rcpt_to
        assert message["Subject"] == f"Issue {env.key}"
        assert raw.endswith(env.data)  # the message itself is byte-exact


def test_line_break_in_an_address_is_refused(tmp_path: Path):
    transport = MaildirTransport(tmp_path / "outbox")
    bad = envelope(1, "user@example.com\r\nBcc: victim@example.org")

    (result,) = asyncio.run(transport.send([bad]))

    assert result.outcome == "failed"
    assert list((tmp_path / "outbox" / "new").iterdir()) == []


def test_unusable_directory_stops_the_batch(tmp_path: Path):
    (tmp_path / "outbox").write_text("a file, not a directory")
    transport = MaildirTransport(tmp_path / "outbox")

    with pytest.raises(TransportError, match="cannot create the maildir") as caught:
        asyncio.run(transport.send([envelope(1), envelope(2)]))

    assert [r.outcome for r in caught.value.results] == ["deferred", "deferred"]
