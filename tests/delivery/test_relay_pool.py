"""Several relays ([[smtp]] as a list): weights, routing by sender, failover, and the whole
path through `issue send` with one of two real aiosmtpd relays stopped half way."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import threading
import time
from collections import Counter

import pytest

from newsletter.config import SendingSettings, load_settings
from newsletter.delivery.transports import (
    Envelope,
    Relay,
    RelayPool,
    Result,
    SmtpTransport,
    TransportError,
    make_transport,
)
from newsletter.errors import ConfigError
from tests.delivery.test_send_issue import _newsletter, seed, show

from .conftest import HANG, by_key, envelope


def _pool(*servers_and_options, down_seconds: float = 60.0) -> RelayPool:
    relays = []
    for i, (server, options) in enumerate(servers_and_options):
        settings = server.settings(**({"name": f"relay{i}", "concurrency": 4} | options))
        relays.append(Relay(settings, SmtpTransport(settings)))
    return RelayPool(relays, down_seconds=down_seconds)


def _send(pool: RelayPool, envelopes: list[Envelope]) -> list[Result]:
    reported: list[Result] = []

    async def report(result: Result) -> None:
        reported.append(result)

    async def run() -> list[Result]:
        try:
            return await pool.send(envelopes, report)
        finally:
            await pool.aclose()

    results = asyncio.run(run())
    assert {r.key for r in reported} <= {r.key for r in results}
    return results


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_weights_share_the_messages_while_both_relays_keep_up(smtp_server):
    light, heavy = smtp_server(data_delay=0.002), smtp_server(data_delay=0.002)
    pool = _pool(
        (light, {"weight": 1, "concurrency": 4}), (heavy, {"weight": 3, "concurrency": 12})
    )
    results = _send(pool, [envelope(k) for k in range(1, 801)])
    assert {r.outcome for r in results} == {"sent"} and len(by_key(results)) == 800
    counts = Counter(r.relay for r in results)
    assert counts["relay0"] == len(light.handler.messages)
    assert counts["relay1"] == len(heavy.handler.messages)
    # 1 : 3 (200 : 600) when both keep up; a relay that falls behind passes work on, so allow
    # for a busy machine, but the heavier one must carry clearly more.
    assert 1.8 <= counts["relay1"] / counts["relay0"] <= 5, counts
    assert set(light.handler.recipients()).isdisjoint(heavy.handler.recipients())


def test_a_standby_relay_carries_nothing_while_the_weighted_one_works(smtp_server):
    main, standby = smtp_server(), smtp_server()
    pool = _pool((main, {}), (standby, {"weight": 0}))
    results = _send(pool, [envelope(k) for k in range(1, 101)])
    assert {r.relay for r in results} == {"relay0"} and len(main.handler.messages) == 100
    assert standby.handler.messages == []


def test_from_domains_route_by_the_sender(smtp_server):
    news, other = smtp_server(), smtp_server()
    pool = _pool((news, {"from_domains": ("news.example.com",)}), (other, {}))

    def env(k: int, domain: str) -> Envelope:
        base = envelope(k)
        return Envelope(k, base.mail_from, base.rcpt_to, base.data, from_domain=domain)

    envelopes = [env(k, "news.example.com" if k % 2 else "shop.example.org") for k in range(1, 201)]
    results = by_key(_send(pool, envelopes))
    for k in range(2, 201, 2):  # the shop's mail may not go through the news relay
        assert results[k].relay == "relay1"
    assert len(news.handler.messages) > 0
    shop = {f"user{k}@example.com" for k in range(2, 201, 2)}
    assert shop.isdisjoint(news.handler.recipients())


def test_a_relay_that_is_not_there_is_left_out_and_the_other_sends_all(smtp_server):
    good = smtp_server()

    class Missing:
        def settings(self, **options):
            return good.settings(**({"port": _free_port()} | options))

    pool = _pool((Missing(), {"name": "gone"}), (good, {"name": "good"}), down_seconds=30)
    results = _send(pool, [envelope(k) for k in range(1, 301)])
    assert {r.outcome for r in results} == {"sent"} and {r.relay for r in results} == {"good"}
    assert Counter(good.handler.recipients()).most_common(1)[0][1] == 1
    assert len(good.handler.messages) == 300
    gone = next(r for r in pool.relays if r.name == "gone")
    assert gone.down_until > time.monotonic() + 20 and gone.outages == 1


def test_no_relay_reachable_raises_unreachable_and_nothing_is_sent():
    ports = [_free_port(), _free_port()]

    class Missing:
        def __init__(self, port: int) -> None:
            self.port = port

        def settings(self, **options):
            from newsletter.config import SmtpSettings

            values = {"host": "127.0.0.1", "port": self.port, "timeout": 5.0}
            return SmtpSettings(**(values | options))

    pool = _pool((Missing(ports[0]), {}), (Missing(ports[1]), {}))
    with pytest.raises(TransportError) as caught:
        _send(pool, [envelope(k) for k in range(1, 21)])
    error = caught.value
    assert error.unreachable
    assert f"127.0.0.1:{ports[0]}" in str(error) and f"127.0.0.1:{ports[1]}" in str(error)
    assert "no attempt was used" in str(error)
    assert sorted(r.key for r in error.results) == list(range(1, 21))
    assert {r.outcome for r in error.results} == {"deferred"}


def test_a_relay_that_answers_421_again_and_again_is_taken_out(smtp_server):
    busy, calm = smtp_server(), smtp_server()
    busy.handler.rule("MAIL", lambda address: "421 4.3.2 Service shutting down")
    pool = _pool((busy, {"name": "busy"}), (calm, {"name": "calm"}))
    results = _send(pool, [envelope(k) for k in range(1, 201)])
    assert {r.outcome for r in results} == {"sent"} and {r.relay for r in results} == {"calm"}
    assert len(calm.handler.messages) == 200 and busy.handler.messages == []
    # taken out after 3 broken-off transactions in a row (plus what was in flight then)
    assert len(busy.handler.commands("MAIL")) <= 3 + 4
    assert next(r for r in pool.relays if r.name == "busy").down_until > time.monotonic()


def test_an_envelope_a_relay_could_not_try_after_the_rest_was_sent_goes_to_the_other(
    smtp_server,
):
    # One of relay0's two connections hangs in EHLO until its timeout; the other connection
    # sends everything else and asks for more while the hung one still holds its envelope.
    # That connection must not wait for it (it only comes back once every connection of
    # relay0 has stopped asking): relay1 sends it.
    slow_start, other = smtp_server(), smtp_server()
    slow_start.handler.inject("EHLO", "", HANG)
    pool = _pool((slow_start, {"concurrency": 2, "timeout": 2.0}), (other, {"concurrency": 1}))

    async def run() -> list[Result]:
        try:
            return await asyncio.wait_for(pool.send([envelope(k) for k in range(1, 31)]), 30)
        finally:
            await pool.aclose()

    results = by_key(asyncio.run(run()))
    assert sorted(results) == list(range(1, 31))
    assert {r.outcome for r in results.values()} == {"sent"}
    both = Counter(slow_start.handler.recipients()) + Counter(other.handler.recipients())
    assert len(both) == 30 and max(both.values()) == 1


def test_a_relay_held_to_its_rate_passes_the_rest_to_the_other(smtp_server):
    slow, fast = smtp_server(), smtp_server()
    pool = _pool((slow, {"rate_per_second": 20.0}), (fast, {}))
    started = time.monotonic()
    results = _send(pool, [envelope(k) for k in range(1, 401)])
    elapsed = time.monotonic() - started
    assert {r.outcome for r in results} == {"sent"}
    slow_count = len(slow.handler.messages)
    assert slow_count <= 20 * elapsed + 2, (slow_count, elapsed)
    assert slow_count + len(fast.handler.messages) == 400


def test_a_relay_refusing_our_settings_stops_the_send_naming_it(smtp_server):
    good, strict = smtp_server(), smtp_server(auth=True, auth_require_tls=False)
    pool = _pool(
        (good, {"name": "good"}),
        (strict, {"name": "strict", "username": "user", "password": "wrong"}),
    )
    with pytest.raises(TransportError) as caught:
        _send(pool, [envelope(k) for k in range(1, 101)])
    assert "SMTP relay strict" in str(caught.value) and "authentication" in str(caught.value)
    keys = [r.key for r in caught.value.results]
    assert sorted(keys) == list(range(1, 101))  # one result each: sent, or deferred untried
    sent = {f"user{r.key}@example.com" for r in caught.value.results if r.outcome == "sent"}
    assert sent == set(good.handler.recipients())


# -- the config --------------------------------------------------------------------------------


def _write(tmp_path, text: str):
    path = tmp_path / "newsletter.toml"
    path.write_text(text)
    return path


def test_the_config_takes_a_list_of_relays_and_one_smtp_table_as_before(tmp_path):
    settings = load_settings(_write(tmp_path, (
        '[[smtp]]\nname = "postfix"\nhost = "127.0.0.1"\nport = 2525\nweight = 3\n'
        'concurrency = 6\nfrom_domains = ["News.Example.com"]\n'
        '[[smtp]]\nhost = "smtp.example.net"\nport = 587\nsecurity = "starttls"\n'
        "weight = 0\nrate_per_second = 14\n"
        '[sender]\nfrom_address = "hello@news.example.com"\n'
    )))  # fmt: skip
    relays = settings.smtp_relays()
    assert [r.label for r in relays] == ["postfix", "smtp.example.net:587"]
    assert relays[0].from_domains == ("news.example.com",) and relays[1].weight == 0
    assert settings.smtp == relays[0] and settings.smtp_connections() == 14
    one = load_settings(_write(tmp_path, '[smtp]\nhost = "127.0.0.1"\nport = 2525\n'))
    assert one.relays == () and one.smtp_relays() == (one.smtp,) and one.smtp.port == 2525


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[smtp]]\nport = "x"\n[[smtp]]\nport = 25\n', "smtp[0].port: expected an integer"),
        ('[[smtp]]\nname = "a"\n[[smtp]]\nname = "a"\n', "two relays are called 'a'"),
        ("[[smtp]]\nweight = 0\n[[smtp]]\nport = 26\nweight = 0\n", "every relay has weight 0"),
        ('[[smtp]]\nfrom_domains = ["x.org"]\n[[smtp]]\nport = 26\nfrom_domains = ["y.org"]\n',
         "no relay may send mail from example.com"),
        ('[[smtp]]\npassword = "s"\n[[smtp]]\nport = 26\n', "smtp[0].password: unknown key"),
        ("smtp = []\n", "smtp: an empty list"),
        ('[[smtp]]\nfrom_domains = ["a b"]\n', "from_domains"),
    ],
)  # fmt: skip
def test_bad_relay_lists_are_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_each_relay_reads_its_own_password(tmp_path, monkeypatch):
    monkeypatch.setenv("PW_ONE", "pw-one-7f3a")
    monkeypatch.setenv("PW_TWO", "pw-two-9c1e")
    settings = load_settings(_write(tmp_path, (
        '[[smtp]]\nusername = "u"\npassword_env = "PW_ONE"\n'
        '[[smtp]]\nport = 26\nusername = "u"\npassword_env = "PW_TWO"\n'
    )))  # fmt: skip
    assert [r.password for r in settings.smtp_relays()] == ["pw-one-7f3a", "pw-two-9c1e"]
    assert "pw-two-9c1e" not in repr(settings) and "pw-one-7f3a" not in repr(settings)


def test_make_transport_builds_a_pool_only_for_several_relays(tmp_path):
    settings = load_settings(_write(tmp_path, "[[smtp]]\nport = 2525\n[[smtp]]\nport = 2526\n"))
    pool = make_transport(
        settings.smtp, SendingSettings(), base_dir=tmp_path, relays=settings.smtp_relays()
    )
    assert isinstance(pool, RelayPool) and [r.name for r in pool.relays] == [
        "localhost:2525",
        "localhost:2526",
    ]
    single = make_transport(settings.smtp, SendingSettings(), base_dir=tmp_path)
    assert isinstance(single, SmtpTransport)


# -- through `issue send` -----------------------------------------------------------------------


def _relay_config(cli, servers, *, concurrency: int = 4, **sending) -> None:
    values = {"retry_backoff_seconds": 60, "max_attempts": 3, "batch_size": 100} | sending
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
    relays = "".join(
        f'[[smtp]]\nname = "relay-{i}"\nhost = "127.0.0.1"\nport = {s.port}\ntimeout = 10.0\n'
        f"concurrency = {concurrency}\nmax_messages_per_connection = 50\n\n"
        for i, s in enumerate(servers)
    )
    text = cli.config.read_text()
    cli.config.write_text(f"{text}\n{relays}[sending]\n{lines}\n")


@pytest.mark.serial
@pytest.mark.timeout(400)
def test_one_of_two_relays_stopped_half_way_the_other_delivers_the_rest_once(
    cli, smtp_server, tmp_path
) -> None:
    first, second = smtp_server(data_delay=0.01), smtp_server(data_delay=0.01)
    _relay_config(cli, [first, second])
    n = 2000
    emails = seed(cli, tmp_path, n)
    assert len(load_settings(cli.config).smtp_relays()) == 2

    def received() -> int:
        return len(first.handler.messages) + len(second.handler.messages)

    proc = _newsletter(cli.config, "issue", "send", "1")
    deadline = time.monotonic() + 120
    while received() < n // 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if received() < n // 2:
        out, err = proc.communicate(timeout=60) if proc.poll() is not None else ("", "")
        pytest.fail(f"the send did not get half way: {received()} received; {out}{err}")
    assert len(first.handler.messages) > 0 and len(second.handler.messages) > 0
    stopper = threading.Thread(target=smtp_server.stop_port, args=(first.port,))
    stopper.start()
    out, err = proc.communicate(timeout=300)
    stopper.join()
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err
    assert f"Issue 1 sent: {n} sent, 0 deferred" in out
    assert "relay.down name=relay-0" in err  # the operator is told which relay went away

    both = Counter(first.handler.recipients()) + Counter(second.handler.recipients())
    assert set(both) == set(emails), f"{n - len(set(both) & set(emails))} not delivered"
    assert max(both.values()) == 1, [e for e, c in both.items() if c > 1]
    info = show(cli)
    assert info["deliveries"]["sent"] == n
    relays = info["relays"]
    assert relays["relay-0"]["sent"] == len(first.handler.messages)
    assert relays["relay-1"]["sent"] == len(second.handler.messages)
    assert relays["relay-1"]["sent"] > relays["relay-0"]["sent"]  # it took over the rest
    text = cli.ok("issue", "show", "1").stdout
    assert f"relay     relay-1: {relays['relay-1']['sent']} sent" in text


def test_check_opens_a_session_with_each_relay_and_names_the_one_that_fails(
    cli, smtp_server
) -> None:
    up, port = smtp_server(), _free_port()
    cli.config.write_text(
        cli.config.read_text()
        + f'\n[[smtp]]\nname = "main"\nhost = "127.0.0.1"\nport = {up.port}\n'
        + f'\n[[smtp]]\nname = "spare"\nhost = "127.0.0.1"\nport = {port}\ntimeout = 3.0\n'
    )
    result = cli("check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok   smtp main") and "PIPELINING" in line for line in lines)
    (failed,) = [line for line in lines if line.startswith("FAIL smtp spare")]
    assert f"127.0.0.1:{port}" in failed and "connection refused" in failed
    assert up.handler.messages == []


def test_no_relay_reachable_through_issue_send_is_one_line_and_uses_no_attempt(
    cli, tmp_path
) -> None:
    class Missing:
        def __init__(self) -> None:
            self.port = _free_port()

    missing = [Missing(), Missing()]
    _relay_config(cli, missing)
    n = 50
    seed(cli, tmp_path, n)
    proc = _newsletter(cli.config, "issue", "send", "1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    (line,) = err.strip().splitlines()  # one line: no warning per relay, no traceback
    assert "cannot reach any SMTP relay" in line and "no attempt was used" in line
    for relay in missing:
        assert f"127.0.0.1:{relay.port}" in line
    missed = json.loads(cli.ok("issue", "missed", "1", "--json").stdout)
    assert len(missed) == n and {m["attempts"] for m in missed} == {0}
    assert show(cli)["deliveries"]["pending"] == n


@pytest.mark.timeout(300)
def test_kill_9_through_two_relays_loses_nobody_and_doubles_at_most_the_window(
    cli, smtp_server, tmp_path
) -> None:
    # 2 relays x 2 connections: on the wire at most 4, waiting to be recorded at most 4.
    window = 2 * 4
    servers = [smtp_server(data_delay=0.02), smtp_server(data_delay=0.02)]
    _relay_config(cli, servers, concurrency=2)
    n = 800
    emails = seed(cli, tmp_path, n)
    point = random.Random().randrange(100, n - 200)

    def arrived() -> list:
        return sorted((m for s in servers for m in s.handler.messages), key=lambda m: m.at)

    proc = _newsletter(cli.config, "issue", "send", "1")
    deadline = time.monotonic() + 120
    while len(arrived()) < point and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the sender and its worker processes, at once
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(s.handler.open_sessions for s in servers) and time.monotonic() < deadline:
        time.sleep(0.05)  # the killed sender's last messages are in or gone
    before = {m.rcpt_tos[0] for m in arrived()}
    out = cli.ok("issue", "send", "1").stdout
    assert f"Issue 1 sent: {n} sent" in out
    after = [m.rcpt_tos[0] for m in arrived()]
    assert set(after) == set(emails)  # nobody lost
    again = Counter(after) - Counter(set(after))
    assert set(again) <= before and sum(again.values()) <= window, (point, sorted(again))
    assert show(cli)["deliveries"]["sent"] == n
