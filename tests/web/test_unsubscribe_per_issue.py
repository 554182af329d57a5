"""Which issue made someone unsubscribe, and the optional "why?" asked afterwards: the
``?issue=`` of the URL a sent message carries, counted once per person in the unsubscribes
table; the answer recorded once, only on the row the page was given."""

from __future__ import annotations

import re

from sqlalchemy import select

from newsletter.store.models import Unsubscribe
from newsletter.store.tracking import unsubscribe_counts

from .conftest import forms, text_part


def _readers(site, n: int) -> list[str]:
    readers = [f"reader{i}@example.com" for i in range(n)]
    for address in readers:
        site.cli.ok("subscriber", "add", address, "--list", "blog")
    return readers


def _rows(site) -> list[tuple[int | None, str]]:
    with site.session() as s:
        rows = s.scalars(select(Unsubscribe).order_by(Unsubscribe.id))
        return [(r.issue_id, r.reason) for r in rows]


def _counts(site, issue_id: int) -> tuple[int, dict[str, int]]:
    with site.session() as s:
        return unsubscribe_counts(s, issue_id)


def _header_url(site, address: str) -> str:
    msg = site.wait_for_mails(address)[-1]
    return re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])[0]


def _body_url(site, address: str) -> str:
    text = text_part(site.wait_for_mails(address)[-1])
    match = re.search(re.escape(site.base_url) + r"/unsubscribe/[A-Za-z0-9_-]+\?issue=\d+", text)
    assert match, text
    return match.group(0)


def _by_button(site, url: str):
    """Open the unsubscribe page at ``url`` and press its button: (the form's action, its
    hidden fields, the answer page)."""
    page = site.http.get(url)
    assert page.status_code == 200
    ((action, hidden),) = forms(page.text).items()
    done = site.http.post(action, data=hidden)
    assert done.status_code == 200 and "You're unsubscribed" in done.text
    return action, hidden, done


def _why_form(page: str) -> tuple[str, dict[str, str]]:
    (action,) = [a for a in forms(page) if a.endswith("/why")]
    return action, forms(page)[action]


