"""Outgoing webhooks with a receiver of the test's own: one-click unsubscribes reach it once
each, signed per Standard Webhooks (checked here as the spec says, not with our code); with
the receiver down, they wait in the outbox and arrive once it is back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

import pytest

SPEC_TOLERANCE = 5 * 60  # the spec's suggested tolerance for webhook-timestamp


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks check, from the specification: HMAC-SHA256 of
    "{webhook-id}.{webhook-timestamp}.{body}" with the base64-decoded secret after "whsec_",
    compared (constant time) with each "v1,<base64>" of webhook-signature."""
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > SPEC_TOLERANCE:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    given = [s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ") if "," in s]
    return any(hmac.compare_digest(expected, g) for g in given)


def _wait(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _unsubscribe_urls(site, readers: list[str]) -> dict[str, str]:
    return {
        r: re.findall(r"<([^>]+)>", site.wait_for_mails(r)[-1]["List-Unsubscribe"])[0]
        for r in readers
    }


def test_unsubscribes_reach_the_receiver_signed_and_once_across_its_downtime(
    api_site, receiver
) -> None:
    site = api_site()
    out = site.cli.ok("webhook", "add", receiver.url, "--events", "subscriber.unsubscribed",
                      "--name", "crm")  # fmt: skip
    secret = out.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and secret not in out.stderr
    readers = [f"reader{i}@example.com" for i in range(3)]
    for r in readers:
        site.cli.ok("subscriber", "add", r, "--list", "blog")
    site.send_issue(site.seed_issue())
    urls = _unsubscribe_urls(site, readers)

    one_click = {"List-Unsubscribe": "One-Click"}
    assert site.http.post(urls[readers[0]], data=one_click).status_code == 200
    _wait(lambda: len(receiver.posts) == 1, "the first webhook")
    first = receiver.posts[0]
    assert verify(secret, first.headers, first.body)
    assert not verify(secret.replace(secret[-6], "A" if secret[-6] != "A" else "B"),
                      first.headers, first.body)  # fmt: skip
    event = json.loads(first.body)
    assert event["type"] == "subscriber.unsubscribed"
    assert event["data"]["email"] == readers[0] and event["data"]["status"] == "unsubscribed"

    receiver.stop()  # the receiver is down: two more unsubscribe
    for r in readers[1:]:
        assert site.http.post(urls[r], data=one_click).status_code == 200
    _wait(lambda: any(m["attempts"] >= 1 and m["status"] == "pending" for m in _log(site)),
          "a failed attempt")  # fmt: skip
    receiver.start()  # back, on the same port
    _wait(lambda: len(receiver.posts) == 3, "the two waiting webhooks")
    _stays(lambda: len(receiver.posts) == 3, seconds=1.0)  # more rounds: nothing twice
    ids = [p.headers["webhook-id"] for p in receiver.posts]
    assert len(set(ids)) == 3 == len(ids)
    assert sorted(e["data"]["email"] for e in receiver.events()) == sorted(readers)
    assert all(verify(secret, p.headers, p.body) for p in receiver.posts)
    log = _log(site)
    assert [m["status"] for m in log] == ["sent"] * 3
    assert max(m["attempts"] for m in log) >= 2  # retried


def _stays(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate()
        time.sleep(0.05)


def _log(site, name: str = "crm") -> list[dict]:
    return json.loads(site.cli.ok("webhook", "log", name, "--json").stdout)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/", "http://[::1]/",
     "http://169.254.169.254/latest/meta-data", "ftp://example.com/", "file:///etc/passwd",
     "http://user:pw@example.com/"],
)  # fmt: skip
def test_a_private_or_odd_target_is_refused_without_allow_private(web, url) -> None:
    site = web()
    result = site.cli("webhook", "add", url, "--events", "subscriber.created")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert json.loads(site.cli.ok("webhook", "ls", "--json").stdout) == []


def test_webhook_test_and_the_other_events(api_site, receiver) -> None:
    site = api_site()
    out = site.cli.ok("webhook", "add", receiver.url, "--events", "all", "--name", "all")
    secret = out.stdout.strip().splitlines()[-1]
    assert "answered 204" in site.cli.ok("webhook", "test", "all").stdout
    assert json.loads(receiver.posts[0].body)["type"] == "webhook.test"
    assert verify(secret, receiver.posts[0].headers, receiver.posts[0].body)
    site.cli.ok("subscriber", "add", "ada@example.com", "--list", "blog")
    site.send_issue(site.seed_issue())
    _wait(lambda: {"subscriber.created", "issue.sent"} <= {e["type"] for e in receiver.events()},
          "subscriber.created and issue.sent")  # fmt: skip
    sent = next(e for e in receiver.events() if e["type"] == "issue.sent")
    assert sent["data"]["deliveries"]["sent"] == 1
    receiver.status = 500
    result = site.cli("webhook", "test", "all")
    assert result.exit_code == 1 and "answered 500" in result.stderr


def test_a_webhook_that_keeps_failing_is_disabled_with_the_reason(api_site, receiver) -> None:
    site = api_site(extra_config="retry_hours = 0.0005\n")  # 1.8 s instead of a day
    site.cli.ok("webhook", "add", receiver.url, "--events", "subscriber.created", "--name", "old")
    receiver.stop()
    site.cli.ok("subscriber", "add", "ada@example.com", "--list", "blog")

    def disabled() -> dict | None:
        hooks = json.loads(site.cli.ok("webhook", "ls", "--json").stdout)
        return hooks[0] if not hooks[0]["enabled"] else None

    _wait(disabled, "the webhook to be disabled")
    assert "failed for" in disabled()["disabled_reason"]
    assert [m["status"] for m in _log(site, "old")] == ["failed"]
