"""Sign-up limits that hold: IPv6 clients are counted by their network (``[web] ipv6_prefix``),
``X-Forwarded-For`` is believed only from ``[web] trusted_proxies`` (the right-most untrusted
hop, malformed values ignored), and a sign-up for a known address does the same work, and so
takes the same time, as one for a new address. Real uvicorn, SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import statistics
import time

import pytest
from sqlalchemy import event, func, select, update

from newsletter.errors import ConfigError
from newsletter.store.models import Confirmation, Subscriber
from newsletter.subscribers.optin import client_network
from newsletter.web.security import TrustedProxies
from newsletter.web.server import listen

from .conftest import forms, wait_for

LIMITED = {"signup_limit_per_ip": 10, "signup_limit_window_seconds": 600}
EXPECTED = [303] * 10 + [429] * 5


def _from(site, address: str, forwarded_for: str | bytes | list[str]):
    """A sign-up through the local (trusted) proxy for the client(s) it names."""
    values = forwarded_for if isinstance(forwarded_for, list) else [forwarded_for]
    headers = [("X-Forwarded-For", v) for v in values]
    return site.http.post("/subscribe", data={"email": address}, headers=headers)


def _consent_ip(site, address: str) -> str:
    """The IP the sign-up's consent event recorded."""
    return site.person(address)["events"][0]["ip"]


def test_fifteen_addresses_of_one_ipv6_64_hit_the_limit_like_one_ipv4_address(web) -> None:
    site = web(**LIMITED)
    ipv4 = [_from(site, f"v4-{n}@example.com", "198.51.100.7").status_code for n in range(15)]
    hosts = [f"2001:db8:1:2:{n * 4099:x}:{n:x}:5efe:{n + 1:x}" for n in range(15)]
    ipv6 = [_from(site, f"v6-{n}@example.com", h).status_code for n, h in enumerate(hosts)]
    assert ipv4 == EXPECTED
    assert ipv6 == EXPECTED
    # With a port, bracketed, the /64 is still the one counted; the next /64 is someone else.
    assert _from(site, "port@example.com", "[2001:db8:1:2::99]:4711").status_code == 429
    assert _from(site, "next@example.com", "2001:db8:1:3::1").status_code == 303
    # An IPv4-mapped IPv6 address is the IPv4 address.
    assert _from(site, "mapped@example.com", "::ffff:198.51.100.7").status_code == 429
    assert _from(site, "v4-other@example.com", "198.51.100.8").status_code == 303
    # The consent record keeps the whole address, not the network.
    assert _consent_ip(site, "v6-3@example.com") == "2001:db8:1:2:3009:3:5efe:4"
    assert _consent_ip(site, "v4-other@example.com") == "198.51.100.8"
    # The window ends for the /64 as for the address.
    site.clock.advance(seconds=601)
    assert _from(site, "later@example.com", "2001:db8:1:2::abcd").status_code == 303


