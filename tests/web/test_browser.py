"""A person in a real browser (Debian's headless Chromium): subscribe, the thank-you page,
confirm with the button, preferences, unsubscribe, the archive. Screenshots of each page go
to the test's directory, or to $NEWSLETTER_SCREENSHOTS (e.g. docs/images) to refresh the
ones in the docs.

Skipped, with the reason, where Chromium is not installed (`apt-get install chromium`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .browser import Chromium, chromium_path

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")


def test_a_person_subscribes_confirms_and_unsubscribes_in_chromium(web, tmp_path) -> None:
    site = web()
    shots = Path(os.environ.get("NEWSLETTER_SCREENSHOTS") or tmp_path / "shots")
    profile = tmp_path / "profile"
    profile.mkdir()
    with Chromium.start(profile) as browser:
        browser.open(f"{site.base_url}/subscribe")
        browser.screenshot(shots / "web-subscribe.png")
        browser.type_into("#email", "chris@example.com")
        browser.type_into("#name", "Chris")
        browser.click("button[type=submit]")
        assert browser.url() == f"{site.base_url}/subscribe/thanks"
        assert "Thanks! Please check your inbox." in browser.text()
        browser.screenshot(shots / "web-thanks.png")
        assert site.person("chris@example.com")["status"] == "unconfirmed"

        link = site.confirm_link("chris@example.com")
        browser.open(link)
        browser.screenshot(shots / "web-confirm.png")
        browser.click("button[type=submit]")
        assert "You're subscribed. Welcome!" in browser.text()
        browser.screenshot(shots / "web-confirmed.png")
        person = site.person("chris@example.com")
        assert person["status"] == "active" and person["name"] == "Chris"
        assert "Chrome" in person["events"][-1]["detail"]["user_agent"]

        site.send_issue(site.seed_issue())
        token = site.token_of("chris@example.com")
        browser.open(f"{site.base_url}/archive")
        browser.screenshot(shots / "web-archive.png")
        browser.open(f"{site.base_url}/archive/1")
        browser.screenshot(shots / "web-archive-issue.png")

        browser.open(f"{site.base_url}/preferences/{token}")
        browser.screenshot(shots / "web-preferences.png")
        browser.open(f"{site.base_url}/unsubscribe/{token}")
        browser.screenshot(shots / "web-unsubscribe.png")
        browser.click("button[type=submit]")
        assert "You're unsubscribed" in browser.text()
        browser.screenshot(shots / "web-unsubscribed.png")
    assert site.person("chris@example.com")["status"] == "unsubscribed"
    assert len(list(shots.glob("web-*.png"))) == 9


def test_the_browser_fills_in_the_readers_time_zone(web, tmp_path) -> None:
    """The subscribe form's one script (allowed by its hash in the CSP) gives the browser's
    zone; it is the reader's once they confirm (`issue schedule --local` uses it)."""
    site = web()
    profile = tmp_path / "profile"
    profile.mkdir()
    with Chromium.start(profile) as browser:
        browser.call("Emulation.setTimezoneOverride", timezoneId="Asia/Tokyo")
        browser.open(f"{site.base_url}/subscribe")
        assert browser.evaluate("document.querySelector('[name=timezone]').value") == "Asia/Tokyo"
        browser.type_into("#email", "kei@example.com")
        browser.click("button[type=submit]")
        assert site.person("kei@example.com")["timezone"] is None  # not before confirming
        browser.open(site.confirm_link("kei@example.com"))
        browser.click("button[type=submit]")
        assert "You're subscribed. Welcome!" in browser.text()
    assert site.person("kei@example.com")["timezone"] == "Asia/Tokyo"
