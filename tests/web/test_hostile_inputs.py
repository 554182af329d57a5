"""No request makes a 500: every route of the app, walked with a table of hostile values in
its path, its query, its form fields and its JSON body (huge, deep, NUL, lone surrogates,
overlong integers, wrong types, wrong content types), answers 4xx (or 2xx/3xx where the
value is harmless), and the server logs no traceback."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import quote

import pytest
from starlette.routing import Route

from .conftest import forms

HUGE = "x" * 200_000
DEEP_JSON = "[" * 60_000 + "]" * 60_000
PATH_VALUES = [
    "9223372036854775808",
    "-1",
    "0" * 40,
    quote("\x00"),
    "%ED%A0%80",  # a lone surrogate, UTF-8 encoded (invalid UTF-8)
    "%FF%FE",
    "%F0%9F%98",  # truncated UTF-8
    "a" * 5000,
    quote("../../etc/passwd", safe=""),
    quote("<script>", safe=""),
]
STRING_VALUES = ["\x00", "a\x00b@example.com", "\ud800", "x\udfff@example.com", HUGE, "\uffff"]
JSON_VALUES = [*STRING_VALUES, 9223372036854775808, -1, 1.5e308, None, True, [], {}, ["a"] * 1000]
JSON = {"content-type": "application/json"}
CONTENT_TYPES = (
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "application/json",
)
FIELDS = ("email", "name", "list", "lists", "source", "consent_version", "website", "csrf_token")


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors_logged():
    handler = _Tracebacks()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler.records
    root.removeHandler(handler)


def _paths(app, token: str) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves."""
    found = []
    for route in app.routes:
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append((method, route.path))
    assert len(found) >= 15, found
    return found


def _fill(template: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, template)


def _check(answer, what: str) -> None:
    assert answer.status_code < 500, f"{what}: {answer.status_code} {answer.text[:200]}"


def test_every_route_answers_hostile_values_without_a_500(web, errors_logged) -> None:
    site = web()
    token = site.signed_up("walker@example.com")
    for method, template in _paths(site.app, token):
        for value in PATH_VALUES if "{" in template else []:
            path = _fill(template, value)
            _check(site.http.request(method, path), f"{method} {path[:80]}")
        path = _fill(template, token)
        what = f"{method} {template}"
        if method == "GET":
            _check(site.http.get(path, params={"k": "\x00", "saved": HUGE[:5000]}), what)
            continue
        for field in FIELDS:
            for bad in STRING_VALUES:
                data = {field: bad.encode("utf-8", "surrogatepass").decode("latin-1")}
                _check(site.http.request(method, path, data=data), f"{what} form {field}")
            for bad in JSON_VALUES:
                body = json.dumps({"email": "ok@example.com", field: bad})
                answer = site.http.request(method, path, content=body, headers=JSON)
                _check(answer, f"{what} json {field}")
        _check(site.http.request(method, path, content=DEEP_JSON, headers=JSON), what)
        for content_type in CONTENT_TYPES:
            raw = b"\xff\xfe\x00" * 1000
            answer = site.http.request(
                method, path, content=raw, headers={"content-type": content_type}
            )
            _check(answer, f"{what} raw {content_type}")
    assert not [r for r in errors_logged if r.exc_info], [r.getMessage() for r in errors_logged]


def test_hostile_values_through_a_valid_form(web, errors_logged) -> None:
    """The same values past the CSRF check: the subscribe form with a real form token, and
    the preferences form of a real subscriber."""
    site = web()
    token = site.signed_up("prefs@example.com")
    for bad in STRING_VALUES:
        page = site.http.get("/subscribe")
        hidden = forms(page.text)[f"{site.base_url}/subscribe"]
        for field in ("email", "name", "list", "source"):
            data = {**hidden, "email": "new@example.com", field: bad}
            data = {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                    for k, v in data.items()}  # fmt: skip
            _check(site.http.post("/subscribe", data=data), f"subscribe {field}={bad[:10]!r}")
        prefs = site.http.get(f"/preferences/{token}")
        hidden = forms(prefs.text)[f"{site.base_url}/preferences/{token}"]
        data = {**hidden, "name": bad.encode("utf-8", "surrogatepass").decode("utf-8", "replace")}
        _check(site.http.post(f"/preferences/{token}", data=data), "preferences name")
    for bad in JSON_VALUES:
        body = json.dumps({"email": bad, "name": bad})
        answer = site.http.post("/api/subscribe", content=body, headers=JSON)
        _check(answer, f"api {bad!r:.20}")
        assert answer.status_code in (202, 400, 413, 415, 429)
    assert not [r for r in errors_logged if r.exc_info], [r.getMessage() for r in errors_logged]


def test_an_unexpected_error_is_a_plain_500_with_security_headers_logged_once(web, caplog) -> None:
    """A bug in a handler (here: a route added for the test that raises with an address in
    its message) answers a plain 500 page carrying the security headers, and is logged once,
    without the address and without the path's token."""
    site = web()

    async def broken(request):
        raise RuntimeError("boom for ada@example.com")

    site.app.router.routes.append(Route("/broken/{token}", broken))
    with caplog.at_level(logging.INFO):
        answer = site.http.get("/broken/SECRET-TOKEN-123")
    assert answer.status_code == 500 and answer.text == "Internal Server Error"
    assert "content-security-policy" in answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert "RuntimeError" in line and "broken" in line
    assert "ada@example.com" not in line and "SECRET-TOKEN" not in line
    assert errors[0].exc_info is None
