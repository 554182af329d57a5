"""Inputs that are bombs are refused or defused: YAML front matter with aliases (a "billion
laughs" file), too deep or too large front matter, HTML nested thousands deep (in a body from a
feed or a Markdown file), and markup that makes an HTML tokenizer quadratic."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.content import html_to_text, load_markdown_post, sanitize_html
from newsletter.content.markdown_posts import MAX_FRONT_MATTER_BYTES, MAX_FRONT_MATTER_DEPTH
from newsletter.content.nesting import MAX_DEPTH
from newsletter.errors import ContentError
from newsletter.store import connect, session_factory
from newsletter.store.models import Post
from tests.conftest import Cli, write_config

from . import POSTS

SITE = "https://blog.example.com/"
MB = 1024 * 1024

# 331 bytes that a plain YAML loader expands into 9**8 (43 million) strings.
BILLION_LAUGHS = """\
---
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
title: *h
---
Body.
"""

DEEP = 50_000


def deep_divs(count: int = DEEP, text: str = "deep text") -> str:
    return "<div>" * count + text + "</div>" * count


class _Depth(HTMLParser):
    """The deepest nesting of elements in (sanitised, hence well-formed) HTML."""

    VOID = frozenset({"br", "hr", "img"})

    def __init__(self) -> None:
        super().__init__()
        self.depth = self.deepest = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID:
            self.depth -= 1


def nesting(html: str) -> int:
    parser = _Depth()
    parser.feed(html)
    parser.close()
    return parser.deepest


def stored_html(database_url: str) -> dict[str, str]:
    """Title -> body of every post in the store."""
    engine = connect(database_url)
    try:
        with session_factory(engine)() as session:
            return {title: html for title, html in session.execute(select(Post.title, Post.html))}
    finally:
        engine.dispose()


# YAML front matter -----------------------------------------------------------------------------


def run_cli(config: Path, *args: str, deadline: float = 20.0) -> tuple[int, str, float, int]:
    """The real CLI (``python -m newsletter``) in a child process limited to 2 GB of address
    space, killed after ``deadline`` seconds: exit status, stderr, seconds taken and the
    child's own peak RSS in bytes (from wait4, so no other child of the test run counts)."""
    limit = 2 * 1024 * MB
    trampoline = (
        "import resource, runpy, sys; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
        "sys.argv = ['newsletter', *sys.argv[1:]]; "
        "runpy.run_module('newsletter', run_name='__main__', alter_sys=True)"
    )
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", trampoline, "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    killer = threading.Timer(deadline, child.kill)
    killer.start()
    try:
        stderr = child.stderr.read().decode()  # type: ignore[union-attr]
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        killer.cancel()
        child.stderr.close()  # type: ignore[union-attr]
        child.returncode = 0  # reaped by wait4 above: keep Popen from waiting again
    took = time.monotonic() - started
    kilobytes = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss // 1024
    assert took < deadline, f"killed after {deadline} s"
    return os.waitstatus_to_exitcode(status), stderr, took, kilobytes * 1024


@pytest.mark.serial
def test_billion_laughs_is_refused_within_a_second_at_bounded_memory(
    tmp_path: Path, migrated_url: str
) -> None:
    config = write_config(tmp_path / "newsletter.toml", migrated_url)
    bomb = tmp_path / "laughs.md"
    bomb.write_text(BILLION_LAUGHS, encoding="utf-8")
    # What starting the CLI costs, with an ordinary post.
    code, _, baseline, baseline_rss = run_cli(config, "post", "add", str(POSTS / "minimal-post.md"))
    assert code == 0

    code, stderr, took, rss = run_cli(config, "post", "add", str(bomb))

    assert code == 1
    assert (
        stderr == f"Error: {bomb}: aliases are not allowed in front matter (line 3 of the file)\n"
    )
    assert took < baseline + 1.0, f"{took:.2f} s, an ordinary post {baseline:.2f} s"
    assert rss < 200 * MB, f"peak RSS {rss // MB} MB (an ordinary post {baseline_rss // MB} MB)"