def test_unsubscribes_are_counted_for_the_issue_of_the_message(web) -> None:
    site = web()
    first, second, third = _readers(site, 3)
    issue_id = site.seed_issue()
    site.send_issue(issue_id)
    header = _header_url(site, first)
    assert header.endswith(f"?issue={issue_id}")

    # RFC 8058 one-click at the header's exact URL: counted for the issue, once.
    for _ in range(2):
        answer = site.http.post(header, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200
    assert _rows(site) == [(issue_id, "")]

    # The body's link: the page's form keeps the issue, the button counts it.
    url = _body_url(site, second)
    action, hidden, _ = _by_button(site, url)
    assert action == url
    assert _rows(site) == [(issue_id, ""), (issue_id, "")]
    assert _counts(site, issue_id) == (2, {})
    # Pressed again (a second tab), or one-click afterwards: already unsubscribed, nothing
    # more counted and no second "why?".
    again = site.http.post(action, data=hidden)
    assert again.status_code == 200 and "/why" not in again.text
    site.http.post(url, data={"List-Unsubscribe": "One-Click"})
    assert _counts(site, issue_id) == (2, {})

    # A link without the issue (the preferences page's) is counted, for no issue.
    plain = f"{site.base_url}/unsubscribe/{site.token_of(third)}"
    site.http.post(plain, data={"List-Unsubscribe": "One-Click"})
    assert _rows(site)[-1] == (None, "") and _counts(site, issue_id) == (2, {})


def test_an_issue_parameter_that_names_no_issue_is_no_issue(web) -> None:
    site = web()
    issue_id = site.seed_issue()
    values = ["abc", "0", "-3", "1.5", " ", "99999", "9" * 30, "²", f"{issue_id}x", ""]
    readers = _readers(site, len(values) + 1)
    for value, reader in zip(values, readers, strict=False):
        url = f"{site.base_url}/unsubscribe/{site.token_of(reader)}"
        answer = site.http.post(
            url, params={"issue": value}, data={"List-Unsubscribe": "One-Click"}
        )
        assert answer.status_code == 200, value
        assert site.person(reader)["status"] == "unsubscribed"
    # The page with a garbage issue works and its form does not carry it.
    url = f"{site.base_url}/unsubscribe/{site.token_of(readers[-1])}"
    page = site.http.get(url, params={"issue": "<script>"})
    assert page.status_code == 200 and list(forms(page.text)) == [url]
    _by_button(site, url + "?issue=<script>")
    assert _rows(site) == [(None, "")] * (len(values) + 1)
    assert _counts(site, issue_id) == (0, {})


def test_why_is_recorded_once(web) -> None:
    site = web()
    (reader,) = _readers(site, 1)
    issue_id = site.seed_issue()
    url = f"{site.base_url}/unsubscribe/{site.token_of(reader)}?issue={issue_id}"
    page = site.http.get(url)
    assert "/why" not in page.text  # asked only once they are unsubscribed
    done = _by_button(site, url)[2]
    action, hidden = _why_form(done.text)
    for key in ("too_many", "not_relevant", "never_signed_up", "other"):
        assert f'value="{key}"' in done.text

    # Sending nothing chosen records nothing (the question is optional).
    thanks = site.http.post(action, data=hidden)
    assert thanks.status_code == 200 and "Thank you" in thanks.text
    assert _rows(site) == [(issue_id, "")]

    assert site.http.post(action, data=hidden | {"reason": "too_many"}).status_code == 200
    assert site.http.post(action, data=hidden | {"reason": "other"}).status_code == 200
    assert _rows(site) == [(issue_id, "too_many")]
    assert _counts(site, issue_id) == (1, {"too_many": 1})
    # The page seen again later asks nothing.
    assert "/why" not in site.http.get(url).text


def test_why_refuses_forged_rows_and_unknown_answers(web) -> None:
    site = web()
    first, second = _readers(site, 2)
    issue_id = site.seed_issue()
    pages = [
        _by_button(site, f"{site.base_url}/unsubscribe/{site.token_of(a)}?issue={issue_id}")[2]
        for a in (first, second)
    ]
    (action_a, form_a), (action_b, form_b) = (_why_form(p.text) for p in pages)
    assert form_a["unsubscribe_id"] != form_b["unsubscribe_id"]

    def refused(action: str, data: dict[str, str], status: int) -> None:
        answer = site.http.post(action, data=data)
        assert answer.status_code == status, (data, answer.text)
        assert _rows(site) == [(issue_id, ""), (issue_id, "")]

    # Another row's id with this page's form token, this form on the other person's link,
    # an id the form token was not issued for, no form token: the form has expired (403).
    refused(action_a, form_a | {"unsubscribe_id": form_b["unsubscribe_id"], "reason": "other"}, 403)
    refused(action_b, form_a | {"reason": "other"}, 403)
    for forged in ("0", "-1", "", "x", "²", "1" * 40, form_a["unsubscribe_id"] + "0"):
        refused(action_a, form_a | {"unsubscribe_id": forged, "reason": "other"}, 403)
    refused(action_a, {"unsubscribe_id": form_a["unsubscribe_id"], "reason": "other"}, 403)
    # An answer that is not offered: the usual 400 page.
    for reason in ("spam", "too_many " * 10, "<b>x</b>", "TOO_MANY"):
        answer = site.http.post(action_a, data=form_a | {"reason": reason})
        assert answer.status_code == 400 and "That did not work" in answer.text
    # An unknown link: 404.
    token = site.token_of(first)
    forged_link = action_a.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B"))
    refused(forged_link, form_a | {"reason": "other"}, 404)
    assert _rows(site) == [(issue_id, ""), (issue_id, "")]

    # Each person's own form still works, for their own row only.
    site.http.post(action_b, data=form_b | {"reason": "never_signed_up"})
    assert _rows(site) == [(issue_id, ""), (issue_id, "never_signed_up")]
