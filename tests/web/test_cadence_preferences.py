"""A reader chooses their cadence per list on the preferences page (real uvicorn)."""

from __future__ import annotations

from lxml import html as lxml_html

from .conftest import forms

SEND_FEED = '\n[[feeds]]\nurl = "http://127.0.0.1:9/feed"\nlist = "blog"\nmode = "send"\n'


def _selected(page: str) -> dict[str, str]:
    doc = lxml_html.fromstring(page)
    return {
        s.get("name"): next(
            (o.get("value") for o in s.iter("option") if o.get("selected") is not None), ""
        )
        for s in doc.iter("select")
    }


def test_a_reader_picks_a_weekly_digest_on_the_preferences_page(web) -> None:
    site = web(
        lists=("blog", "news"), extra_config=SEND_FEED + '\n[lists.news]\ncadence = "monthly"\n'
    )
    site.cli.ok("subscriber", "add", "ada@example.com", "--name", "Ada", "--list", "blog")
    token = site.token_of("ada@example.com")
    url = f"{site.base_url}/preferences/{token}"
    page = site.http.get(url).text
    assert _selected(page) == {"cadence:blog": "post"}  # only a send feed's list; the default
    assert "A weekly digest" in page
    fields = forms(page)[url] | {"name": "Ada", "list": "blog", "cadence:blog": "weekly"}
    answer = site.http.post(url, data=fields)
    assert answer.status_code == 303
    assert site.person("ada@example.com")["cadences"] == {"blog": "weekly"}
    assert _selected(site.http.get(url).text) == {"cadence:blog": "weekly"}

    fields = forms(site.http.get(url).text)[url] | {
        "name": "Ada",
        "list": "blog",
        "cadence:blog": "hourly",
    }
    answer = site.http.post(url, data=fields)
    assert answer.status_code == 400 and "unknown cadence" in answer.text
    assert site.person("ada@example.com")["cadences"] == {"blog": "weekly"}  # unchanged
