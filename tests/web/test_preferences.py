"""The preferences page: name and lists, the data download (with the consent records), and
erasure that leaves only the suppression hash."""

from __future__ import annotations

import hashlib
import json

from tests.helpers import store_snapshot

from .conftest import forms


def test_change_name_and_lists(web) -> None:
    site = web(lists=("blog", "weekly"))
    site.cli.ok("list", "create", "vip")
    site.cli.ok("subscriber", "add", "ada@example.com", "--name", "Ada", "--list", "blog")
    site.cli.ok("subscriber", "add", "ada@example.com", "--list", "vip")
    token = site.token_of("ada@example.com")
    url = f"{site.base_url}/preferences/{token}"
    page = site.http.get(url)
    assert page.status_code == 200 and "ada@example.com" in page.text
    # Offered lists and the lists they are on (vip: they may leave it, not join it).
    for name, checked in (("blog", True), ("weekly", False), ("vip", True)):
        box = f'value="{name}" checked' if checked else f'value="{name}">'
        assert box in page.text, name
    csrf = forms(page.text)[url]["csrf_token"]
    saved = site.http.post(url, data={"csrf_token": csrf, "name": "Ada L.", "list": ["weekly"]})
    assert saved.status_code == 303 and saved.headers["location"] == f"{url}?saved=1"
    person = site.person("ada@example.com")
    assert person["name"] == "Ada L." and person["lists"] == ["weekly"]
    assert person["events"][-1]["kind"] == "updated"
    assert person["events"][-1]["detail"] == {"name": True, "lists": ["weekly"]}
    assert "Saved." in site.http.get(saved.headers["location"]).text
    # vip is no longer theirs and is not offered: joining it is refused, nothing changes.
    refused = site.http.post(url, data={"csrf_token": csrf, "name": "X", "list": ["vip"]})
    assert refused.status_code == 400 and "no list" in refused.text
    assert site.person("ada@example.com")["name"] == "Ada L."
    # A form without a name field leaves the name alone.
    site.http.post(url, data={"csrf_token": csrf, "list": ["blog", "weekly"]})
    person = site.person("ada@example.com")
    assert person["name"] == "Ada L." and person["lists"] == ["blog", "weekly"]


def test_data_export_holds_the_consent_records(web) -> None:
    site = web()
    token = site.signed_up(
        "grace@example.com",
        name="Grace",
        source="https://blog.example.com/essays/1",
        headers={"User-Agent": "Export Test/2"},
    )
    url = f"{site.base_url}/preferences/{token}"
    csrf = forms(site.http.get(url).text)[f"{url}/export"]["csrf_token"]
    answer = site.http.post(f"{url}/export", data={"csrf_token": csrf})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-disposition"].startswith("attachment;")
    data = answer.json()
    assert data["email"] == "grace@example.com" and data["name"] == "Grace"
    assert data["status"] == "active" and data["lists"] == ["blog"]
    subscribed, confirmed = data["events"]
    assert subscribed["kind"] == "subscribed" and confirmed["kind"] == "confirmed"
    assert subscribed["ip"] == "127.0.0.1" and subscribed["at"]
    assert subscribed["source"] == "https://blog.example.com/essays/1"
    assert subscribed["detail"]["user_agent"] == "Export Test/2"
    assert subscribed["detail"]["consent_version"] == "1"
    assert confirmed["at"] and confirmed["detail"]["method"] == "double-opt-in"
    (link,) = data["confirmations"]
    assert link["used_at"] and link["consent"]["ip"] == "127.0.0.1"
    # The export's form token does not work for anything else.
    assert site.http.post(url, data={"csrf_token": csrf, "name": "X"}).status_code == 403


def test_erase_leaves_only_the_suppression_hash(web) -> None:
    site = web()
    token = site.signed_up("erase.me@example.com", name="Eraser")
    site.cli.ok("subscriber", "add", "other@example.com")
    url = f"{site.base_url}/preferences/{token}"
    csrf = forms(site.http.get(url).text)[f"{url}/erase"]["csrf_token"]
    unticked = site.http.post(f"{url}/erase", data={"csrf_token": csrf})
    assert unticked.status_code == 400 and site.person("erase.me@example.com") is not None
    done = site.http.post(f"{url}/erase", data={"csrf_token": csrf, "confirm": "yes"})
    assert done.status_code == 200 and "erased" in done.text
    assert site.person("erase.me@example.com") is None
    everything = json.dumps(store_snapshot(site.cli.config))
    assert "erase.me" not in everything.lower() and "Eraser" not in everything
    assert token not in everything and "127.0.0.1" not in everything
    digest = hashlib.sha256(b"erase.me@example.com").hexdigest()
    assert digest in everything
    # The links are dead, and signing up again sends nothing (same answer as always).
    assert site.http.get(url).status_code == 404
    assert site.subscribe("erase.me@example.com").status_code == 303
    assert site.person("erase.me@example.com") is None
    assert len(site.mails_to("erase.me@example.com")) == 1  # only the first confirmation
