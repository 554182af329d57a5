"""Sending through a real Postfix (STARTTLS, AUTH by Dovecot SASL): 5,000 recipients, each
delivered exactly once to the Maildir, no complaint about the client in Postfix's log
(improper pipelining, lost connection, ...), and the DKIM signatures of what Postfix
delivered verify (RSA and Ed25519)."""

from __future__ import annotations

import email
import email.policy
import os
import re
import time
from collections import Counter

import dkim
import pytest

from tests.delivery.postfix import PASSWORD, USER, postfix_binary, start_postfix
from tests.delivery.test_dkim import _dns, _keygen
from tests.delivery.test_send_issue import seed

N = 5000
# What Postfix says about a client that misbehaves; none may appear.
CLIENT_WARNINGS = re.compile(
    r"improper command pipelining|lost connection after|too many errors after|"
    r"timeout after|non-SMTP command|Illegal address syntax|warning: .*\[127\.0\.0\.1\]"
)


@pytest.mark.serial
@pytest.mark.skipif(postfix_binary() is None or os.getuid() != 0,
                    reason="needs Debian's postfix and root (.ci/run installs it)")  # fmt: skip
def test_5000_through_postfix_each_once_signed(cli, tls_files, tmp_path, monkeypatch) -> None:
    rsa_key, rsa_name, rsa_record = _keygen(cli, tmp_path, "r2026", "rsa")
    ed_key, ed_name, ed_record = _keygen(cli, tmp_path, "e2026", "ed25519")
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
    with start_postfix(tls_files) as postfix:
        cli.config.write_text(
            cli.config.read_text()
            + f'\n[smtp]\nhost = "127.0.0.1"\nport = {postfix.port}\nsecurity = "starttls"\n'
            f'username = "{USER}"\nca_file = "{tls_files.ca}"\ntimeout = 30.0\n'
            "concurrency = 8\n"
            f'\n[dkim]\ndomain = "example.com"\nselector = "r2026"\n'
            f'private_key_file = "{rsa_key}"\n'
            f'[[dkim.keys]]\nselector = "e2026"\nprivate_key_file = "{ed_key}"\n'
        )
        emails = seed(cli, tmp_path, N)
        out = cli.ok("issue", "send", "1")
        assert f"{N} sent" in out.stdout, out.stdout
        deadline = time.monotonic() + 120
        while len(postfix.delivered()) < N and time.monotonic() < deadline:
            time.sleep(0.2)  # polling Postfix's delivery into the Maildir, bounded
        log = postfix.log()
        files = postfix.delivered()
        assert len(files) == N, log[-3000:]
        received: Counter[str] = Counter()
        lookup = _dns({rsa_name: rsa_record, ed_name: ed_record})
        for i, path in enumerate(files):
            raw = path.read_bytes()
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            received[str(msg["Delivered-To"])] += 1
            if i % 100 == 0:  # the signatures of a sample, as Postfix delivered them
                signed = dkim.DKIM(raw)
                assert signed.verify(idx=0, dnsfunc=lookup)
                assert signed.verify(idx=1, dnsfunc=lookup)
    assert set(received) == set(emails) and set(received.values()) == {1}
    assert not CLIENT_WARNINGS.findall(log), CLIENT_WARNINGS.findall(log)[:5]
    assert "sasl_method=PLAIN, sasl_username=newsletter" in log
    assert re.search(r"Anonymous TLS connection established|TLS connection established", log) or (
        "starttls=1" in log
    )
