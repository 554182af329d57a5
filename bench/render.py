"""Benchmark: per-recipient rendering of a prepared issue, on one core.

    .venv/bin/python bench/render.py [--recipients 20000] [--html-kb 20] [--links 20]
                                     [--cpu 0] [--baseline] [--tracking]

Builds a one-post issue of about 20 KB of HTML from the sample essay
(tests/fixtures/compose/essay.html) with ``--links`` links put into its paragraphs (the essay
has none of its own), prepares it once (templates, CSS inlining, encoding), then times
``PreparedIssue.message_bytes`` for each recipient. Prints the one-time prepare cost, the
median and 99th percentile per message, and messages per second. The process is pinned to
one CPU where the OS allows it. Nothing is sent; no network.

``--tracking`` also prepares the issue with click tracking on (a ``LinkPlan`` as
newsletter/tracking/plan.py makes it, with a random key) and times both in the same run, in
alternating rounds of the same recipients, so a slow moment of the machine touches both
alike; it prints the ratio on ÷ off. It checks one tracked message first (every link
rewritten to ``/l/`` with a token that verifies, the message parses) and exits 1 if not.

``--baseline`` also times the naive way for comparison: per recipient, the personalised
parts put into ``EmailMessage.set_content``/``add_alternative`` and ``as_bytes``.
"""

from __future__ import annotations

import argparse
import email
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
from newsletter.tracking.links import HONEYPOT, LinkPlan  # noqa: E402
from newsletter.tracking.tokens import Signer  # noqa: E402

ESSAY = ROOT / "tests" / "fixtures" / "compose" / "essay.html"
BASE_URL = "https://fieldnotes.example.com"
SETTINGS = {
    "site": {
        "name": "Field Notes",
        "base_url": BASE_URL,
        "postal_address": "Field Notes AB, Storgatan 12, 114 51 Stockholm, Sweden",
    },
    "sender": {"from_name": "Maja Lindqvist", "from_address": "maja@fieldnotes.example.com"},
    "sending": {
        "feedback_id": "essays:fieldnotes:newsletter:fn42",
        "unsubscribe_mailto": "unsubscribe@fieldnotes.example.com",
    },
}
NAMES = ["Ada Lovelace", "Åsa Öberg", "", "Grace Hopper", 'Dr. "Q" O\'Brien', "Jürgen Müller"]
ISSUE_ID = 42
ROUND = 1000  # recipients per round when two variants alternate


def with_links(blocks: list[str], links: int) -> list[str]:
    """``blocks`` with ``links`` links (query string and fragment, as newsletters write them)
    added at the end of its paragraphs in turn."""
    paragraphs = [i for i, b in enumerate(blocks) if b.startswith("<p")]
    out = list(blocks)
    for n in range(links if paragraphs else 0):
        i = paragraphs[n % len(paragraphs)]
        link = (
            f' (<a href="https://research.example.org/notes/{n}?utm_source=fieldnotes&amp;'
            f'utm_medium=email#part-{n}">note {n}</a>)'
        )
        out[i] = out[i][: -len("</p>")] + link + "</p>"
    return out


def build_issue(html_kb: float, links: int, settings) -> tuple[IssueContent, PreparedIssue, float]:
    """The essay cut to whole blocks so the prepared HTML part is about ``html_kb`` KB."""
    block = r"<(p|h2|ul|ol|figure|blockquote)\b.*?</\1>"
    essay = ESSAY.read_text(encoding="utf-8")
    blocks = [m.group(0) for m in re.finditer(block, essay, flags=re.S)]
    probe = Recipient(subscriber_id=1, email="probe@example.com", name="Ada", token="t" * 22)
    for count in range(1, len(blocks) + 1):
        post = PostView(
            title="We changed our pricing three times. Here is what each change taught us",
            url=f"{BASE_URL}/essays/pricing-three-times",
            html="\n".join(with_links(blocks[:count], links)),
            summary="Our first price was a guess, the second a reaction, the third a decision.",
            published_at=datetime(2026, 3, 12, 8, 0, tzinfo=UTC),
            author="Maja Lindqvist",
            image_url="https://images.example.com/essays/pricing/hero.jpg",
        )
        content = IssueContent(
            issue_id=ISSUE_ID, kind="post", subject=post.title, preheader=post.summary,
            posts=(post,),
        )  # fmt: skip
        start = time.perf_counter()
        prepared = prepare_issue(content, settings)
        prepare_ms = (time.perf_counter() - start) * 1000
        if len(prepared.html_for(probe).encode()) >= html_kb * 1024:
            break
    return content, prepared, prepare_ms


