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

Raw HTML is allowed in the body; it is sanitised like feed HTML. The front matter is YAML read
by a loader that refuses aliases (a few hundred bytes of them expand into gigabytes: "billion
laughs"), at most ``MAX_FRONT_MATTER_BYTES`` long and ``MAX_FRONT_MATTER_DEPTH`` levels deep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import frontmatter
import yaml
from markdown_it import MarkdownIt
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from ..errors import ContentError
from .models import PostData
from .posts import build_post
from .sanitize import absolute_url
from .text import clean_line

_MARKDOWN = MarkdownIt("commonmark").enable("table")
_YAML = frontmatter.YAMLHandler()

MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_FRONT_MATTER_DEPTH = 20


class _Refused(yaml.YAMLError):
    """Front matter we do not read; ``problem_mark`` says where, like PyYAML's errors."""

    def __init__(self, problem: str, mark: yaml.Mark | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


try:
    from yaml.cyaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _SafeLoader: type = yaml.SafeLoader
else:

    class _SafeLoader(Composer, CParser, SafeConstructor, Resolver):  # type: ignore[no-redef]
        """CSafeLoader (libyaml parses: fast, and the messages python-frontmatter gave), with
        PyYAML's own composer in place of libyaml's, so that ours can watch it."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)


class _FrontMatterLoader(_SafeLoader):
    """A safe loader without aliases and with a nesting limit. Composing nodes is the one step
    that expands an alias and recurses per level, so both are refused there, before anything
    grows."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("aliases are not allowed in front matter", event.start_mark)
        if not isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        if self._depth >= MAX_FRONT_MATTER_DEPTH:
            raise _Refused(
                f"front matter nested more than {MAX_FRONT_MATTER_DEPTH} levels deep",
                event.start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


def load_markdown_post(path: str | Path, *, base_url: str = "") -> PostData:
    """Read a Markdown post; its guid is "md:" + slug.

    Relative links and images in it are resolved against its ``url`` (itself relative to
    ``base_url``), else against ``base_url``; without either they are dropped. Raises
    ContentError, one line starting with the file name, when the file cannot be read or is
    not UTF-8, has no, unclosed, invalid, too large or too deep front matter or aliases in
    it, has no title, or has a bad date.
    """
    path = Path(path)
    meta, content = _front_matter(_read(path).strip(), path)
    title = clean_line(_text(meta.get("title")))
    if not title:
        raise ContentError(f"{path}: the front matter has no 'title'")
    page = absolute_url(_text(meta.get("url")), base_url)
    slug = clean_line(_text(meta.get("slug"))) or path.stem
    return build_post(
        guid=f"md:{slug}",
        url=page,
        title=title,
        html=_MARKDOWN.render(content),
        base_url=page or base_url,
        summary=_text(meta.get("summary")),
        published_at=_utc(meta.get("date"), path, "date"),
        updated_at=_utc(meta.get("updated"), path, "updated"),
        author=_text(meta.get("author")),
        image_url=_text(meta.get("image")),
    )


def render_markdown(text: str) -> str:
    """CommonMark (with tables) as HTML, not yet sanitised (``build_post`` does that)."""
    return _MARKDOWN.render(text)


@dataclass(frozen=True, slots=True)
class MarkdownEmail:
    """An email written as Markdown (a sequence step): its front matter's ``subject``,
    ``preheader`` and ``template``, and the body as sanitised HTML."""

    subject: str
    preheader: str
    template: str
    html: str


_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
EMAIL_KEYS = frozenset({"subject", "preheader", "template"})


def load_markdown_email(path: str | Path, *, base_url: str = "") -> MarkdownEmail:
    """Read an email written as Markdown with front matter (``subject`` required; optional
    ``preheader`` and ``template``, the name of email/NAME.html and .txt in the templates
    folder). Relative links resolve against ``base_url``. Raises ContentError, one line
    starting with the file name, for everything ``load_markdown_post`` refuses and for a
    missing subject, an unknown key or a template name that is not a plain name."""
    path = Path(path)
    meta, content = _front_matter(_read(path).strip(), path)
    unknown = sorted(str(k) for k in meta if k not in EMAIL_KEYS)
    if unknown:
        keys = ", ".join(sorted(EMAIL_KEYS))
        raise ContentError(f"{path}: unknown front matter key {unknown[0]!r} (use {keys})")
    subject = clean_line(_text(meta.get("subject")))
    if not subject:
        raise ContentError(f"{path}: the front matter has no 'subject'")
    template = clean_line(_text(meta.get("template")))
    if template and not _TEMPLATE_NAME.fullmatch(template):
        raise ContentError(
            f"{path}: template {template!r} is not a template name (letters, digits, - and _)"
        )
    post = build_post(
        guid="step", url="", title=subject, html=_MARKDOWN.render(content), base_url=base_url
    )
    preheader = clean_line(_text(meta.get("preheader")))
    return MarkdownEmail(subject=subject, preheader=preheader, template=template, html=post.html)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ContentError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ContentError(f"{path}: cannot read file: {exc.strerror or exc}") from exc


def _front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    """The front matter (a mapping; anything else counts as empty) and the body after it."""
    if not _YAML.detect(text):
        raise ContentError(f"{path}: no front matter (start the file with a '---' block)")
    try:
        raw, content = _YAML.split(text)
    except ValueError:
        raise ContentError(f"{path}: the front matter is not closed (end it with '---')") from None
    if len(raw.encode()) > MAX_FRONT_MATTER_BYTES:
        limit = MAX_FRONT_MATTER_BYTES // 1024
        raise ContentError(f"{path}: the front matter is larger than {limit} KB")
    try:
        meta = yaml.load(raw, Loader=_FrontMatterLoader)
    except _Refused as exc:
        raise ContentError(f"{path}: {_yaml_problem(exc)}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an impossible YAML date
        raise ContentError(f"{path}: invalid front matter: {_yaml_problem(exc)}") from exc
    return (meta if isinstance(meta, dict) else {}), content.strip()


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
    # The text parsed starts with the line break that ends the opening "---" line.
    where = f" (line {mark.line + 1} of the file)" if mark is not None else ""
    return clean_line(f"{problem}{where}")
