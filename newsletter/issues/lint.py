"""`issue lint`: what a careful sender checks before pressing send.

``lint_message`` looks at the rendered HTML, the text part and the subject of one
personalised message; ``spam_score`` asks SpamAssassin (when installed) for its verdict.
Pure functions over strings and bytes, apart from the spamassassin subprocess.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

from lxml import html as lxml_html

from ..compose import PreparedIssue, Recipient

GMAIL_CLIP_BYTES = 102 * 1024
MAX_SUBJECT = 78
SPAM_BAR = 2.0
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning", "info"]
    message: str


def lint_message(
    *, subject: str, html: str, text: str, unsubscribe_url: str, postal_address: str
) -> list[Finding]:
    """Findings for one rendered message (errors block a send, warnings deserve a look)."""
    found: list[Finding] = []
    size = len(html.encode())
    if size > GMAIL_CLIP_BYTES:
        found.append(Finding("error", f"HTML is {size // 1024} KB: Gmail clips over 102 KB"))
    doc = lxml_html.document_fromstring(html)
    for invisible in doc.xpath("//style | //script | //head"):
        invisible.drop_tree()
    for img in doc.iter("img"):
        src = img.get("src", "")
        if not (img.get("alt") or "").strip():
            found.append(Finding("error", f"image without alt text: {src or '(no src)'}"))
        if not src:
            found.append(Finding("error", "image without a source (a data: image was removed?)"))
    for element, attribute in (("a", "href"), ("img", "src")):
        for node in doc.iter(element):
            url = (node.get(attribute) or "").strip()
            if not url or url.startswith(("https://", "mailto:", "cid:", "#")):
                continue
            kind = "insecure http" if url.startswith("http://") else "relative or odd"
            found.append(Finding("warning", f"{kind} link in <{element} {attribute}>: {url}"))
    if unsubscribe_url not in html or unsubscribe_url not in text:
        found.append(Finding("error", "the unsubscribe link is missing from the HTML or text"))
    if not postal_address.strip():
        found.append(Finding("error", "no postal address: set [site] postal_address"))
    elif postal_address not in text or postal_address not in doc.text_content():
        found.append(Finding("error", "the postal address is missing from the HTML or text"))
    if len(subject) > MAX_SUBJECT:
        found.append(Finding("warning", f"subject is {len(subject)} characters (keep ≤ 78)"))
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        found.append(Finding("warning", "subject is mostly capitals (a spam signal)"))
    html_words = len(_WORD.findall(doc.text_content()))
    text_words = len(_WORD.findall(text))
    if text_words == 0 or text_words < html_words / 2:
        found.append(
            Finding("error", f"text part is a stub: {text_words} words vs {html_words} in HTML")
        )
    return found


def lint_prepared(
    prepared: PreparedIssue, recipient: Recipient, *, subject: str, postal_address: str
) -> list[Finding]:
    """``lint_message`` on the message ``prepared`` makes for ``recipient``."""
    return lint_message(
        subject=subject,
        html=prepared.html_for(recipient),
        text=prepared.text_for(recipient),
        unsubscribe_url=prepared.unsubscribe_url(recipient),
        postal_address=postal_address,
    )


def spam_score(message: bytes, *, timeout: float = 120.0) -> tuple[float, list[str]] | None:
    """SpamAssassin's score and rule names for a message, or None if it is not installed."""
    binary = shutil.which("spamassassin")
    if binary is None:
        return None
    proc = subprocess.run(
        [binary, "-L", "-t", "-x", "--cf=use_bayes 0"],
        input=message,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    status = re.search(
        rb"^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ tests=(.*?)(?:\sautolearn=|$)",
        proc.stdout.replace(b"\n\t", b" "),
        re.MULTILINE | re.DOTALL,
    )
    if status is None:
        return None
    rules = [r for r in re.split(rb"[,\s]+", status.group(2)) if r and r != b"none"]
    return float(status.group(1)), [r.decode() for r in rules]
