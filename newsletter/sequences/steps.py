"""A sequence step's file and timing: the Markdown email (front matter ``subject``,
``preheader``, ``template``), checked by rendering it once with the same templates as the
issues, and its send window in the reader's own hours."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from ..compose import IssueContent, PostView, prepare_issue
from ..config import Settings
from ..content.markdown_posts import MarkdownEmail, load_markdown_email
from ..durations import EXAMPLES, duration
from ..errors import ContentError, InvalidInputError
from ..issues.schedule import zone

MAX_DELAY = timedelta(days=3650)
_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


def load_step(path: Path, settings: Settings) -> MarkdownEmail:
    """Read a step's file and render it once (so a missing template or a template error is
    found now, not when the daemon sends it). Raises ContentError (one line, with the file
    name) and ConfigError."""
    email = load_markdown_email(path, base_url=settings.site.base_url)
    sample = IssueContent(
        issue_id=0,
        kind="post",
        subject=email.subject,
        preheader=email.preheader,
        posts=(PostView(title=email.subject, url="", html=email.html, summary="",
                        published_at=None),),
        template=email.template,
    )  # fmt: skip
    try:
        prepare_issue(sample, settings)
    except ContentError as exc:  # the template's problem, in the composer's words
        raise ContentError(f"{path}: {exc}") from None
    return email


def delay(text: str) -> timedelta:
    """A step's ``--after``: 0s, 30m, 3d, 1w... Raises InvalidInputError."""
    span = duration(text)
    if span is None or span > MAX_DELAY:
        raise InvalidInputError(f"--after {text!r}: use a duration {EXAMPLES}")
    return span


def window(text: str | None) -> str | None:
    """A send window "HH:MM-HH:MM" (the reader's time), or None. Raises InvalidInputError."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not _WINDOW.fullmatch(text) or text[:5] == text[6:]:
        raise InvalidInputError(
            f"--window {text!r}: use the reader's hours as HH:MM-HH:MM, e.g. 09:00-17:00"
        )
    return text


def in_window(window_text: str, zone_name: str, at: datetime) -> datetime:
    """The first moment at or after ``at`` (UTC) inside the daily window in that zone (a
    window may span midnight: 22:00-06:00)."""
    tz = zone(zone_name)
    opens = time(int(window_text[0:2]), int(window_text[3:5]))
    closes = time(int(window_text[6:8]), int(window_text[9:11]))
    local = at.astimezone(tz)
    now = local.time()
    inside = opens <= now < closes if opens < closes else now >= opens or now < closes
    if inside:
        return at
    day = local.date() if now < opens else local.date() + timedelta(days=1)
    return datetime.combine(day, opens, tzinfo=tz).astimezone(UTC)
