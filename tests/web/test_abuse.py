"""Abuse: rate limits per IP and per address, the cool-down between confirmation emails, the
honeypot, and answers that never reveal whether an address is known. Plus the JSON API."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from newsletter.store.models import Confirmation, Subscriber

from .conftest import wait_for


def _confirmations(site, address: str | None = None) -> int:
    with site.session() as s:
        stmt = select(func.count()).select_from(Confirmation)
        if address is not None:
            stmt = stmt.join(Subscriber, Subscriber.id == Confirmation.subscriber_id).where(
                Subscriber.email == address
            )
        return s.scalar(stmt)


def test_fifty_rapid_requests_from_one_ip_are_throttled(web) -> None:
    site = web(signup_limit_per_ip=10, signup_limit_window_seconds=600)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: site.subscribe(f"rapid{i}@example.com"), range(50)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [303] * 10 + [429] * 40
    throttled = next(a for a in answers if a.status_code == 429)
    assert 0 < int(throttled.headers["retry-after"]) <= 600
    assert "Too many attempts" in throttled.text
    wait_for(lambda: len(site.smtp.handler.messages) == 10, "ten confirmation emails")
    # The JSON API shares the limit; another client (via the trusted local proxy) does not.
    api = site.http.post("/api/subscribe", json={"email": "api@example.com"})
    assert api.status_code == 429 and api.json()["error"].startswith("too many")
    other = site.subscribe("other@example.com", headers={"X-Forwarded-For": "203.0.113.7"})
    assert other.status_code == 303
    # The window ends.
    site.clock.advance(seconds=601)
    assert site.subscribe("later@example.com").status_code == 303


def test_per_address_limit_and_cool_down(web) -> None:
    site = web(signup_limit_per_address=3, confirm_cooldown_seconds=900)

    def from_ip(n: int):
        return site.subscribe("target@example.com", headers={"X-Forwarded-For": f"198.51.100.{n}"})

    assert [from_ip(n).status_code for n in range(5)] == [303, 303, 303, 429, 429]
    # Three accepted requests, one confirmation email: the others fell in the cool-down.
    site.wait_for_mails("target@example.com")
    assert _confirmations(site, "target@example.com") == 1
    site.clock.advance(seconds=3601)  # the window ends
    assert from_ip(9).status_code == 303
    assert _confirmations(site, "target@example.com") == 2  # the cool-down ended too
    assert len(site.wait_for_mails("target@example.com", 2)) == 2
    assert len(site.mails_to("target@example.com")) == 2


def test_honeypot_drops_bots_with_the_same_answer(web) -> None:
    site = web()
    human = site.subscribe("human@example.com")
    bot = site.subscribe("bot@example.com", website="https://spam.example.net")
    assert (bot.status_code, bot.headers["location"]) == (303, human.headers["location"])
    api = site.http.post("/api/subscribe", json={"email": "bot2@example.com", "website": "x"})
    assert api.status_code == 202
    assert site.person("bot@example.com") is None and site.person("bot2@example.com") is None
    site.wait_for_mails("human@example.com")
    assert _confirmations(site) == 1


def _answer(response) -> tuple:
    """What a client can see of an answer, less the Date header."""
    headers = tuple(sorted((k, v) for k, v in response.headers.items() if k != "date"))
    return response.status_code, headers, response.content


def test_no_answer_reveals_whether_an_address_is_known(web) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "active@example.com", "--list", "blog")
    site.cli.ok("subscriber", "add", "left@example.com")
    site.cli.ok("subscriber", "unsubscribe", "left@example.com")
    site.cli.ok("subscriber", "add", "erased@example.com")
    site.cli.ok("subscriber", "erase", "erased@example.com", "--yes")
    site.cli.ok("subscriber", "add", "pending@example.com", "--unconfirmed")
    assert site.subscribe("recent@example.com").status_code == 303  # now in its cool-down
    addresses = [
        "new@example.com",
        "active@example.com",
        "left@example.com",
        "erased@example.com",
        "pending@example.com",
        "recent@example.com",
        "ACTIVE@Example.com",
    ]
    forms = {_answer(site.subscribe(a, name="X")) for a in addresses}
    assert len(forms) == 1
    api = {
        _answer(site.http.post("/api/subscribe", json={"email": a, "name": "X"}))
        for a in [a.replace("@", "+api@") for a in addresses[:1]] + addresses[1:]
    }
    assert len(api) == 1
    status, _, body = api.pop()
    assert status == 202 and b"pending" in body
    # The erased address got nothing, and is still not stored.
    assert site.person("erased@example.com") is None
    assert "erased@example.com" not in site.smtp.handler.recipients()


def test_json_api(web) -> None:
    site = web(lists=("blog", "weekly"))
    ok = site.http.post(
        "/api/subscribe",
        json={"email": "api@example.com", "name": "Api", "lists": ["weekly"], "source": "widget"},
    )
    assert ok.status_code == 202 and ok.json()["status"] == "pending"
    site.confirm(site.confirm_link("api@example.com"))
    person = site.person("api@example.com")
    assert person["lists"] == ["weekly"] and person["events"][0]["detail"]["channel"] == "api"
    assert person["events"][0]["source"] == "widget"
    cases = [
        ({"content": b"email=x@example.com"}, 415),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"json": ["x@example.com"]}, 400),
        ({"json": {"email": "not an address"}}, 400),
        ({"json": {"email": "x@example.com", "lists": ["secret-vip"]}}, 400),
        ({"json": {"email": "x@example.com", "name": 7}}, 400),
    ]
    for kwargs, status in cases:
        answer = site.http.post("/api/subscribe", **kwargs)
        assert answer.status_code == status, kwargs
        assert answer.json()["error"]
    assert site.http.get("/api/subscribe").status_code == 405


def test_cors_only_for_configured_origins(web) -> None:
    site = web(cors_origins=["https://blog.example.com"])
    preflight = {
        "Origin": "https://blog.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    allowed = site.http.options("/api/subscribe", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://blog.example.com"
    denied = site.http.options(
        "/api/subscribe", headers=preflight | {"Origin": "https://evil.example.net"}
    )
    assert "access-control-allow-origin" not in denied.headers
    answer = site.http.post(
        "/api/subscribe",
        json={"email": "cors@example.com"},
        headers={"Origin": "https://blog.example.com"},
    )
    assert answer.status_code == 202
    assert answer.headers["access-control-allow-origin"] == "https://blog.example.com"


def test_form_errors_keep_what_was_typed(web) -> None:
    site = web()
    answer = site.subscribe("not-an-address", name="Ada <b>")
    assert answer.status_code == 400
    assert "not a valid email address" in answer.text
    assert 'value="Ada &lt;b&gt;"' in answer.text and "<b>" not in answer.text.split("<main>")[1]
    too_big = site.http.post("/subscribe", data={"email": "x@example.com", "name": "x" * 70_000})
    assert too_big.status_code == 413


def test_the_readme_snippet_signs_people_up(web) -> None:
    """The embeddable form in the README, as pasted on a blog, works against the service."""
    from pathlib import Path

    from lxml import html as lxml_html

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("<!-- subscribe-snippet -->")[1].split("<!-- /subscribe-snippet -->")[0]
    form = lxml_html.fromstring(snippet.split("```html")[1].split("```")[0])
    assert form.get("method") == "post"
    assert form.get("action") == "https://news.example.com/subscribe"
    assert set(form.inputs.keys()) == {"email", "name", "website", "source", "consent_version"}
    names = form.inputs.keys()  # lxml: iterating the inputs gives elements, not names
    fields = {name: form.inputs[name].value or "" for name in names}
    fields |= {"email": "reader@example.com", "name": "Reader"}  # what a person types
    site = web()
    assert site.http.post("/subscribe", data=fields).status_code == 303
    person = site.person("reader@example.com")
    assert person["status"] == "unconfirmed" and person["name"] == "Reader"
    assert person["events"][0]["source"] == "https://blog.example.com/this-post"
    site.wait_for_mails("reader@example.com")
