"""Click and open tracking through a real send, a real uvicorn and the real store: links
rewritten once per issue, the redirector, people told from machines, and privacy."""

from __future__ import annotations

import json
import re
from email.message import EmailMessage
from typing import Any

from lxml import html as lxml_html
from sqlalchemy import select

from newsletter.store.models import TrackingEvent

from .conftest import text_part, wait_for

BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()


def tracked_links(site, msg: EmailMessage) -> list[str]:
    doc = lxml_html.document_fromstring(html_part(msg))
    hrefs = [a.get("href", "") for a in doc.iter("a")]
    return [h for h in hrefs if h.startswith(site.base_url + "/l/")]


def visible_links(site, msg: EmailMessage) -> list[tuple[str, str]]:
    """(href, style) of every <a> of the HTML part."""
    doc = lxml_html.document_fromstring(html_part(msg))
    return [(a.get("href", ""), a.get("style", "")) for a in doc.iter("a")]


def show(site, issue_id: int) -> dict[str, Any]:
    return json.loads(site.cli.ok("issue", "show", str(issue_id), "--json").stdout)


def clicks_when(site, issue_id: int, done) -> dict[str, Any]:
    return wait_for(
        lambda: (c := show(site, issue_id)["clicks"]) and done(c) and c, "the clicks counted"
    )


def sent_issue(site, readers: int = 2) -> tuple[int, list[str]]:
    addresses = [f"reader{i}@example.com" for i in range(readers)]
    for address in addresses:
        site.cli.ok("subscriber", "add", address, "--list", "blog", "--name", "Reader")
    issue_id = site.seed_issue()
    site.send_issue(issue_id)
    return issue_id, addresses


def test_a_click_redirects_to_the_exact_url_and_counts_once_per_reader(web) -> None:
    site = web()
    issue_id, (first, second) = sent_issue(site)
    msg = site.wait_for_mails(first)[0]
    links = tracked_links(site, msg)
    assert links, "the links were not rewritten"
    # Unsubscribe, preferences and web-view links are not rewritten; the blog's are.
    hrefs = [h for h, _ in visible_links(site, msg)]
    assert any("/unsubscribe/" in h and "?issue=" in h for h in hrefs)
    assert any("/preferences/" in h for h in hrefs)
    assert any("/archive/" in h for h in hrefs)
    assert not any("/posts/pricing-per-seat" in h for h in hrefs)
    # The plain-text part gets the same links.
    text_links = re.findall(re.escape(site.base_url) + r"/l/[A-Za-z0-9_.-]+", text_part(msg))
    assert text_links and set(text_links) <= set(tracked_links(site, msg)) | set(text_links)

    first_link = links[1]  # links[0] is the title's link, [1] the pricing page in the body
    answer = site.http.get(first_link, headers={"User-Agent": BROWSER})
    assert answer.status_code in (302, 303)
    target = answer.headers["location"]
    assert target.startswith("https://news.example.com/") or target.startswith("http")
    clicks = clicks_when(site, issue_id, lambda c: c["total"] == 1)
    assert clicks["unique"] == 1 and clicks["machine"] == 0
    assert clicks["links"] == [{"url": target, "total": 1, "unique": 1}]

    site.http.get(first_link, headers={"User-Agent": BROWSER})  # the same reader again
    clicks = clicks_when(site, issue_id, lambda c: c["total"] == 2)
    assert clicks["unique"] == 1 and clicks["links"][0]["unique"] == 1

    other = tracked_links(site, site.wait_for_mails(second)[0])[1]
    assert other.split("/l/")[1].split(".")[0] == first_link.split("/l/")[1].split(".")[0]
    site.http.get(other, headers={"User-Agent": BROWSER})  # another reader, the same link
    clicks = clicks_when(site, issue_id, lambda c: c["total"] == 3)
    assert clicks["unique"] == 2


def test_query_strings_and_fragments_reach_the_reader_intact(web, tmp_path) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "ada@example.com", "--list", "blog")
    target = "https://shop.example.org/p?a=1&b=%C3%A9&c=x%2Fy#part-2"
    post = tmp_path / "links.md"
    post.write_text(
        f"---\ntitle: Links\ndate: 2026-12-01\n---\nSee [the shop]({target}).\n", encoding="utf-8"
    )
    site.cli.ok("post", "add", str(post))
    site.cli.ok("issue", "create", "--latest", "--list", "blog")
    issue_id = max(i["id"] for i in json.loads(site.cli.ok("issue", "ls", "--json").stdout))
    site.send_issue(issue_id)
    msg = site.wait_for_mails("ada@example.com")[0]
    found = [
        site.http.get(link, headers={"User-Agent": BROWSER}).headers.get("location")
        for link in tracked_links(site, msg)
    ]
    assert target in found