def link_plan(signer: Signer) -> LinkPlan:
    """Click tracking as newsletter/tracking/plan.py sets it up (the issue is public, so its
    web view is the archive)."""
    keep = tuple(f"{BASE_URL}/{p}" for p in ("unsubscribe/", "preferences/", "l/", "o/"))
    return LinkPlan(
        signer=signer,
        issue_id=ISSUE_ID,
        base_url=BASE_URL,
        keep_prefixes=(*keep, f"{BASE_URL}/archive"),
    )


def check_tracked(on: bytes, off: bytes, plan: LinkPlan, r: Recipient) -> str | None:
    """What is wrong with ``r``'s tracked message ``on`` (and the untracked ``off``), or None:
    both must parse; in ``on`` every link of the plan (the honeypot too) must be in the HTML
    part as a ``/l/`` link whose tokens verify (this issue, that link, this reader), the text
    part must have ``/l/`` links and no honeypot; ``off`` has no ``/l/`` link."""
    tracked = re.compile(re.escape(BASE_URL) + r"/l/([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
    parts = {}
    for label, data in (("on", on), ("off", off)):
        msg = email.message_from_bytes(data, policy=policy.default)
        for subtype in ("html", "plain"):
            body = msg.get_body(preferencelist=(subtype,))
            if body is None:
                return f"tracking {label}: the message has no text/{subtype} part"
            parts[label, subtype] = body.get_content()
    if tracked.search(parts["off", "html"]) or tracked.search(parts["off", "plain"]):
        return "tracking off: the message has /l/ links"
    found: dict[str, set[int]] = {}
    for subtype in ("html", "plain"):
        found[subtype] = set()
        for link, reader in tracked.findall(parts["on", subtype]):
            parsed = plan.signer.parse_link(link)
            if parsed is None or parsed[0] != ISSUE_ID:
                return f"tracking on: link token {link!r} does not verify"
            if plan.signer.parse_reader(ISSUE_ID, reader) != r.subscriber_id:
                return f"tracking on: reader token {reader!r} does not name the recipient"
            found[subtype].add(parsed[1])
    if found["html"] != set(range(len(plan.urls))):
        return f"tracking on: HTML links {sorted(found['html'])}, plan has {len(plan.urls)}"
    if not found["plain"] or 0 in found["plain"]:
        return f"tracking on: text part links {sorted(found['plain'])}"
    if any(url in parts["on", "html"] for url in plan.urls[1:] if url != BASE_URL):
        return "tracking on: an original link is still in the HTML part"
    if HONEYPOT in parts["on", "html"] or HONEYPOT in parts["off", "html"]:
        return "the honeypot's own URL is in a message"
    return None


def time_messages(
    variants: dict[str, PreparedIssue], recipients: list[Recipient]
) -> dict[str, tuple[list[int], float]]:
    """Per variant: the time of each ``message_bytes`` (ns) and the wall time (s) of them all.
    With several variants they take rounds of ROUND recipients in turn (ABBA order)."""
    clock = time.perf_counter_ns
    results: dict[str, tuple[list[int], float]] = {label: ([], 0.0) for label in variants}
    labels = list(variants)
    size = ROUND if len(labels) > 1 else len(recipients)
    for n, start in enumerate(range(0, len(recipients), size)):
        chunk = recipients[start : start + size]
        for label in labels if n % 2 == 0 else labels[::-1]:
            message_bytes = variants[label].message_bytes
            timings, wall = results[label]
            t_start = clock()
            for r in chunk:
                t0 = clock()
                message_bytes(r)
                timings.append(clock() - t0)
            results[label] = (timings, wall + (clock() - t_start) / 1e9)
    return results


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


def timed_prepare(
    content: IssueContent, settings, plan: LinkPlan | None
) -> tuple[PreparedIssue, float]:
    start = time.perf_counter()
    prepared = prepare_issue(content, settings, tracking=plan)
    return prepared, (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--html-kb", type=float, default=20.0)
    parser.add_argument("--links", type=int, default=20, help="links in the post's paragraphs")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (Linux)")
    parser.add_argument("--baseline", action="store_true", help="also time the stdlib path")
    parser.add_argument("--tracking", action="store_true", help="also time click tracking on")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

    settings = settings_from_dict(SETTINGS)
    content, _, _ = build_issue(args.html_kb, args.links, settings)
    # Time a fresh preparation of the final issue (templates compiled, caches warm).
    prepared, prepare_ms = timed_prepare(content, settings, None)
    variants = {"off": prepared}
    prepare_times = {"off": prepare_ms}
    plan = None
    if args.tracking:
        plan = link_plan(Signer(os.urandom(32)))
        variants["on"], prepare_times["on"] = timed_prepare(content, settings, plan)

    recipients = [
        Recipient(
            subscriber_id=i,
            email=f"reader{i}@example.com" if i % 10 else f"reader{i}@bücher.example",
            name=NAMES[i % len(NAMES)],
            token=f"{i:022x}",
        )
        for i in range(args.recipients)
    ]
    samples = {label: p.message_bytes(recipients[1]) for label, p in variants.items()}
    if plan is not None:
        problem = check_tracked(samples["on"], samples["off"], plan, recipients[1])
        if problem:
            print(f"FAILED: {problem}", file=sys.stderr)
            sys.exit(1)
    for prepared_issue in variants.values():
        for r in recipients[:500]:  # warm up
            prepared_issue.message_bytes(r)
    results = time_messages(variants, recipients)

    html_size = len(prepared.html_for(recipients[0]).encode())
    print(f"python {platform.python_version()}, {platform.machine()}, nproc {os.cpu_count()}")
    print(
        f"issue: {html_size / 1024:.1f} KB HTML part, {len(samples['off']) / 1024:.1f} KB "
        f"message, {args.links} links in the post"
    )
    medians = {}
    for label, (timings, wall) in results.items():
        timings.sort()
        medians[label] = statistics.median(timings) / 1000
        p99 = timings[int(len(timings) * 0.99)] / 1000
        name = f"tracking {label}: " if plan is not None else ""
        if plan is not None and label == "on":
            print(
                f"tracking on: {len(plan.urls) - 1} links rewritten and the honeypot, "
                f"{len(samples['on']) / 1024:.1f} KB message"
            )
        print(f"{name}prepare_issue (once per issue): {prepare_times[label]:.1f} ms")
        print(
            f"{name}message_bytes x {len(timings):,} on one core: median {medians[label]:.1f} µs, "
            f"p99 {p99:.1f} µs, {len(timings) / wall:,.0f} messages/s"
        )
    if plan is not None:
        on_wall, off_wall = results["on"][1], results["off"][1]
        print(
            f"tracking on ÷ off, per recipient: median {medians['on'] / medians['off']:.2f}×, "
            f"wall time {on_wall / off_wall:.2f}× (the bar: 1.5×)"
        )
    if args.baseline:
        naive = median_us(lambda r: stdlib_message(prepared, r), recipients[:1000])
        print(f"baseline, EmailMessage.set_content + as_bytes x 1,000: median {naive:.0f} µs")


if __name__ == "__main__":
    main()
