"""The reputation guard's rules: which replies are throttles, how domains are grouped, how the
backoff grows (in the real database), when an issue pauses itself."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from newsletter.config import SendingSettings
from newsletter.delivery import reputation
from newsletter.delivery.transports import Result
from newsletter.issues import guard
from newsletter.store import session_factory
from newsletter.store.models import utcnow


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "throttle"),
    [
        (421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail", True),
        (451, "4.7.500", "Server busy. Please try again later", True),
        (451, "4.7.650", "The mail server has been temporarily rate limited", True),
        (451, "4.7.651", "Something else", False),
        (421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred", True),
        (421, "4.7.0", "Too many connections, closing", False),  # about our connection
        (451, "4.3.0", "Try again later", False),
        (450, "", "Requested action not taken: rate limit exceeded", True),
        (550, "5.7.1", "rate limited", False),  # a 5xx is never a throttle
    ],
)
def test_throttling_replies(code, enhanced, text, throttle) -> None:
    outcome = "deferred" if code < 500 else "failed"
    assert reputation.is_throttle(Result(1, outcome, code, enhanced, text)) is throttle


def test_domains_are_grouped_by_provider() -> None:
    assert reputation.domain_key("a@Gmail.com") == "google"
    assert reputation.domain_key("b@googlemail.com") == "google"
    assert reputation.domain_key("c@hotmail.co.uk") == "microsoft"
    assert reputation.domain_key("d@aol.com") == "yahoo"
    assert reputation.domain_key("e@Example.ORG") == "example.org"
    assert "gmail.com" in reputation.describe("google")
    assert reputation.describe("example.org") == "example.org"


def test_backoff_grows_with_throttles_in_a_row_and_is_shared(engine) -> None:
    settings = SendingSettings(domain_backoff_seconds=60, domain_backoff_max_seconds=300)
    sessions = session_factory(engine)
    t0 = utcnow()
    with sessions() as session, session.begin():
        until = reputation.record_throttles(session, {"google": "421 4.7.28"}, settings, now=t0)
    assert until["google"] == t0 + timedelta(seconds=60)
    with sessions() as session, session.begin():  # while backing off: the end stays
        again = reputation.record_throttles(
            session, {"google": "x"}, settings, now=t0 + timedelta(seconds=5)
        )
    assert again == until
    delays = []
    t = t0
    for _ in range(4):  # each throttle right after the backoff ended doubles it, up to the cap
        t = t + timedelta(seconds=400)
        with sessions() as session, session.begin():
            end = reputation.record_throttles(session, {"google": "y"}, settings, now=t)
        delays.append((end["google"] - t).total_seconds())
    assert delays == [120, 240, 300, 300]
    with sessions() as session, session.begin():
        backing_off, recent = reputation.active_backoffs(session, now=t + timedelta(seconds=10))
    assert set(backing_off) == {"google"} and recent == {"google"}
    with sessions() as session, session.begin():  # an hour later: the strikes start again
        later = t + timedelta(hours=2)
        fresh = reputation.record_throttles(session, {"google": "z"}, settings, now=later)
    assert fresh["google"] == later + timedelta(seconds=60)


def test_bounce_and_complaint_rates() -> None:
    s = SendingSettings()
    assert guard.bounce_pause_reason({"sent": 400, "bounced": 90}, s) == ""  # < 500 attempts
    assert guard.bounce_pause_reason({"sent": 480, "bounced": 20}, s) == ""  # 4 %
    reason = guard.bounce_pause_reason({"sent": 450, "bounced": 50}, s)
    assert "10.0% of 500 attempts" in reason and "pause_bounce_rate" in reason
    off = msgspec.structs.replace(s, pause_bounce_rate=0)
    assert guard.bounce_pause_reason({"sent": 450, "bounced": 50}, off) == ""
    assert guard.complaint_pause_reason(1, 1000, s) == ""  # 0.1 %
    assert "pause_complaint_rate" in guard.complaint_pause_reason(4, 1000, s)
