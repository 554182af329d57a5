"""The OpenAPI document validates and lists every route the app serves under /api/v1; 30+
hostile calls each get a 4xx problem document, nothing stored, no traceback in the log."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Mount, Route

from tests.api.conftest import client, token


def _served(app) -> set[tuple[str, str]]:
    """(METHOD, path) of every route under /api/v1, from the app's own routing table and
    each path's answer to each method (a path's Route takes every method; the API says 405
    for the ones it does not serve)."""
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/api/v1")
    found = set()
    for route in mount.routes:
        assert isinstance(route, Route)
        path = "/api/v1" + re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, path))
    return found


def test_the_openapi_document_validates_and_lists_every_route(api_site) -> None:
    site = api_site()
    answer = httpx.get(site.base_url + "/api/v1/openapi.json")
    assert answer.status_code == 200
    doc = answer.json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    value = token(site, "probe", "all")
    with httpx.Client(base_url=site.base_url, headers={"Authorization": f"Bearer {value}"},
                      timeout=10) as http:  # fmt: skip
        served = set()
        for method, path in _served(site.app):
            concrete = re.sub(r"\{\w+\}", "1", path)
            if http.request(method, concrete).status_code != 405:
                served.add((method, path))
    assert served == documented
    assert {"/api/v1/subscribers", "/api/v1/issues/{issue_id}", "/api/v1/webhooks"} <= {
        p for _, p in documented
    }
    sub = doc["components"]["schemas"]["SubscriberIn"]
    assert sub["required"] == ["email"] and sub.get("additionalProperties") is False


HOSTILE = [
    ("POST", "/subscribers", {"json": {"email": 42, "confirmed": True}}, 422, "email"),
    ("POST", "/subscribers", {"json": {"email": "a" * 400 + "@x.com"}}, 422, "email"),
    ("POST", "/subscribers", {"json": {"email": "a@example.com", "admin": True}}, 422, "admin"),
    ("POST", "/subscribers", {"content": b"{not json", "headers": {"content-type":
                                                                 "application/json"}}, 400, None),
    ("POST", "/subscribers", {"json": ["a@example.com"]}, 422, None),
    ("POST", "/subscribers", {"json": {"email": "a@example.com", "name": "x" * 300_000}}, 413,
     None),
    ("POST", "/subscribers", {"content": b"email=a@example.com",
                              "headers": {"content-type": "text/plain"}}, 415, None),
    ("POST", "/subscribers", {"json": {"email": "x'; drop table subscribers;--@example.com",
                                       "confirmed": True}}, 422, None),
    ("POST", "/subscribers", {"json": {"email": "b@example.com", "confirmed": True,
                                       "name": "<script>alert(1)</script>"}}, 422, "name"),
    ("POST", "/subscribers", {"json": {"email": "b@example.com", "confirmed": True,
                                       "attributes": {"x": {"nested": 1}}}}, 422, None),
    ("POST", "/subscribers", {"json": {"email": "b@example.com", "confirmed": True,
                                       "lists": ["blog"] * 51}}, 422, "lists"),
    ("POST", "/subscribers", {"json": {"email": "b@example.com", "confirmed": True,
                                       "lists": ["<img src=x>"]}}, 404, None),
    ("GET", "/subscribers/..%2F..%2Fetc%2Fpasswd", {}, 404, None),
    ("GET", "/subscribers/abc", {}, 404, None),
    ("GET", "/subscribers/99999999", {}, 404, None),
    ("GET", "/subscribers?limit=100000", {}, 422, "limit"),
    ("GET", "/subscribers?limit=abc", {}, 422, "limit"),
    ("GET", "/subscribers?cursor=-1", {}, 422, "cursor"),
    ("GET", "/subscribers?drop=table", {}, 422, "drop"),
    ("GET", "/subscribers?status=nope", {}, 422, None),
    ("GET", "/subscribers?email=' OR 1=1 --", {}, 422, None),
    ("PATCH", "/subscribers/1", {"json": {"tags": "vip"}}, 422, "tags"),
    ("PATCH", "/subscribers/1", {"json": {"lists": ["nope"]}}, 404, None),
    ("POST", "/lists", {"json": {"name": "../x"}}, 422, "name"),
    ("POST", "/lists", {"json": {"name": "blog"}}, 422, None),
    ("DELETE", "/lists", {}, 405, None),
    ("POST", "/issues", {"json": {"post_id": 99999, "list": "blog"}}, 404, None),
    ("POST", "/issues", {"json": {"latest": True, "list": "blog", "where": "tag:"}}, 422, None),
    ("POST", "/issues/1/schedule", {"json": {"at": "yesterday"}}, 422, "at"),
    ("POST", "/posts", {"json": {"title": "x", "markdown": "a", "html": "<p>b</p>"}}, 422, None),
    ("POST", "/sequences/..%2Fnope/enrollments", {"json": {"email": "a@example.com"}}, 404, None),
    ("POST", "/webhooks", {"json": {"url": "http://127.0.0.1:9/x", "events": ["issue.sent"]}},
     422, None),
    ("POST", "/webhooks", {"json": {"url": "file:///etc/passwd", "events": ["issue.sent"]}},
     422, None),
    ("GET", "/%2e%2e/%2e%2e/etc/passwd", {}, 404, None),
]  # fmt: skip


def test_hostile_calls_get_a_problem_document_and_change_nothing(web, caplog) -> None:
    site = web()  # no [webhooks] allow_private here
    value = token(site, "attacker", "all")
    with client(site, value) as api:
        person = {"email": "ada@example.com", "confirmed": True, "lists": ["blog"]}
        assert api.post("/subscribers", json=person).status_code == 201
        before = json.loads(site.cli.ok("subscriber", "list", "--json").stdout)
        caplog.set_level(logging.INFO)
        for method, path, kwargs, status, field in HOSTILE:
            answer = api.request(method, path, **kwargs)
            assert answer.status_code == status, (method, path, answer.status_code, answer.text)
            assert answer.headers["content-type"] == "application/problem+json", path
            body = answer.json()
            assert body["status"] == status and body["title"] and "Traceback" not in answer.text
            if field is not None:
                assert body.get("field") == field, (path, body)
        bad = {"Authorization": "Basic YWRtaW46YWRtaW4="}
        assert api.get("/subscribers", headers=bad).status_code == 401
        huge = {"Authorization": "Bearer " + "x" * 10_000}
        assert api.get("/subscribers", headers=huge).status_code in (401, 431)
    assert len(HOSTILE) + 2 >= 30
    assert json.loads(site.cli.ok("subscriber", "list", "--json").stdout) == before
    assert json.loads(site.cli.ok("list", "ls", "--json").stdout)[0]["name"] == "blog"
    assert json.loads(site.cli.ok("webhook", "ls", "--json").stdout) == []
    assert json.loads(site.cli.ok("issue", "ls", "--json").stdout) == []
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


@pytest.mark.parametrize("scope", ["subscribers:read", "lists:read"])
def test_every_route_checks_its_scope(api_site, scope) -> None:
    site = api_site()
    value = token(site, "narrow", scope)
    with client(site, value) as api:
        hook = {"url": "http://127.0.0.1/x", "events": ["issue.sent"]}
        assert api.post("/webhooks", json=hook).status_code == 403
        assert api.delete("/subscribers/1").status_code == 403
        assert api.get("/issues").status_code == 403
