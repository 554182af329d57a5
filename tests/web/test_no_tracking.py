""" "Don't track my clicks" on the preferences page: the subscriber's own no_tracking flag,
changed with an "updated" event and shown in `subscriber show --json`."""

from __future__ import annotations

from newsletter.subscribers.service import find_subscriber

from .conftest import forms


def _flag(site, address: str) -> bool:
    with site.session() as s:
        return find_subscriber(s, address).no_tracking


def _updates(site, address: str) -> list[dict]:
    return [e["detail"] for e in site.person(address)["events"] if e["kind"] == "updated"]


def test_dont_track_my_clicks(web) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "ada@example.com", "--name", "Ada", "--list", "blog")
    url = f"{site.base_url}/preferences/{site.token_of('ada@example.com')}"
    page = site.http.get(url).text
    assert 'name="no_tracking" value="yes">' in page  # offered, not ticked
    assert site.person("ada@example.com")["no_tracking"] is False
    keep = {"csrf_token": forms(page)[url]["csrf_token"], "name": "Ada", "list": ["blog"]}

    saved = site.http.post(url, data=keep | {"no_tracking": "yes"})
    assert saved.status_code == 303 and _flag(site, "ada@example.com") is True
    assert site.person("ada@example.com")["no_tracking"] is True
    assert _updates(site, "ada@example.com") == [{"no_tracking": True}]
    assert 'name="no_tracking" value="yes" checked' in site.http.get(url).text

    # Saving the same again changes nothing and logs nothing.
    site.http.post(url, data=keep | {"no_tracking": "yes"})
    assert _updates(site, "ada@example.com") == [{"no_tracking": True}]

    # Unticked (the box is then absent from the form): tracked again.
    site.http.post(url, data=keep)
    assert _flag(site, "ada@example.com") is False
    assert _updates(site, "ada@example.com") == [{"no_tracking": True}, {"no_tracking": False}]

    # Without the form token nothing changes.
    refused = site.http.post(url, data={"name": "Ada", "list": ["blog"], "no_tracking": "yes"})
    assert refused.status_code == 403 and _flag(site, "ada@example.com") is False
