"""sanitize_html: the email-safe allowlist, absolute URLs, nothing executable."""

from __future__ import annotations

import pytest

from newsletter.content import sanitize_html

BASE = "https://blog.example.com/posts/hello/"


def clean(html: str, base_url: str = BASE) -> str:
    return sanitize_html(html, base_url=base_url)


@pytest.mark.parametrize(
    "html",
    [
        "<p>One <em>two</em> <strong>three</strong> <b>four</b> <i>five</i><br>six</p>",
        "<h1>A</h1><h2>B</h2><h3>C</h3><h4>D</h4><h5>E</h5><h6>F</h6>",
        '<ul><li>a</li></ul><ol start="3"><li>b</li></ol>',
        "<blockquote><p>quoted</p></blockquote><hr><pre><code>x = 1\n  y</code></pre>",
        '<figure><img src="https://cdn.example.com/a.png" alt="A chart" width="600" height="300">'
        "<figcaption>A chart</figcaption></figure>",
        '<table><thead><tr><th>Plan</th></tr></thead><tbody><tr><td colspan="2">Team</td></tr>'
        "</tbody></table>",
    ],
)
def test_allowlisted_markup_is_kept_as_is(html: str) -> None:
    assert clean(html) == html


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../about/", "https://blog.example.com/posts/about/"),
        ("/pricing", "https://blog.example.com/pricing"),
        ("next/", "https://blog.example.com/posts/hello/next/"),
        ("#comments", "https://blog.example.com/posts/hello/#comments"),
        ("?page=2", "https://blog.example.com/posts/hello/?page=2"),
        ("//cdn.example.com/x", "https://cdn.example.com/x"),
        ("https://other.example.org/a?b=1&c=2", "https://other.example.org/a?b=1&amp;c=2"),
    ],
)
def test_links_and_images_are_made_absolute(given: str, expected: str) -> None:
    html = clean(f'<a href="{given}">link</a><img src="{given}" alt="">')

    assert html == (f'<a href="{expected}" rel="noopener">link</a><img src="{expected}" alt="">')


def test_relative_urls_are_dropped_without_a_base() -> None:
    html = clean('<a href="/about">about</a> <img src="a.png" alt="A">', base_url="")

    assert html == '<a rel="noopener">about</a> <img alt="A">'


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "  JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "&#106;avascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "file:///etc/passwd",
    ],
)
def test_dangerous_link_schemes_lose_the_href(href: str) -> None:
    assert clean(f'<a href="{href}">x</a>') == '<a rel="noopener">x</a>'


def test_data_images_are_dropped() -> None:
    html = clean('<img src="data:image/png;base64,iVBORw0KGgo=" alt="pixel">')

    assert html == '<img alt="pixel">'


def test_mail_links_are_kept() -> None:
    html = clean('<a href="mailto:hello@example.com">mail</a>')

    assert html == '<a href="mailto:hello@example.com" rel="noopener">mail</a>'


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<script>alert(1)</script><p>after</p>", "<p>after</p>"),
        ("<style>p { color: red }</style><p>after</p>", "<p>after</p>"),
        ('<iframe src="https://evil.example/">fallback</iframe>ok', "ok"),
        ('<object data="x.swf">fallback</object><embed src="y.swf">ok', "ok"),
        ("<svg onload=alert(1)><text>svg</text></svg>ok", "ok"),
        ("<form action=/x><input name=pw><button>Go</button>label</form>", "label"),
        ('<p onclick="x()" style="color:red" class="c" id="i">t</p>', "<p>t</p>"),
        ('<img src="https://x.example/a.png" onerror="alert(1)" alt="a">',
         '<img src="https://x.example/a.png" alt="a">'),
        ('<a href="https://x.example/" target="_blank" rel="opener" onclick="x()">t</a>',
         '<a href="https://x.example/" rel="noopener">t</a>'),
        ("<p>before<!-- secret --> after</p>", "<p>before after</p>"),
        ("<p>unclosed <b>bold", "<p>unclosed <b>bold</b></p>"),
        ("<marquee>moving</marquee> <font color=red>old</font>", "moving old"),
    ],
)  # fmt: skip
def test_hostile_markup(html: str, expected: str) -> None:
    assert clean(html) == expected


def test_sanitising_twice_changes_nothing() -> None:
    once = clean(
        '<p>a <a href="/x">b</a> <img src="c.png" alt=""></p><script>d</script>'
        "<table><tr><td>e</td></tr></table>"
    )

    assert clean(once) == once