def test_ipv6_prefix_sets_the_network_that_is_counted(web) -> None:
    site = web(signup_limit_per_ip=2, ipv6_prefix=48)
    codes = [
        _from(site, f"p{n}@example.com", f"2001:db8:7:{n}::1").status_code for n in range(1, 4)
    ]
    assert codes == [303, 303, 429]  # three /64s of one /48
    assert _from(site, "other48@example.com", "2001:db8:8::1").status_code == 303
    assert client_network("2001:db8:7:1:2:3:4:5", 128) == "2001:db8:7:1:2:3:4:5/128"
    assert client_network("2001:db8:7:1:2:3:4:5", 64) == "2001:db8:7:1::/64"
    assert client_network("::ffff:192.0.2.1", 64) == "192.0.2.1"
    assert client_network("", 64) == ""


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("ipv6_prefix = 16", "web.ipv6_prefix: expected int >= 32"),
        ("ipv6_prefix = 129", "web.ipv6_prefix: expected int <= 128"),
    ],
)
def test_ipv6_prefix_out_of_range_is_one_line(cli, section: str, message: str) -> None:
    cli.config.write_text(cli.config.read_text() + f"\n[web]\n{section}\n")
    result = cli("check")
    assert result.exit_code != 0
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_forwarded_for_from_an_untrusted_peer_is_ignored(web) -> None:
    site = web(trusted_proxies=["192.0.2.10", "10.0.0.0/8"], **LIMITED)
    codes = [_from(site, f"u{n}@example.com", f"203.0.113.{n}").status_code for n in range(15)]
    assert codes == EXPECTED  # every one counted against the real peer, 127.0.0.1
    assert _consent_ip(site, "u0@example.com") == "127.0.0.1"
    spoofed = _from(site, "u-v6@example.com", "2001:db8:9::1")
    assert spoofed.status_code == 429


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        ("198.51.100.2", "198.51.100.2"),
        ("203.0.113.9, 198.51.100.2", "198.51.100.2"),  # the left one the client wrote itself
        ("198.51.100.2, 10.1.2.3", "198.51.100.2"),  # through a second, trusted, proxy
        ("10.9.9.9, 10.1.2.3", "10.9.9.9"),  # only proxies: the first of them
        (["203.0.113.9", "198.51.100.3"], "198.51.100.3"),  # two headers: one chain
        ("198.51.100.4:51234", "198.51.100.4"),
        ("[2001:db8::5]:443", "2001:db8::5"),
        ("::ffff:198.51.100.6", "198.51.100.6"),
        ("garbage", "127.0.0.1"),  # malformed: ignored, the proxy is the client
        ("198.51.100.2, unknown", "127.0.0.1"),  # not walked past a malformed entry
        ("198.51.100.2, bogus, 10.1.2.3", "10.1.2.3"),  # the last trusted hop
        ("198.51.100.2,", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("1.2.3.4.5, 999.1.1.1, 198.51.100.2:99999", "127.0.0.1"),
        (b"198.51.100.2\xb2", "127.0.0.1"),  # a superscript two (latin-1) is no digit
        (b"198.51.100.2:\xb2", "127.0.0.1"),
    ],
)
def test_the_client_is_the_right_most_hop_that_is_not_a_trusted_proxy(
    web, forwarded_for: str | bytes | list[str], client: str
) -> None:
    site = web(trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    assert _from(site, "hop@example.com", forwarded_for).status_code == 303
    assert _consent_ip(site, "hop@example.com") == client


def test_a_star_trusts_any_peer_but_only_one_hop(web) -> None:
    site = web(trusted_proxies=["*"])
    assert _from(site, "star@example.com", "203.0.113.9, 198.51.100.2").status_code == 303
    assert _consent_ip(site, "star@example.com") == "198.51.100.2"


@pytest.mark.parametrize(("trusted", "expected"), [("127.0.0.1", 303), ("192.0.2.10", 403)])
def test_forwarded_proto_only_from_a_trusted_proxy(web, trusted: str, expected: int) -> None:
    """A page behind a TLS proxy posts with an https Origin: accepted when the trusted proxy
    says the request came over https, refused when anyone else says so."""
    site = web(trusted_proxies=[trusted])
    site.cli.ok("subscriber", "add", "ada@example.com", "--list", "blog")
    url = f"{site.base_url}/preferences/{site.token_of('ada@example.com')}"
    token = forms(site.http.get(url).text)[url]["csrf_token"]
    origin = site.base_url.replace("http://", "https://")
    plain = site.http.post(
        url, data={"csrf_token": token, "name": "Ada"}, headers={"Origin": origin}
    )
    assert plain.status_code == 403
    answer = site.http.post(
        url,
        data={"csrf_token": token, "name": "Ada", "list": "blog"},
        headers={"Origin": origin, "X-Forwarded-Proto": "https"},
    )
    assert answer.status_code == expected


def test_a_malformed_trusted_proxy_is_one_line(cli) -> None:
    with pytest.raises(ConfigError, match=r"'proxy\.internal' is not an IP address or network"):
        TrustedProxies(["127.0.0.1", "proxy.internal"])
    cli.config.write_text(cli.config.read_text() + '\n[web]\ntrusted_proxies = ["10.0.0.0/33"]\n')
    busy = listen("127.0.0.1", 0)  # should the check ever go, this fails instead of serving
    try:
        result = cli("serve", "--host", "127.0.0.1", "--port", str(busy.getsockname()[1]))
    finally:
        busy.close()
    assert result.exit_code != 0
    assert "web.trusted_proxies: '10.0.0.0/33' is not an IP address or network" in result.stderr
    assert "Traceback" not in result.stderr


# --- known or not: the same work -------------------------------------------------------------


def _normalised(statement: str) -> str:
    """A statement as run; the end of the sign-up's savepoint (kept or rolled back) as one."""
    text = " ".join(statement.split())
    if text.startswith(("RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
        return "END SAVEPOINT"
    return text


def test_a_known_address_takes_the_same_statements_and_time_as_a_new_one(web) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "active@example.com", "--list", "blog")
    site.cli.ok("subscriber", "add", "left@example.com")
    site.cli.ok("subscriber", "unsubscribe", "left@example.com")
    site.cli.ok("subscriber", "add", "erased@example.com")
    site.cli.ok("subscriber", "erase", "erased@example.com", "--yes")
    site.cli.ok("subscriber", "add", "bounced@example.com")
    with site.session() as s, s.begin():
        s.execute(
            update(Subscriber)
            .where(Subscriber.email == "bounced@example.com")
            .values(status="bounced")
        )
    known = [
        ("active@example.com", {}),  # the first one gets a link, then the cool-down
        ("left@example.com", {}),
        ("erased@example.com", {}),
        ("bounced@example.com", {}),
        ("pending@example.com", {}),  # signed up in the warm-up: in its cool-down
        ("bot@example.com", {"website": "https://spam.example.net"}),
    ]
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(_normalised(statement))

    def signup(address: str, fields: dict[str, str]) -> tuple[tuple[str, ...], float]:
        first = len(statements)
        start = time.perf_counter()
        answer = site.subscribe(address, name="X", **fields)
        took = time.perf_counter() - start
        assert answer.status_code == 303, answer.text
        return tuple(statements[first:]), took

    event.listen(site.engine, "before_cursor_execute", record)
    try:
        for n in range(3):  # warm-up: connections opened, statements compiled
            signup(f"warm{n}@example.com", {})
        signup("pending@example.com", {})
        shapes: dict[str, set[tuple[str, ...]]] = {"known": set(), "new": set()}
        times: dict[str, list[float]] = {"known": [], "new": []}
        for n in range(30):
            rounds = [("known", *known[n % len(known)]), ("new", f"new{n}@example.com", {})]
            for kind, address, fields in rounds if n % 2 else rounds[::-1]:
                shape, took = signup(address, fields)
                shapes[kind].add(shape)
                times[kind].append(took)
    finally:
        event.remove(site.engine, "before_cursor_execute", record)

    # The work: one sequence of statements for every sign-up, known or new.
    assert len(shapes["new"]) == 1 and shapes["known"] == shapes["new"], shapes
    (shape,) = shapes["new"]
    assert any("INSERT INTO confirmations" in s for s in shape)
    assert shape.count("END SAVEPOINT") == 1
    # What was stored and mailed still differs, after the answer: the new ones and the first
    # sign-up of the active and the unsubscribed person got a link; the others nothing.
    for n in range(30):
        site.wait_for_mails(f"new{n}@example.com")
    for address in ("active@example.com", "left@example.com"):
        assert len(site.wait_for_mails(address)) == 1
    assert site.person("erased@example.com") is None and site.person("bot@example.com") is None
    with site.session() as s:
        linked = s.scalars(
            select(Subscriber.email)
            .join(Confirmation, Confirmation.subscriber_id == Subscriber.id)
            .where(Subscriber.email.in_([a for a, _ in known]))
        ).all()
    assert sorted(linked) == ["active@example.com", "left@example.com", "pending@example.com"]
    recipients = set(site.smtp.handler.recipients())
    assert not recipients & {"erased@example.com", "bounced@example.com", "bot@example.com"}
    # The time: a loose bound (the work is the same; this only catches a gross difference).
    known_median, new_median = statistics.median(times["known"]), statistics.median(times["new"])
    slower, faster = max(known_median, new_median), min(known_median, new_median)
    assert slower <= 2 * faster + 0.05, (known_median, new_median)


def test_the_answer_does_not_wait_for_the_confirmation_email(web) -> None:
    site = web()
    site.smtp.handler.data_delay = 3.0  # a slow relay
    start = time.perf_counter()
    answer = site.subscribe("slow@example.com")
    took = time.perf_counter() - start
    assert answer.status_code == 303
    assert site.mails_to("slow@example.com") == [] and took < 3.0
    site.wait_for_mails("slow@example.com")


def test_a_confirmation_email_that_fails_is_logged_once_and_can_be_retried(web, caplog) -> None:
    site = web()
    site.smtp.handler.inject("RCPT", "refused@example.com", "550 5.7.1 not today")
    caplog.set_level(logging.INFO, logger="newsletter")
    assert site.subscribe("refused@example.com").status_code == 303

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno >= logging.WARNING]

    wait_for(failures, "the failure to be logged")

    def links() -> int:
        with site.session() as s:
            stmt = select(func.count()).select_from(Confirmation)
            return s.scalar(stmt.where(Confirmation.subscriber_id.is_not(None)))

    wait_for(lambda: links() == 0, "the unsent link to be forgotten")
    (failure,) = failures()
    assert "confirmation email" in failure.getMessage() and "550" in failure.getMessage()
    assert "refused@example.com" not in failure.getMessage()
    assert failure.exc_info is None  # one line, no traceback
    # No cool-down for a link that never went out: a retry gets one.
    assert site.subscribe("refused@example.com").status_code == 303
    site.wait_for_mails("refused@example.com")
    assert len(failures()) == 1
