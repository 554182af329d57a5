"""html_to_text (the text/plain part of an email), clean_line and summarize."""

from __future__ import annotations

import pytest

from newsletter.content import html_to_text, parse_feed
from newsletter.content.text import clean_line, summarize

from . import FEEDS

ESSAY = """\
<h1>Pricing &amp; packaging</h1>
<p>We raised prices <em>twice</em> last year.&nbsp;Read
<a href="https://x.example/why">why we did it</a>
or see <a href="https://x.example/plans">https://x.example/plans</a>.<br>Questions?
<a href="mailto:hi@x.example">hi@x.example</a></p>
<h2>What we learned</h2>
<ul>
<li>Customers care about predictability.</li>
<li>Annual plans hide churn:
<ul><li>renewals are lumpy</li><li>feedback is late</li></ul>
</li>
</ul>
<ol start="3"><li>Third</li><li>Fourth</li></ol>
<blockquote><p>Price is a feature.</p><p>So is a good invoice.</p></blockquote>
<pre><code>plan = "team"

price = 12</code></pre>
<figure><img src="https://x.example/chart.png" alt="Churn by cohort">
<figcaption>Churn by cohort, 2023</figcaption></figure>
<hr>
<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Team</td><td>$12</td></tr></table>
<h3>Keep me updated!</h3>
<p><a href="https://x.example/subscribe">
<img src="https://x.example/btn.png" alt="Subscribe"></a></p>
"""

ESSAY_TEXT = """\
Pricing & packaging
===================

We raised prices twice last year. Read why we did it (https://x.example/why) or see https://x.example/plans.
Questions? hi@x.example

What we learned
---------------

- Customers care about predictability.
- Annual plans hide churn:
  - renewals are lumpy
  - feedback is late

3. Third
4. Fourth

> Price is a feature.
>
> So is a good invoice.

plan = "team"

price = 12

[Churn by cohort]

Churn by cohort, 2023

--------------------

Plan | Price
Team | $12

Keep me updated!

Subscribe (https://x.example/subscribe)"""


def test_a_whole_essay_reads_well_as_plain_text() -> None:
    assert html_to_text(ESSAY) == ESSAY_TEXT


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ('<a href="https://x.example/a">Read more</a>', "Read more (https://x.example/a)"),
        ('<a href="https://x.example/a">https://x.example/a</a>', "https://x.example/a"),
        ('<a href="https://x.example/a"></a>', "https://x.example/a"),
        ('<a href="mailto:hi@x.example">write to us</a>', "write to us (hi@x.example)"),
        ("<a>no href</a>", "no href"),
        ('<a href="https://x.example/a">two\n   lines</a>', "two lines (https://x.example/a)"),
        ("<p>a</p><p>b</p>", "a\n\nb"),
        ("<p>a<br>b<br><br>c</p>", "a\nb\n\nc"),
        ("<p>  lots   of\n\n   space  </p>", "lots of space"),
        ("<p>&lt;tag&gt; &amp; &eacute;t&eacute; &#8217;</p>", "<tag> & été \u2019"),
        ('<p><img src="x.png" alt=""> <img src="y.png"></p>', ""),
        ("<ol><li><p>loose</p></li><li><p>items</p></li></ol>", "1. loose\n\n2. items"),
        ("<blockquote><blockquote>deep</blockquote></blockquote>", "> > deep"),
        ("<p>before</p><pre>  indented\n    more</pre><p>after</p>",
         "before\n\n  indented\n    more\n\nafter"),
        ("<dl><dt>Term</dt><dd>Definition</dd></dl>", "Term\nDefinition"),
        ("text <script>hidden()</script>", "text hidden()"),  # unsanitised input: text only
        ('<p>unclosed <a href="https://x.example/">link', "unclosed link (https://x.example/)"),
    ],
)  # fmt: skip
def test_pieces(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_bare_text_leaves_out_urls_alt_texts_and_rules() -> None:
    text = html_to_text(ESSAY, bare=True)

    assert "(http" not in text
    assert "[Churn by cohort]" not in text
    assert "===" not in text
    assert "-----" not in text
    assert "Read why we did it or see" in text


def test_feed_post_as_text() -> None:
    body = (FEEDS / "founder_rss2.xml").read_bytes()
    post = parse_feed(body, base_url="https://founder.example.com/feed/").entries[0]

    text = html_to_text(post.html)

    assert "<" not in text
    assert "What the numbers said\n---------------------\n" in text
    assert "We read the churn post (https://founder.example.com/2023/11/" in text
    assert "- Monthly plans: customers tell us early when something breaks.\n- Annual" in text
    assert text.endswith("Keep me updated! Subscribe (https://founder.example.com/subscribe/)")


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ("  Hello\r\n  world\t!  ", "Hello world !"),
        ("Subject\r\nBcc: victim@example.com", "Subject Bcc: victim@example.com"),
        ("nul\x00bell\x07esc\x1b[31m", "nulbellesc[31m"),
        ("line\u2028separator\u0085next", "line separator next"),
        ("bidi \u202egnp.exe\u202c zero\u200bwidth soft\u00adhyphen",
         "bidi gnp.exe zerowidth softhyphen"),
        ("family \U0001f468\u200d\U0001f469\u200d\U0001f467 emoji",  # joiners stay
         "family \U0001f468\u200d\U0001f469\u200d\U0001f467 emoji"),
    ],
)  # fmt: skip
def test_clean_line(raw: str, line: str) -> None:
    assert clean_line(raw) == line


def test_summarize_cuts_at_a_word() -> None:
    text = " ".join(f"word{i}" for i in range(200))

    summary = summarize(text)

    assert 290 <= len(summary) <= 300
    assert summary.endswith(" …")
    assert text.startswith(summary.removesuffix(" …") + " ")  # whole words only
    assert summarize("short\n\ntext") == "short text"
    assert summarize("x" * 400, width=10) == "xxxxxxxxx…"  # one overlong word is cut inside