def write_post(tmp_path: Path, front_matter: str, body: str = "Body.") -> Path:
    path = tmp_path / "post.md"
    path.write_text(f"---\n{front_matter}\n---\n{body}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "front_matter",
    [
        "a: &x Hello\ntitle: *x",
        "base: &b {title: T}\n<<: *b",  # a merge key needs an alias too
        "title: T\ntags: &t [a]\nmore: [*t]",
    ],
)
def test_any_alias_is_refused_with_one_line(tmp_path: Path, front_matter: str) -> None:
    path = write_post(tmp_path, front_matter)

    with pytest.raises(ContentError) as caught:
        load_markdown_post(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: aliases are not allowed in front matter (line ")
    assert "\n" not in message


def test_an_anchor_alone_is_harmless_and_allowed(tmp_path: Path) -> None:
    post = load_markdown_post(write_post(tmp_path, "title: &t Anchored title\nauthor: Ada"))

    assert post.title == "Anchored title"


@pytest.mark.parametrize(
    "value",
    [
        "[" * 50 + "]" * 50,
        "{a: " * 50 + "1" + "}" * 50,
        "".join(f"\n{'  ' * i}k:" for i in range(1, 60)) + " v",
        "".join(f"\n{'  ' * i}-" for i in range(1, 60)) + " v",
    ],
    ids=["flow sequences", "flow mappings", "block mappings", "block sequences"],
)
def test_front_matter_nested_too_deep_is_refused(tmp_path: Path, value: str) -> None:
    path = write_post(tmp_path, f"title: T\nx: {value}")

    with pytest.raises(ContentError) as caught:
        load_markdown_post(path)

    message = str(caught.value)
    assert message.startswith(
        f"{path}: front matter nested more than {MAX_FRONT_MATTER_DEPTH} levels deep (line "
    )
    assert "\n" not in message


def test_front_matter_of_brackets_only_is_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = write_post(tmp_path, "title: T\nx: " + "[" * 60_000)

    with pytest.raises(ContentError) as caught:
        load_markdown_post(path)

    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_front_matter_nested_within_the_limit_is_read(tmp_path: Path) -> None:
    # The mapping of the front matter is the first level.
    nested = "[" * (MAX_FRONT_MATTER_DEPTH - 1) + "1" + "]" * (MAX_FRONT_MATTER_DEPTH - 1)

    post = load_markdown_post(write_post(tmp_path, f"x: {nested}\ntitle: Nested"))

    assert post.title == "Nested"


def test_front_matter_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    lines = "\n".join(f"k{i}: {'v' * 60}" for i in range(MAX_FRONT_MATTER_BYTES // 60))
    path = write_post(tmp_path, f"title: T\n{lines}")

    with pytest.raises(ContentError) as caught:
        load_markdown_post(path)

    assert str(caught.value) == f"{path}: the front matter is larger than 64 KB"


def test_front_matter_that_is_never_closed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open.md"
    path.write_text("---\ntitle: T\n\nThe body, but no closing line.\n", encoding="utf-8")

    with pytest.raises(ContentError) as caught:
        load_markdown_post(path)

    assert str(caught.value) == f"{path}: the front matter is not closed (end it with '---')"


# HTML nested deep ------------------------------------------------------------------------------


@pytest.mark.serial
def test_fifty_thousand_nested_divs_are_sanitised_quickly_keeping_the_text() -> None:
    html = deep_divs()
    assert len(html) > 500_000

    started = time.perf_counter()
    clean = sanitize_html(html, base_url=SITE)
    took = time.perf_counter() - started

    assert took < 2.0, f"{took:.2f} s"
    assert "deep text" in clean
    assert nesting(clean) == MAX_DEPTH


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<div>" * 300 + "never closed", "never closed"),
        ("<blockquote>" * 300 + "quoted" + "</blockquote>" * 300, "quoted"),
        ("<span>" * 300 + "inline" + "</span>" * 300, "inline"),
        ("<b>" * 300 + "bold", "bold"),
        ("<ul><li>" * 300 + "item", "item"),
        ("<span><div></span>" * 300 + "ignored ends", "ignored ends"),
        ("<div>" * 300 + "".join(f"<p>para {i}</p>" for i in range(5)), "para 4"),
    ],
    ids=["unclosed", "closed", "inline", "formatting", "lists", "ignored-ends", "siblings"],
)
def test_nesting_is_capped_and_the_text_kept(html: str, text: str) -> None:
    clean = sanitize_html(html, base_url=SITE)

    assert text in clean
    assert nesting(clean) <= MAX_DEPTH


def test_words_in_flattened_blocks_stay_apart() -> None:
    html = "<div>" * 200 + "".join(f"<div>word{i}</div>" for i in range(3)) + "</div>" * 200

    text = html_to_text(sanitize_html(html, base_url=SITE))

    assert text.split() == ["word0", "word1", "word2"]


def test_what_is_dropped_with_its_content_stays_dropped_beyond_the_limit() -> None:
    html = (
        "<div>" * 150
        + "<script>alert(1)</script><svg><text>inside svg</text></svg>"
        + "<style>p{}</style><object><p>inside object</p></object>after"
    )

    clean = sanitize_html(html, base_url=SITE)

    assert "after" in clean
    for gone in ("alert", "inside svg", "p{}", "inside object", "<script", "<svg", "<object"):
        assert gone not in clean


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        # What the HTML rules make of misnested markup, as html5ever alone makes it.
        ("<p><b>bold</p><p>still bold</b></p>", "<p><b>bold</b></p><p><b>still bold</b></p>"),
        ("<b>1<p>2</b>3</p>", "<b>1</b><p><b>2</b>3</p>"),
        ("<ul><li>one<li>two</ul>", "<ul><li>one</li><li>two</li></ul>"),
        (
            "<table><tr><td>a<td>b<tr><td>c</table>",
            "<table><tbody><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></tbody></table>",
        ),
        ("<p>one<p>two<div>three</div>", "<p>one</p><p>two</p><div>three</div>"),
        ("<b><i>x</b>y</i>", "<b><i>x</i></b><i>y</i>"),
        ("<span>a<div>b</span>c</div>", "<span>a<div>bc</div></span>"),
        ("x</p>y", "x<p></p>y"),
        ("<title>T &amp; <b>x</b></title>", "T &amp; &lt;b&gt;x&lt;/b&gt;"),
        ('<div title="a>b">q</div>', '<div title="a&gt;b">q</div>'),
    ],
)
def test_the_cap_keeps_what_the_html_rules_make_of_shallow_markup(html: str, expected: str) -> None:
    assert sanitize_html(html, base_url=SITE) == expected


