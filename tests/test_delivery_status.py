"""A delivery's status has one owner (delivery/status.py): the table, and the ledger's real
statements on a real database never making a change the table does not hold."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from newsletter.config import SendingSettings
from newsletter.delivery import ledger
from newsletter.delivery import status as delivery_status
from newsletter.delivery.transports import Result
from newsletter.store import connect, writer_sessions
from newsletter.store.models import DELIVERY_STATUSES, Delivery, Issue, Subscriber


def test_the_table_names_every_state_and_ends_where_it_should() -> None:
    assert set(delivery_status.TRANSITIONS) == set(DELIVERY_STATUSES)
    assert delivery_status.TRANSITIONS["bounced"] == delivery_status.TRANSITIONS["skipped"] == set()
    assert delivery_status.sources("sending") == ("pending", "sending", "deferred")
    assert delivery_status.answered("deferred", attempts=2, max_attempts=3) == "deferred"
    assert delivery_status.answered("deferred", attempts=3, max_attempts=3) == "failed"
    assert delivery_status.answered("bounced", attempts=3, max_attempts=3) == "bounced"


def _statuses(session) -> dict[int, str]:
    return dict(session.execute(select(Delivery.subscriber_id, Delivery.status)).all())


def test_the_ledger_changes_only_what_the_table_allows(migrated_url: str) -> None:
    engine = connect(migrated_url)
    sessions = writer_sessions(engine)
    settings = SendingSettings(max_attempts=2, retry_backoff_seconds=0)
    seen: set[tuple[str, str]] = set()

    def step(session, action) -> None:
        before = _statuses(session)
        action(session)
        session.flush()
        after = _statuses(session)
        seen.update((before.get(k, "pending"), v) for k, v in after.items() if v != before.get(k))

    try:
        with sessions() as session, session.begin():
            people = [Subscriber(email=f"p{i}@example.com", name="", status="active")
                      for i in range(6)]  # fmt: skip
            for p in people:
                p.email_key = p.email
            session.add_all(people)
            issue = Issue(subject="s", status="draft", kind="post")
            session.add(issue)
            session.flush()
            ledger.start_issue(session, issue)
            people[5].status = "unsubscribed"
        answers = ["sent", "deferred", "failed", "bounced", "deferred"]
        with sessions() as session, session.begin():
            claims: list[ledger.Claim] = []
            step(session, lambda s: claims.extend(
                ledger.claim(s, worker="w", limit=10, lease=timedelta(minutes=5))))  # fmt: skip
            assert len(claims) == 5  # the unsubscribed one is skipped
            results = [(c, Result(c.delivery_id, o, 450, "", "x"), "<m>")
                       for c, o in zip(claims, answers, strict=True)]  # fmt: skip
            step(session, lambda s: ledger.settle(s, results[:4], worker="w", settings=settings))
            step(session, lambda s: ledger.release(s, "w"))  # the fifth, unanswered
            again: list[ledger.Claim] = []
            step(session, lambda s: again.extend(
                ledger.claim(s, worker="w", limit=10, lease=timedelta(minutes=5))))  # fmt: skip
            retry = [(c, Result(c.delivery_id, "deferred", 450, "", "x"), "<m>") for c in again]
            step(session, lambda s: ledger.settle(s, retry, worker="w", settings=settings))
            step(session, lambda s: ledger.retry_missed(s, s.get(Issue, issue.id)))
            final = _statuses(session)
    finally:
        engine.dispose()

    assert seen, "the walk changed nothing"
    for before, after in seen:
        assert after in delivery_status.TRANSITIONS[before], f"{before} -> {after}"
    # Every kind of change the engine makes was walked, and the run ended where it should.
    assert {("pending", "sending"), ("pending", "skipped"), ("sending", "sent"),
            ("sending", "deferred"), ("sending", "failed"), ("sending", "bounced"),
            ("sending", "pending"),
            ("deferred", "sending"), ("failed", "pending")} <= seen  # fmt: skip
    assert sorted(final.values()) == sorted(
        ["sent", "pending", "pending", "bounced", "pending", "skipped"]
    )


@pytest.mark.parametrize("outcome", ["sent", "deferred", "failed", "bounced"])
def test_every_answer_is_a_state_the_table_reaches_from_sending(outcome: str) -> None:
    for attempts in (1, 5):
        status = delivery_status.answered(outcome, attempts, max_attempts=5)
        assert status in delivery_status.TRANSITIONS["sending"]