def test_forged_tokens_are_404_and_count_nothing(web) -> None:
    site = web()
    issue_id, (first, _) = sent_issue(site)
    link = tracked_links(site, site.wait_for_mails(first)[0])[1]
    token = link.split("/l/")[1]
    forged = []
    for i in range(len(token)):  # every character changed, one at a time
        c = "A" if token[i] != "A" else "B"
        forged.append(token[:i] + c + token[i + 1 :])
    forged += [
        "uWAHAX6n_zarahA.hqQ8DVilEM0CMRY",  # made with another deployment's key
        "https%3A%2F%2Fevil.example%2F",
        "https:%2F%2Fevil.example",
        token.split(".")[0],  # the link without the reader
        "",
    ]
    for bad in forged:
        answer = site.http.get(f"/l/{bad}", headers={"User-Agent": BROWSER})
        assert answer.status_code == 404, bad
        assert "location" not in answer.headers
    assert site.http.get("/l/https://evil.example/").status_code == 404
    # HEAD: the redirect, not a click.
    head = site.http.head(link, headers={"User-Agent": BROWSER})
    assert head.status_code == 302 and head.headers["location"]
    clicks = wait_for(
        lambda: (c := show(site, issue_id)["clicks"])["filtered"].get("head") == 1 and c,
        "the HEAD request recorded",
    )
    assert clicks["total"] == 0 and clicks["machine"] == 0
    with site.session() as s:
        assert s.scalar(select(TrackingEvent.machine)) == "head"


def test_honeypot_and_scanner_bursts_are_machines(web) -> None:
    site = web()
    issue_id, (first, second) = sent_issue(site)
    msg = site.wait_for_mails(first)[0]
    anchors = visible_links(site, msg)
    hidden = [h for h, style in anchors if "display:none" in style.replace(" ", "")]
    assert len(hidden) == 1 and hidden[0].startswith(site.base_url + "/l/")
    assert site.http.get(hidden[0], headers={"User-Agent": BROWSER}).status_code == 204
    # Whoever followed the honeypot is a machine for that message, whatever it does next.
    site.http.get(tracked_links(site, msg)[1], headers={"User-Agent": BROWSER})
    clicks = clicks_when(site, issue_id, lambda c: c["machine"] == 2)
    assert clicks["total"] == 0 and clicks["filtered"] == {"honeypot": 2}

    # A scanner: every link of the second reader's message at once, a browser's agent.
    anchors = visible_links(site, site.wait_for_mails(second)[0])
    visible = [
        h
        for h, style in dict.fromkeys(anchors)
        if h.startswith(site.base_url + "/l/") and "display:none" not in style.replace(" ", "")
    ]
    assert len(visible) >= 3
    for link in visible:
        site.http.get(link, headers={"User-Agent": BROWSER})
    clicks = clicks_when(site, issue_id, lambda c: c["machine"] >= 2 + len(visible))
    assert clicks["total"] == 0 and clicks["filtered"].get("burst", 0) >= len(visible) - 1, clicks


def test_known_scanner_agents_and_prefetch(web) -> None:
    site = web()
    issue_id, (first, _) = sent_issue(site)
    link = tracked_links(site, site.wait_for_mails(first)[0])[1]
    site.http.get(link, headers={"User-Agent": "Barracuda Sentinel (EE)"})
    site.http.get(link, headers={"User-Agent": BROWSER, "Sec-Purpose": "prefetch"})
    clicks = clicks_when(site, issue_id, lambda c: sum(c["filtered"].values()) == 2)
    assert clicks["filtered"] == {"user_agent": 1, "prefetch": 1}
    assert clicks["total"] == 0 and clicks["machine"] == 1


