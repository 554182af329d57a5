"""Scoped tokens on the real web service: 201 then 200 for the same subscriber, GET by email,
401 without a token, 403 without the scope, 401 once revoked; the audit log; the rate limit."""

from __future__ import annotations

import json

from tests.api.conftest import client, token


def test_a_write_token_creates_a_subscriber_once_and_the_others_are_refused(api_site) -> None:
    site = api_site()
    write = token(site, "crm", "subscribers:write,subscribers:read")
    read = token(site, "reports", "subscribers:read")
    new = {"email": "Ada@Example.com", "name": "Ada", "lists": ["blog"], "confirmed": True,
           "attributes": {"plan": "pro"}, "tags": ["customer"]}  # fmt: skip
    with client(site, write) as api:
        first = api.post("/subscribers", json=new)
        assert first.status_code == 201, first.text
        made = first.json()
        assert made["email"] == "Ada@example.com" and made["status"] == "active"
        assert made["lists"] == ["blog"] and made["tags"] == ["customer"]
        again = api.post("/subscribers", json=new)
        assert again.status_code == 200 and again.json()["id"] == made["id"]
        found = api.get("/subscribers", params={"email": "ada@example.com"}).json()
        assert [s["id"] for s in found["data"]] == [made["id"]] and found["next_cursor"] is None
        assert api.get(f"/subscribers/{made['id']}").json()["attributes"] == {"plan": "pro"}
        assert api.get("/subscribers/ada@example.com").json()["id"] == made["id"]
        assert api.get("/subscribers/nobody@example.com").status_code == 404
        changed = api.patch(f"/subscribers/{made['id']}", json={"tags": ["vip"], "name": "A."})
        assert changed.status_code == 200 and changed.json()["tags"] == ["vip"]
    people = json.loads(site.cli.ok("subscriber", "list", "--json").stdout)
    assert [p["email"] for p in people] == ["Ada@example.com"]  # no duplicate

    with client(site, None) as anonymous:
        answer = anonymous.get("/subscribers")
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["status"] == 401
    with client(site, read) as reader:
        assert reader.get("/subscribers").status_code == 200
        refused = reader.post("/subscribers", json={"email": "b@example.com", "confirmed": True})
        assert refused.status_code == 403 and "subscribers:write" in refused.json()["detail"]
    with client(site, "nl_" + "x" * 43) as forged:
        assert forged.get("/subscribers").status_code == 401
    site.cli.ok("token", "revoke", "crm")
    with client(site, write) as revoked:
        assert revoked.get("/subscribers").status_code == 401
    tokens = {t["name"]: t for t in json.loads(site.cli.ok("token", "ls", "--json").stdout)}
    assert tokens["crm"]["revoked_at"] and tokens["crm"]["last_used_at"]
    assert tokens["reports"]["scopes"] == ["subscribers:read"]
    # Only a hash is stored.
    from sqlalchemy import select

    from newsletter.store.models import ApiToken

    with site.session() as s:
        stored = " ".join(f"{t.selector} {t.token_hash}" for t in s.scalars(select(ApiToken)))
    assert write not in stored and read not in stored

    trail = json.loads(site.cli.ok("audit", "--json").stdout)
    writes = [(e["actor"], e["action"], e["status"]) for e in reversed(trail)]
    assert writes[:3] == [
        ("crm", "POST /api/v1/subscribers", 201),
        ("crm", "POST /api/v1/subscribers", 200),
        ("crm", f"PATCH /api/v1/subscribers/{made['id']}", 200),
    ]
    assert ("reports", "POST /api/v1/subscribers", 403) in writes
    assert all(e["ip"] == "127.0.0.1" for e in trail)


def test_double_opt_in_through_the_api_sends_the_confirmation(api_site) -> None:
    site = api_site()
    write = token(site, "blog", "subscribers:write")
    with client(site, write) as api:
        made = api.post("/subscribers", json={"email": "grace@example.com", "lists": ["blog"]})
    assert made.status_code == 201 and made.json()["status"] == "unconfirmed"
    answer = site.confirm(site.confirm_link("grace@example.com"))
    assert "subscribed" in answer.text
    person = site.person("grace@example.com")
    assert person["status"] == "active" and person["lists"] == ["blog"]
    subscribed = next(e for e in person["events"] if e["kind"] == "subscribed")
    assert subscribed["detail"]["channel"] == "api"  # the same consent record as the form


def test_the_rate_limit_per_token_answers_429(api_site) -> None:
    site = api_site(extra_config="\n[api]\nrequests_per_minute = 5\n")
    value = token(site, "script", "lists:read")
    with client(site, value) as api:
        codes = [api.get("/lists").status_code for _ in range(6)]
        last = api.get("/lists")
    assert codes == [200] * 5 + [429]
    assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1


def test_lists_segments_posts_issues_and_sequences(api_site, tmp_path) -> None:
    site = api_site()
    value = token(site, "ci", "all")
    with client(site, value) as api:
        assert api.post("/lists", json={"name": "news"}).status_code == 201
        assert {x["name"] for x in api.get("/lists").json()} == {"blog", "news"}
        for n in range(3):
            person = {"email": f"r{n}@example.com", "lists": ["blog"], "confirmed": True,
                      "tags": ["vip"] if n else []}  # fmt: skip
            assert api.post("/subscribers", json=person).status_code == 201
        site.cli.ok("segment", "create", "vips", "tag:vip")
        assert api.get("/segments/vips/count").json()["count"] == 2
        post = api.post("/posts", json={"title": "From CI", "markdown": "# Hello\n\nBody *here*."})
        assert post.status_code == 201, post.text
        issue = api.post("/issues", json={"post_id": post.json()["id"], "list": "blog",
                                          "segment": "vips"})  # fmt: skip
        assert issue.status_code == 201, issue.text
        issue_id = issue.json()["id"]
        preview = api.get(f"/issues/{issue_id}/preview")
        assert preview.headers["content-type"].startswith("text/html") and "Body" in preview.text
        sent = api.post(f"/issues/{issue_id}/send")
        assert sent.status_code == 202 and sent.json()["added"] == 2
        stats = api.get(f"/issues/{issue_id}").json()
        assert stats["id"] == issue_id and stats["status"] == "sending"
        site.send_issue(issue_id)
        assert api.get(f"/issues/{issue_id}").json()["deliveries"]["sent"] == 2
        site.cli.ok("sequence", "create", "welcome", "--list", "blog")
        enrolled = api.post("/sequences/welcome/enrollments", json={"email": "r0@example.com"})
        assert enrolled.status_code == 201 and enrolled.json()["enrolled"] == 1
