"""DKIM with the real parts: `dkim keygen`, `issue send` to aiosmtpd, and dkimpy verifying what
the server received with the published keys (DNS answered by the test), RSA-2048 and
Ed25519 side by side; a header changed after signing fails; keys 0600, never printed."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import dkim
import pytest

from newsletter.check import check_dkim
from newsletter.config import load_settings

from .test_send_issue import seed, smtp_config


def _keygen(cli, tmp_path: Path, selector: str, kind: str) -> tuple[Path, str, str]:
    key = tmp_path / f"{selector}.pem"
    out = cli.ok("dkim", "keygen", "--domain", "example.com", "--selector", selector,
                 "--type", kind, "--out", str(key))  # fmt: skip
    name, record = out.stdout.strip().split(" IN TXT ")
    text = "".join(re.findall(r'"([^"]*)"', record))
    assert name == f"{selector}._domainkey.example.com."
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    pem = key.read_text()
    body = "".join(pem.splitlines()[1:-1])
    assert body[:40] not in out.stdout + out.stderr  # the private key is never printed
    return key, name, text


def _dns(records: dict[str, str]):
    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        value = records.get(name.decode())
        return value.encode() if value is not None else None

    return lookup


def test_received_messages_verify_with_rsa_and_ed25519(cli, smtp_server, tmp_path) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    rsa_key, rsa_name, rsa_record = _keygen(cli, tmp_path, "r2026", "rsa")
    ed_key, ed_name, ed_record = _keygen(cli, tmp_path, "e2026", "ed25519")
    assert "k=rsa" in rsa_record and "k=ed25519" in ed_record
    cli.config.write_text(
        cli.config.read_text()
        + f'\n[dkim]\ndomain = "example.com"\nselector = "r2026"\nprivate_key_file = "{rsa_key}"\n'
        + f'[[dkim.keys]]\nselector = "e2026"\nprivate_key_file = "{ed_key}"\n'
    )
    seed(cli, tmp_path, 20)
    cli.ok("issue", "send", "1")
    assert len(server.handler.messages) == 20
    lookup = _dns({rsa_name: rsa_record, ed_name: ed_record})
    for message in server.handler.messages:
        signed = dkim.DKIM(message.content)
        assert signed.verify(idx=0, dnsfunc=lookup) and signed.verify(idx=1, dnsfunc=lookup)
        algorithms = re.findall(rb"a=([\w-]+);", message.content.split(b"\r\n\r\n")[0])
        assert algorithms == [b"rsa-sha256", b"ed25519-sha256"]
    header = server.handler.messages[0].content.split(b"\r\n\r\n")[0]
    signed_names = re.search(rb"h=([^;]+);", header.replace(b"\r\n ", b"")).group(1)
    for name in (b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe",
                 b"list-unsubscribe-post", b"mime-version", b"content-type"):  # fmt: skip
        assert name in signed_names.replace(b" ", b"").split(b":")
    assert b"c=relaxed/relaxed" in header
    # A header changed after signing: both signatures fail.
    changed = re.sub(rb"\r\nSubject: ", b"\r\nSubject: RE: ", server.handler.messages[0].content)
    tampered = dkim.DKIM(changed)
    assert not tampered.verify(idx=0, dnsfunc=lookup)
    assert not tampered.verify(idx=1, dnsfunc=lookup)

    # `newsletter check` compares the published record with the key.
    settings = load_settings(cli.config)
    good = check_dkim(settings, lookup=lambda name: [{rsa_name: rsa_record,
                                                      ed_name: ed_record}[name + "."]])  # fmt: skip
    assert [c.level for c in good] == ["ok", "ok"]
    other = check_dkim(settings, lookup=lambda name: ["v=DKIM1; k=rsa; p=MIIBIjANBgkq"])
    assert [c.level for c in other] == ["fail", "fail"] and "another key" in other[0].detail
    offline = check_dkim(settings, lookup=lambda name: None)
    assert [c.level for c in offline] == ["warn", "warn"] and "not checked" in offline[0].detail


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("missing", "No such file"),
        ("open", "readable by others"),
        ("garbage", "not a PEM private key"),
    ],
)
def test_an_unusable_key_is_one_line_before_anything_is_sent(
    cli, smtp_server, tmp_path, setup, says
) -> None:
    server = smtp_server()
    smtp_config(cli, server)
    key = tmp_path / "k.pem"
    if setup != "missing":
        key.write_text("not a key" if setup == "garbage" else "")
        if setup == "open":
            key.write_text(_keygen(cli, tmp_path, "s1", "ed25519")[0].read_text())
        key.chmod(0o644 if setup == "open" else 0o600)
    cli.config.write_text(cli.config.read_text() + f'\n[dkim]\ndomain = "example.com"\n'
                          f'selector = "s1"\nprivate_key_file = "{key}"\n')  # fmt: skip
    seed(cli, tmp_path, 3)
    result = cli("issue", "send", "1")
    assert result.exit_code == 1 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert server.handler.messages == []
    assert cli.ok("issue", "show", "1", "--json").stdout.count('"draft"') >= 1


def test_keygen_refuses_to_overwrite(cli, tmp_path) -> None:
    key, _, _ = _keygen(cli, tmp_path, "s1", "rsa")
    before = key.read_bytes()
    again = cli("dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--out", str(key))
    assert again.exit_code == 1 and "exists already" in again.stderr
    assert key.read_bytes() == before


def test_the_fast_canonicalization_is_dkimpys() -> None:
    """The body and header canonicalization done here on the whole message at once gives
    exactly what dkimpy's (line by line) gives, for bodies of spaces, tabs and empty lines."""
    import random

    from dkim.canonicalization import Relaxed

    from newsletter.dkim.sign import relaxed_body, relaxed_header

    rng = random.Random(17)
    pieces = [b" ", b"\t", b"a", b"=20", b"\r\n", b"  ", b"\r\n\r\n", b" \t "]
    for _ in range(2000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert relaxed_body(body) == Relaxed.canonicalize_body(body), body
        value = b" " + body.replace(b"\r\n", b"\r\n ")
        (name, expected), = Relaxed.canonicalize_headers([(b"Subject", value)])  # fmt: skip
        assert relaxed_header(b"Subject", value) == name + b":" + expected.rstrip(b"\r\n")
