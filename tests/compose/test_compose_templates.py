"""Templates: user overrides by relative name, one-line ContentErrors, the web archive page,
and the issues and settings the composer refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import html as lxml_html

from newsletter.compose import IssueContent, Recipient, prepare_issue, render_web_html
from newsletter.config import settings_from_dict
from newsletter.errors import ConfigError, ContentError, InvalidInputError

from .samples import ADA, CONFIG, make_settings

CUSTOM_POST = """{% extends "email/base.html" %}
{% block content %}<p class="custom">Custom: {{ post.title }}, for {{ name }}</p>{% endblock %}
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return root


def test_user_template_overrides_by_name_and_the_rest_comes_from_the_package(
    tmp_path, post_issue, settings
):
    write(tmp_path, "email/post.html", CUSTOM_POST)
    prepared = prepare_issue(post_issue, settings, templates_dir=tmp_path)
    html = prepared.html_for(ADA)
    assert f"Custom: {post_issue.posts[0].title}, for Ada Lovelace" in html
    assert f"/unsubscribe/{ADA.token}" in html  # base.html still the package's
    assert 'class="custom" style=' not in html  # no CSS rule for it: nothing inlined
    assert "Three years ago" in prepared.text_for(ADA)  # post.txt still the package's


def test_templates_dir_from_settings_is_relative_to_the_config_file(tmp_path, post_issue):
    write(tmp_path / "my-templates", "email/post.html", CUSTOM_POST)
    raw = {**CONFIG, "templates": {"dir": "my-templates"}}
    settings = settings_from_dict(raw, tmp_path / "newsletter.toml")
    assert "Custom:" in prepare_issue(post_issue, settings).html_for(ADA)


def test_missing_templates_dir(tmp_path, post_issue, settings):
    with pytest.raises(ContentError, match=r"templates directory .*nope does not exist"):
        prepare_issue(post_issue, settings, templates_dir=tmp_path / "nope")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% block content %}{% if %}{% endblock %}", r"email/post\.html, line 1: "),
        ('{% extends "email/base.html" %}{% block content %}{{ nope }}{% endblock %}',
         r"template email/post\.html: 'nope' is undefined"),
        ('{% include "email/missing.html" %}', r"template email/missing\.html not found"),
        ('{% extends "email/base.html" %}{% block content %}{{ name|upper }}{% endblock %}',
         r"personal field .* filter"),
        ('<html><head><link rel="stylesheet" href="https://x.example.com/a.css"></head></html>',
         r"cannot use <link rel=stylesheet>"),
    ],
)  # fmt: skip
def test_broken_template_is_one_line_content_error(
    tmp_path, post_issue, settings, template, message
):
    write(tmp_path, "email/post.html", template)
    with pytest.raises(ContentError, match=message) as caught:
        prepare_issue(post_issue, settings, templates_dir=tmp_path)
    assert "\n" not in str(caught.value)


def test_web_page_has_no_personal_fields(post_issue, settings):
    page = render_web_html(post_issue, settings)
    assert "/unsubscribe/" not in page and "/preferences/" not in page
    assert "Hi there" not in page and "Hi " not in page
    assert "Three years ago we charged" in page
    doc = lxml_html.document_fromstring(page)
    assert doc.find_class("card")[0].get("style") is None  # CSS stays in <style>
    assert ".post-body p" in doc.find(".//style").text
    assert "Field Notes AB, Storgatan 12" in doc.text_content()


def test_digest_table_of_contents_links_to_anchors(prepared_digest, digest_issue, settings):
    email_doc = lxml_html.document_fromstring(prepared_digest.html_for(ADA))
    toc = [a.get("href") for a in email_doc.find_class("toc-link")]
    assert toc == [
        f"https://fieldnotes.example.com/archive/digest-43?k=signature#post-{i}" for i in (1, 2, 3)
    ]
    web = lxml_html.document_fromstring(render_web_html(digest_issue, settings))
    assert [a.get("href") for a in web.find_class("toc-link")] == ["#post-1", "#post-2", "#post-3"]
    assert [el.get("id") for el in web.find_class("digest-item")] == ["post-1", "post-2", "post-3"]
    text = prepared_digest.text_for(ADA)
    for post in digest_issue.posts:
        assert post.title in text and f"Read more: {post.url}" in text


def test_post_issue_shows_the_web_view_link_and_read_on_the_web(prepared, post_issue):
    doc = lxml_html.document_fromstring(prepared.html_for(ADA))
    hrefs = {a.text_content().strip(): a.get("href") for a in doc.iter("a")}
    assert hrefs["View this email in your browser"] == (
        "https://fieldnotes.example.com/archive/pricing-per-seat-42"
    )
    assert hrefs["Read on the web"] == post_issue.posts[0].url
    assert hrefs["Manage your preferences"].endswith(f"/preferences/{ADA.token}")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "post", "posts": "two"}, "one-post issue with several posts"),
        ({"posts": ()}, "has no posts"),
        ({"subject": " \r\n "}, "empty subject"),
    ],
)
def test_unusable_issue(post_issue, digest_issue, settings, change, message):
    fields = {
        "issue_id": 9,
        "kind": "post",
        "subject": "s",
        "preheader": "",
        "posts": post_issue.posts,
    }
    fields |= change
    if fields["posts"] == "two":
        fields["posts"] = digest_issue.posts[:2]
    with pytest.raises(ContentError, match=message):
        prepare_issue(IssueContent(**fields), settings)


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("sender", {"from_address": "not-an-address"}, "sender.from_address: "),
        ("sender", {"from_address": "åsa@example.com"}, "ASCII local part"),
        ("sender", {"reply_to": "Replies <no at sign>"}, "sender.reply_to: "),
        ("sender", {"list_id": "has space.example.com"}, "sender.list_id: "),
        ("site", {"base_url": "https://bücher.example"}, "site.base_url: "),
        ("sending", {"unsubscribe_mailto": "mailto:nobody"}, "sending.unsubscribe_mailto: "),
    ],
)
def test_unusable_settings(post_issue, section, values, message):
    with pytest.raises(ConfigError, match=message):
        prepare_issue(post_issue, make_settings(**{section: values}))


def test_recipient_without_token_is_refused(prepared):
    r = Recipient(subscriber_id=5, email="x@example.com", name="", token="")
    with pytest.raises(InvalidInputError, match="subscriber 5 has no unsubscribe token"):
        prepared.message_bytes(r)
