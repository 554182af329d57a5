"""Benchmark: per-recipient rendering of a prepared issue, on one core.

    .venv/bin/python bench/render.py [--recipients 20000] [--html-kb 20] [--cpu 0] [--baseline]

Builds a one-post issue of about 20 KB of HTML from the sample essay
(tests/fixtures/compose/essay.html), prepares it once (templates, CSS inlining, encoding),
then times ``PreparedIssue.message_bytes`` for each recipient. Prints the one-time prepare
cost, the median and 99th percentile per message, and messages per second. The process is
pinned to one CPU where the OS allows it. Nothing is sent; no network.

``--baseline`` also times the naive way for comparison: per recipient, the personalised
parts put into ``EmailMessage.set_content``/``add_alternative`` and ``as_bytes``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.compose import (  # noqa: E402
    IssueContent,
    PostView,
    PreparedIssue,
    Recipient,
    prepare_issue,
)
from newsletter.config import settings_from_dict  # noqa: E402

ESSAY = ROOT / "tests" / "fixtures" / "compose" / "essay.html"
SETTINGS = {
    "site": {
        "name": "Field Notes",
        "base_url": "https://fieldnotes.example.com",
        "postal_address": "Field Notes AB, Storgatan 12, 114 51 Stockholm, Sweden",
    },
    "sender": {"from_name": "Maja Lindqvist", "from_address": "maja@fieldnotes.example.com"},
    "sending": {
        "feedback_id": "essays:fieldnotes:newsletter:fn42",
        "unsubscribe_mailto": "unsubscribe@fieldnotes.example.com",
    },
}
NAMES = ["Ada Lovelace", "Åsa Öberg", "", "Grace Hopper", 'Dr. "Q" O\'Brien', "Jürgen Müller"]


def build_issue(html_kb: float, settings) -> tuple[IssueContent, PreparedIssue, float]:
    """The essay cut to whole blocks so the prepared HTML part is about ``html_kb`` KB."""
    block = r"<(p|h2|ul|ol|figure|blockquote)\b.*?</\1>"
    essay = ESSAY.read_text(encoding="utf-8")
    blocks = [m.group(0) for m in re.finditer(block, essay, flags=re.S)]
    probe = Recipient(subscriber_id=1, email="probe@example.com", name="Ada", token="t" * 22)
    for count in range(1, len(blocks) + 1):
        post = PostView(
            title="We changed our pricing three times. Here is what each change taught us",
            url="https://fieldnotes.example.com/essays/pricing-three-times",
            html="\n".join(blocks[:count]),
            summary="Our first price was a guess, the second a reaction, the third a decision.",
            published_at=datetime(2026, 3, 12, 8, 0, tzinfo=UTC),
            author="Maja Lindqvist",
            image_url="https://images.example.com/essays/pricing/hero.jpg",
        )
        content = IssueContent(
            issue_id=42, kind="post", subject=post.title, preheader=post.summary, posts=(post,)
        )
        start = time.perf_counter()
        prepared = prepare_issue(content, settings)
        prepare_ms = (time.perf_counter() - start) * 1000
        if len(prepared.html_for(probe).encode()) >= html_kb * 1024:
            break
    return content, prepared, prepare_ms


def median_us(func, items) -> float:
    """Median wall time of ``func(item)`` over ``items``, in microseconds."""
    timings = []
    clock = time.perf_counter_ns
    for item in items:
        t0 = clock()
        func(item)
        timings.append(clock() - t0)
    return statistics.median(timings) / 1000


def stdlib_message(prepared: PreparedIssue, r: Recipient) -> bytes:
    """The naive per-recipient path: EmailMessage + set_content + as_bytes."""
    msg = EmailMessage()
    msg["From"] = "Maja Lindqvist <maja@fieldnotes.example.com>"
    msg["To"] = r.email
    msg["Subject"] = prepared.content.subject
    msg["Message-ID"] = prepared.message_id(r)
    msg.set_content(prepared.text_for(r), cte="quoted-printable")
    msg.add_alternative(prepared.html_for(r), subtype="html", cte="quoted-printable")
    return msg.as_bytes(policy=policy.SMTP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--html-kb", type=float, default=20.0)
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (Linux)")
    parser.add_argument("--baseline", action="store_true", help="also time the stdlib path")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

    settings = settings_from_dict(SETTINGS)
    _, prepared, _ = build_issue(args.html_kb, settings)
    # Time a fresh preparation of the final issue (templates compiled, caches warm).
    start = time.perf_counter()
    prepared = prepare_issue(prepared.content, settings)
    prepare_ms = (time.perf_counter() - start) * 1000

    recipients = [
        Recipient(
            subscriber_id=i,
            email=f"reader{i}@example.com" if i % 10 else f"reader{i}@bücher.example",
            name=NAMES[i % len(NAMES)],
            token=f"{i:022x}",
        )
        for i in range(args.recipients)
    ]
    sample = prepared.message_bytes(recipients[0])
    html_size = len(prepared.html_for(recipients[0]).encode())
    for r in recipients[:500]:  # warm up
        prepared.message_bytes(r)

    timings = []
    clock = time.perf_counter_ns
    total_start = clock()
    for r in recipients:
        t0 = clock()
        prepared.message_bytes(r)
        timings.append(clock() - t0)
    total_s = (clock() - total_start) / 1e9

    timings.sort()
    median = statistics.median(timings) / 1000
    p99 = timings[int(len(timings) * 0.99)] / 1000
    print(f"python {platform.python_version()}, {platform.machine()}, nproc {os.cpu_count()}")
    print(f"issue: {html_size / 1024:.1f} KB HTML part, {len(sample) / 1024:.1f} KB message")
    print(f"prepare_issue (once per issue): {prepare_ms:.1f} ms")
    print(
        f"message_bytes x {len(recipients):,} on one core: median {median:.1f} µs, "
        f"p99 {p99:.1f} µs, {len(recipients) / total_s:,.0f} messages/s"
    )
    if args.baseline:
        naive = median_us(lambda r: stdlib_message(prepared, r), recipients[:1000])
        print(f"baseline, EmailMessage.set_content + as_bytes x 1,000: median {naive:.0f} µs")


if __name__ == "__main__":
    main()
