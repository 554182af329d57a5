"""The person's own tracking events (stored only with ``per_subscriber`` on) in their data
export, from the CLI and the preferences page, and gone after erasure; the anonymous
unsubscribe counts stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from newsletter.store.models import IssueLink, TrackingEvent, Unsubscribe, utcnow

from .conftest import forms


def _subscriber_id(site, address: str) -> int:
    return site.person(address)["id"]


def _events_of(site, subscriber_id: int) -> list[tuple[str, int | None]]:
    with site.session() as s:
        rows = s.execute(
            select(TrackingEvent.kind, TrackingEvent.link_idx)
            .where(TrackingEvent.subscriber_id == subscriber_id)
            .order_by(TrackingEvent.id)
        )
        return [tuple(row) for row in rows]


def test_events_are_exported_and_erased(web) -> None:
    site = web()
    for address in ("ada@example.com", "bob@example.com"):
        site.cli.ok("subscriber", "add", address, "--list", "blog")
    ada, bob = _subscriber_id(site, "ada@example.com"), _subscriber_id(site, "bob@example.com")
    issue_id = site.seed_issue()
    at = utcnow().replace(microsecond=0) - timedelta(hours=1)
    with site.session() as s, s.begin():
        s.add_all(
            [
                IssueLink(issue_id=issue_id, idx=1, url="https://example.org/a?b=1#c"),
                TrackingEvent(
                    issue_id=issue_id, kind="click", link_idx=1, at=at, subscriber_id=ada
                ),
                TrackingEvent(
                    issue_id=issue_id,
                    kind="open",
                    at=at + timedelta(minutes=1),
                    machine="user_agent",
                    subscriber_id=ada,
                ),
                TrackingEvent(issue_id=issue_id, kind="click", link_idx=1, subscriber_id=bob),
                TrackingEvent(issue_id=issue_id, kind="click", link_idx=1),  # anonymous
                Unsubscribe(issue_id=issue_id, reason="too_many"),
            ]
        )

    expected = [
        {
            "kind": "click",
            "issue_id": issue_id,
            "url": "https://example.org/a?b=1#c",
            "at": at.isoformat(timespec="seconds"),
            "machine": "",
        },
        {
            "kind": "open",
            "issue_id": issue_id,
            "url": "",
            "at": (at + timedelta(minutes=1)).isoformat(timespec="seconds"),
            "machine": "user_agent",
        },
    ]
    assert site.person("ada@example.com")["tracking_events"] == expected
    assert len(site.person("bob@example.com")["tracking_events"]) == 1

    # The download on the preferences page holds them too.
    url = f"{site.base_url}/preferences/{site.token_of('ada@example.com')}"
    csrf = forms(site.http.get(url).text)[f"{url}/export"]["csrf_token"]
    download = site.http.post(f"{url}/export", data={"csrf_token": csrf})
    assert download.status_code == 200 and download.json()["tracking_events"] == expected

    site.cli.ok("subscriber", "erase", "ada@example.com", "--yes")
    assert site.person("ada@example.com") is None
    assert _events_of(site, ada) == []
    assert _events_of(site, bob) == [("click", 1)]
    with site.session() as s:
        assert s.scalar(select(TrackingEvent.id).where(TrackingEvent.subscriber_id.is_(None)))
        assert list(s.scalars(select(Unsubscribe.reason))) == ["too_many"]

    # Erased from the preferences page: the same.
    url = f"{site.base_url}/preferences/{site.token_of('bob@example.com')}"
    csrf = forms(site.http.get(url).text)[f"{url}/erase"]["csrf_token"]
    erased = site.http.post(f"{url}/erase", data={"csrf_token": csrf, "confirm": "yes"})
    assert erased.status_code == 200 and _events_of(site, bob) == []


def test_no_events_is_an_empty_list(web) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "ada@example.com")
    person = site.person("ada@example.com")
    assert person["tracking_events"] == [] and person["no_tracking"] is False