def test_anonymous_by_default_nothing_ties_an_event_to_a_person(web) -> None:
    site = web()
    issue_id, (first, _) = sent_issue(site)
    link = tracked_links(site, site.wait_for_mails(first)[0])[1]
    site.http.get(link, headers={"User-Agent": BROWSER})
    clicks_when(site, issue_id, lambda c: c["total"] == 1)
    person = site.person(first)
    with site.session() as s:
        rows = s.scalars(select(TrackingEvent)).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.subscriber_id is None
    # The columns that could name someone: the person's id, address or token are in none.
    assert row.subscriber_id is None and len(row.visitor) == 24
    assert not {row.visitor, row.machine} & {str(person["id"]), first, site.token_of(first)}
    assert set(TrackingEvent.__table__.columns.keys()) == {
        "id",
        "issue_id",
        "kind",
        "link_idx",
        "at",
        "machine",
        "visitor",
        "subscriber_id",
    }
    assert person.get("tracking_events", []) == []


def test_per_subscriber_events_are_in_the_export_and_gone_after_erase(web) -> None:
    site = web(tracking={"per_subscriber": True})
    issue_id, (first, _) = sent_issue(site)
    link = tracked_links(site, site.wait_for_mails(first)[0])[1]
    site.http.get(link, headers={"User-Agent": BROWSER})
    clicks_when(site, issue_id, lambda c: c["total"] == 1)
    person = site.person(first)
    with site.session() as s:
        assert s.scalar(select(TrackingEvent.subscriber_id)) == person["id"]
    [event] = person["tracking_events"]
    assert event["kind"] == "click" and event["issue_id"] == issue_id
    assert event["url"] and event["machine"] == ""
    site.cli.ok("subscriber", "erase", first, "--yes")
    with site.session() as s:
        assert s.scalars(select(TrackingEvent)).all() == []


def test_no_pixel_by_default(web) -> None:
    site = web()
    _, (first,) = sent_issue(site, readers=1)
    assert "/o/" not in html_part(site.wait_for_mails(first)[0])


def test_opens_when_on_and_apple_proxy_is_a_machine(web) -> None:
    site = web(tracking={"opens": True})
    issue_id, (first,) = sent_issue(site, readers=1)
    pixels = re.findall(
        re.escape(site.base_url) + r"/o/[A-Za-z0-9_.-]+\.gif",
        html_part(site.wait_for_mails(first)[0]),
    )
    assert len(pixels) == 1
    image = site.http.get(pixels[0], headers={"User-Agent": BROWSER})
    assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
    site.http.get(pixels[0], headers={"User-Agent": "Mozilla/5.0"})  # Apple's proxy
    opens = wait_for(
        lambda: (o := show(site, issue_id).get("opens")) and o["machine"] == 1 and o,
        "the opens counted",
    )
    assert opens["total"] == 1 and opens["unique"] == 1
    assert site.http.get(pixels[0].replace(".gif", "x.gif")).status_code == 404


def test_a_reader_who_opted_out_gets_plain_links(web) -> None:
    site = web()
    site.cli.ok("subscriber", "add", "private@example.com", "--list", "blog")
    site.cli.ok("subscriber", "add", "tracked@example.com", "--list", "blog")
    with site.session() as s, s.begin():
        from newsletter.subscribers.service import find_subscriber

        find_subscriber(s, "private@example.com").no_tracking = True
    site.send_issue(site.seed_issue())
    private = site.wait_for_mails("private@example.com")[0]
    assert tracked_links(site, private) == []
    assert "/l/" not in text_part(private) and "honeypot" not in html_part(private)
    assert tracked_links(site, site.wait_for_mails("tracked@example.com")[0])


def test_a_scanner_burst_drops_no_human_click_and_the_pages_stay_up(web) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    site = web()
    issue_id, (person, scanned) = sent_issue(site)
    human_link = tracked_links(site, site.wait_for_mails(person)[0])[1]
    scanner_links = tracked_links(site, site.wait_for_mails(scanned)[0])
    burst = [scanner_links[i % len(scanner_links)] for i in range(600)]
    agent = {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}
    with httpx.Client(base_url=site.base_url, timeout=30.0) as http:

        def scan(link: str) -> int:
            return http.get(link, headers=agent).status_code

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = pool.map(scan, burst)
            human = http.get(human_link, headers={"User-Agent": BROWSER})
            page = http.get("/subscribe")
            statuses = list(answers)
    assert human.status_code == 302 and page.status_code == 200
    assert set(statuses) <= {302, 204} and len(statuses) == 600
    clicks = clicks_when(site, issue_id, lambda c: c["total"] == 1 and c["machine"] == 600)
    assert clicks["unique"] == 1