def test_reopened_formatting_cannot_grow_the_output_without_bound() -> None:
    # html5ever alone reopens every one of these <b>s in each later <div>: quadratic output.
    html = "".join(f"<div><b title={i}>t</div>" for i in range(10_000))

    clean = sanitize_html(html, base_url=SITE)

    assert clean.count("t</b>") >= 10_000
    assert len(clean) < 20 * len(html)


@pytest.mark.serial
@pytest.mark.parametrize(
    "html",
    ["<a" * 200_000, "</" * 200_000, "<!--" * 200_000, "<a b='" * 100_000, "<title>" * 100_000],
    ids=["open-tags", "end-tags", "comments", "quotes", "raw-text"],
)
def test_markup_that_makes_a_tokenizer_quadratic_is_read_in_linear_time(html: str) -> None:
    started = time.perf_counter()
    sanitize_html(html, base_url=SITE)

    assert time.perf_counter() - started < 1.0


def deep_feed(body: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>
<title>Deep blog</title><link>https://blog.example.com/</link>
<item><title>Deep post</title><link>https://blog.example.com/deep</link><guid>deep-1</guid>
<content:encoded><![CDATA[{body}]]></content:encoded></item>
</channel></rss>""".encode()


def test_a_feed_post_nested_fifty_thousand_deep_is_stored_flattened(
    cli: Cli, migrated_url: str, http_server
) -> None:
    http_server["/deep.xml"] = (
        200,
        deep_feed(deep_divs()),
        {"Content-Type": "application/rss+xml"},
    )
    url = http_server.url("/deep.xml")

    started = time.monotonic()
    result = cli.ok("post", "fetch", url)

    assert time.monotonic() - started < 10.0
    assert f"{url}: 1 new, 0 updated, 0 unchanged" in result.stdout
    html = stored_html(migrated_url)["Deep post"]
    assert "deep text" in html
    assert nesting(html) == MAX_DEPTH


def test_a_markdown_post_nested_fifty_thousand_deep_is_stored_flattened(
    cli: Cli, migrated_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "deep.md"
    path.write_text(f"---\ntitle: Deep markdown\n---\n{deep_divs()}\n", encoding="utf-8")

    started = time.monotonic()
    result = cli.ok("post", "add", str(path))

    assert time.monotonic() - started < 10.0
    assert result.stdout.strip().endswith("new: Deep markdown")
    html = stored_html(migrated_url)["Deep markdown"]
    assert "deep text" in html
    assert nesting(html) == MAX_DEPTH
