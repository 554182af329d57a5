"""An issue's status has one owner (issues/status.py): a walk over every pair of states."""

from __future__ import annotations

import pytest

from newsletter.errors import InvalidInputError
from newsletter.issues import status
from newsletter.store.models import ISSUE_STATUSES, Issue

ALLOWED = {
    ("draft", "scheduled"), ("draft", "sending"), ("draft", "cancelled"),
    ("scheduled", "draft"), ("scheduled", "sending"), ("scheduled", "missed"),
    ("scheduled", "paused"), ("scheduled", "cancelled"),
    ("missed", "draft"), ("missed", "scheduled"), ("missed", "sending"), ("missed", "cancelled"),
    ("sending", "sent"), ("sending", "paused"), ("sending", "cancelled"),
    ("paused", "sending"), ("paused", "scheduled"), ("paused", "draft"), ("paused", "cancelled"),
    ("sent", "sending"),
}  # fmt: skip


@pytest.mark.parametrize("current", ISSUE_STATUSES)
@pytest.mark.parametrize("to", ISSUE_STATUSES)
def test_every_change_is_allowed_or_refused_as_the_table_says(current: str, to: str) -> None:
    issue = Issue(id=7, status=current, subject="s")
    if current == to or (current, to) in ALLOWED:
        status.change(issue, to)
        assert issue.status == to
    else:
        with pytest.raises(InvalidInputError, match=f"issue 7 is {current}: it cannot become {to}"):
            status.change(issue, to)
        assert issue.status == current


def test_a_cancelled_or_unknown_state_goes_nowhere() -> None:
    issue = Issue(id=1, status="cancelled", subject="s")
    with pytest.raises(InvalidInputError, match="'archived' is not an issue status"):
        status.change(issue, "archived")
    assert not status.TRANSITIONS["cancelled"]


def test_subscriber_status_changes_as_its_table_says() -> None:
    from newsletter.store.models import SUBSCRIBER_STATUSES, Subscriber
    from newsletter.subscribers import status as sub_status

    allowed = {
        ("unconfirmed", "active"), ("unconfirmed", "unsubscribed"), ("unconfirmed", "bounced"),
        ("unconfirmed", "complained"), ("active", "unsubscribed"), ("active", "bounced"),
        ("active", "complained"), ("unsubscribed", "active"), ("unsubscribed", "complained"),
        ("bounced", "unsubscribed"), ("bounced", "complained"), ("complained", "unsubscribed"),
    }  # fmt: skip
    for current in SUBSCRIBER_STATUSES:
        for to in SUBSCRIBER_STATUSES:
            sub = Subscriber(email="ada@example.com", status=current)
            if current == to or (current, to) in allowed:
                sub_status.change(sub, to)
                assert sub.status == to
            else:
                with pytest.raises(InvalidInputError, match=f"is {current}: they cannot become"):
                    sub_status.change(sub, to)
    # the bounce rules' set-based updates take the same table
    assert sub_status.sources("bounced") == ("unconfirmed", "active")
    assert set(sub_status.sources("complained")) == set(SUBSCRIBER_STATUSES) - {"complained"}
