"""Loading a post written as Markdown with YAML front matter, a file like this one:

    ---
    title: Why we price per seat        # required
    date: 2024-05-01 09:00 +02:00      # optional: ISO 8601 (a date alone is midnight UTC)
    updated: 2024-05-03                # optional, same forms
    slug: pricing-per-seat             # optional: the file name without extension
    summary: One line for the preheader.
    image: /images/pricing.png         # optional; relative to url / base_url
    url: /posts/pricing-per-seat/      # optional; relative to base_url
    author: Ada
    ---
    The body, in CommonMark with tables.

Raw HTML is allowed in the body; it is sanitised like feed HTML.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import frontmatter
import yaml
from markdown_it import MarkdownIt

from ..errors import ContentError
from .models import PostData
from .posts import build_post
from .sanitize import absolute_url
from .text import clean_line

_MARKDOWN = MarkdownIt("commonmark").enable("table")


def load_markdown_post(path: str | Path, *, base_url: str = "") -> PostData:
    """Read a Markdown post; its guid is "md:" + slug.

    Relative links and images in it are resolved against its ``url`` (itself relative to
    ``base_url``), else against ``base_url``; without either they are dropped. Raises
    ContentError, one line starting with the file name, when the file cannot be read or is
    not UTF-8, has no or invalid front matter, has no title, or has a bad date.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ContentError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ContentError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    if not frontmatter.checks(text):
        raise ContentError(f"{path}: no front matter (start the file with a '---' block)")
    try:
        post = frontmatter.loads(text)
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an impossible YAML date
        raise ContentError(f"{path}: invalid front matter: {_yaml_problem(exc)}") from exc

    meta = post.metadata
    title = clean_line(_text(meta.get("title")))
    if not title:
        raise ContentError(f"{path}: the front matter has no 'title'")
    page = absolute_url(_text(meta.get("url")), base_url)
    slug = clean_line(_text(meta.get("slug"))) or path.stem
    return build_post(
        guid=f"md:{slug}",
        url=page,
        title=title,
        html=_MARKDOWN.render(post.content),
        base_url=page or base_url,
        summary=_text(meta.get("summary")),
        published_at=_utc(meta.get("date"), path, "date"),
        updated_at=_utc(meta.get("updated"), path, "updated"),
        author=_text(meta.get("author")),
        image_url=_text(meta.get("image")),
    )


def _text(value: Any) -> str:
    """A front matter value as a string ("" for a missing one)."""
    return "" if value is None else str(value)


def _utc(value: Any, path: Path, key: str) -> datetime | None:
    """A front matter date (YAML date/datetime or ISO 8601 text) as aware UTC; naive is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ContentError(
                f"{path}: bad {key} {clean_line(str(value))!r} "
                "(use ISO 8601, e.g. 2024-05-01 or 2024-05-01T09:00:00+02:00)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _yaml_problem(exc: Exception) -> str:
    """One line saying what is wrong in the YAML and where."""
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 2} of the file)" if mark is not None else ""
    return clean_line(f"{problem}{where}")
