"""An issue rendered once, personalised and assembled per recipient in microseconds.

``prepare_issue`` does all the per-issue work: it renders the Jinja2 templates once with
unguessable alphanumeric markers where the personal fields go (markers survive Jinja
escaping, premailer and lxml untouched), inlines the CSS once, cuts the HTML and text at the
markers, quoted-printable-encodes the pieces, and builds the header block. Per recipient,
``PreparedIssue.message_bytes`` only encodes the few personal values and joins bytes.

Why the pieces can be encoded apart: every static piece that is followed by a personal
value ends with a quoted-printable soft line break (or a real one), and so does every
encoded value, so each piece starts at column 0 and no line grows past 76 characters. Soft
breaks decode to nothing, so the decoded part is exactly the text with the values put in.
Tests check the result against a message built by ``email.message.EmailMessage``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote

import markupsafe
from lxml import etree, html

from ..config import Settings
from ..content import html_to_text
from ..content.text import clean_line
from ..errors import ConfigError, ContentError, InvalidEmailError, InvalidInputError
from ..tracking.links import (
    HONEYPOT,
    LinkPlan,
    add_pixel,
    rewrite_html,
    rewrite_text,
    strip_honeypot,
)
from . import templates as tpl
from .inline import Inliner, inline_css
from .mime import (
    CRLF,
    SOFT_BREAK,
    address_header,
    clean_name,
    encode_body,
    encode_value,
    items_header,
    list_id_header,
    split_address,
    text_header,
)
from .models import IssueContent, PostView, Recipient

PERSONAL_FIELDS = ("name", "first_name", "email", "unsubscribe_url", "preferences_url")
"""Template variables that differ per recipient. Use them as plain ``{{ name }}``: a filter
applied to one (``{{ name|upper }}``) would not see the real value and is refused."""

READER = "reader"
"""The marker field a tracked link carries: the recipient's reader token (tracking.tokens),
filled in per recipient like a personal field, but not one the templates can use."""
_MARKED = (*PERSONAL_FIELDS, READER)

DEFAULT_NAME_FALLBACK = "there"  # "Hi there," when a subscriber has no name

CONTENT_WIDTH = 502
"""Pixel width of the text column of the default layout (600 - 2 x 48 padding - 2 x 1
border); templates get it as ``content_width``. Post images wider than this get their
width/height attributes scaled down to it: Outlook for Windows ignores CSS max-width."""


@dataclass(frozen=True, slots=True)
class _Split:
    """A rendered document cut at the markers: static[0] field[0] static[1] ... static[n]."""

    static: tuple[str, ...]
    fields: tuple[str, ...]

    def render(self, values: Mapping[str, str]) -> str:
        out = [self.static[0]]
        for field, static in zip(self.fields, self.static[1:], strict=True):
            out += (values[field], static)
        return "".join(out)


class _Markers:
    """Per-issue random markers standing in for the personal fields while rendering."""

    def __init__(self) -> None:
        nonce = secrets.token_hex(8)
        self.nonce = nonce
        self.values = {f: f"nl{nonce}f{i}z" for i, f in enumerate(_MARKED)}
        self._pattern = re.compile(f"nl{nonce}f(\\d+)z")

    def split(self, rendered: str, template: str) -> _Split:
        """Cut ``rendered`` at the markers. Raises ContentError if a marker was mangled."""
        pieces = self._pattern.split(rendered)
        static = tuple(pieces[0::2])
        if any(self.nonce in s.lower() for s in static):
            raise ContentError(
                f"template {template}: a personal field ({', '.join(PERSONAL_FIELDS)}) is "
                "passed through a filter or expression; use it as {{ name }} only"
            )
        fields = tuple(_MARKED[int(i)] for i in pieces[1::2])
        return _Split(static, fields)


class _MessageLayout:
    """Bytes of a message with slots: ``parts[i]`` is None where ``slots`` puts a value."""

    def __init__(self) -> None:
        self.parts: list[bytes | None] = []
        self.slots: list[tuple[int, str]] = []

    def add(self, data: bytes) -> None:
        if not data:
            return
        if self.parts and self.parts[-1] is not None:
            self.parts[-1] += data
        else:
            self.parts.append(data)

    def slot(self, key: str) -> None:
        self.slots.append((len(self.parts), key))
        self.parts.append(None)

    def add_body(self, split: _Split, part: str) -> None:
        """A quoted-printable body with a slot ``"{part}:{field}"`` per personal field."""
        for i, static in enumerate(split.static):
            encoded = encode_body(static)
            if i == len(split.fields):
                self.add(encoded)
                break
            if encoded and not encoded.endswith(CRLF):
                encoded += SOFT_BREAK
            self.add(encoded)
            self.slot(f"{part}:{split.fields[i]}")


def _site_url(settings: Settings) -> str:
    base = settings.site.base_url.rstrip("/")
    if not base.isascii() or any(c.isspace() for c in base):
        raise ConfigError(
            f"site.base_url: {base!r} must be an ASCII URL without spaces "
            "(write an international domain in its xn-- form)"
        )
    return base


def _sender_address(value: str, key: str) -> tuple[str, str]:
    """(local, A-label domain) of a configured address; ConfigError naming ``key`` if bad."""
    try:
        local, domain = split_address(value)
    except InvalidEmailError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if not local.isascii():
        raise ConfigError(f"{key}: {value!r} must have an ASCII local part")
    return local, domain


def _fit_image(img: html.HtmlElement) -> None:
    """Scale a width over CONTENT_WIDTH down (Outlook ignores max-width). The alt stays as
    the author wrote it, missing or not: a made-up alt (the post title on every image) tells
    a screen reader nothing true; `issue lint` reports an image without one."""
    width, height = img.get("width", ""), img.get("height", "")
    if width.isdigit() and int(width) > CONTENT_WIDTH:
        img.set("width", str(CONTENT_WIDTH))
        if height.isdigit():
            img.set("height", str(round(int(height) * CONTENT_WIDTH / int(width))))


def _post_context(
    post: PostView, index: int, fallback_alt: str, web_url: str, *, digest: bool
) -> dict[str, Any]:
    """What the templates see of one post: its HTML with every <img> given a width that
    fits, its plain text (derived from the HTML if not given), and its link: a post with none
    (a Markdown file without ``url``, a feed entry without a link) links to the issue's web
    page, never to nothing. The lead image (``hero_url``), which the template places, is
    described by the post's title."""
    body_html = ""
    in_body: set[str] = set()
    if post.html.strip():
        root = html.fragment_fromstring(post.html, create_parent="div")
        for img in root.iter("img"):
            _fit_image(img)
            in_body.add(img.get("src", ""))
        body_html = etree.tostring(root, encoding="unicode", method="html")[5:-6]  # <div>
    text = post.text or html_to_text(body_html)
    return {
        "title": post.title,
        "url": post.url or (f"{web_url}#post-{index}" if digest else web_url),
        "html": markupsafe.Markup(body_html),
        "text": text.strip(),
        "summary": post.summary,
        "published_at": post.published_at,
        "author": post.author,
        "image_url": post.image_url,
        # The lead image above a post, unless the body already shows it (a Markdown post or
        # a feed whose first image is its lead image would show it twice).
        "hero_url": post.image_url if post.image_url not in in_body else "",
        "image_alt": post.title or fallback_alt,
        "anchor": f"post-{index}",
    }


def _render_documents(
    content: IssueContent,
    settings: Settings,
    templates_dir: str | Path | None,
    *,
    web: bool,
    personal: Mapping[str, str],
    honeypot: bool = False,
) -> tuple[str, str, str, str]:
    """Render the issue's HTML and text templates: (html, text, html name, text name).

    Raises ContentError for an issue the templates cannot show (no post; several posts in a
    one-post issue) and for any template problem.
    """
    if not content.posts:
        raise ContentError(f"issue {content.issue_id} has no posts to show")
    if content.kind == "post" and len(content.posts) != 1:
        raise ContentError(f"issue {content.issue_id} is a one-post issue with several posts")
    base = _site_url(settings)
    site = settings.site
    web_url = f"{base}{content.web_path or '/archive'}"
    digest = content.kind == "digest"
    posts = [
        _post_context(p, i, site.name, web_url, digest=digest)
        for i, p in enumerate(content.posts, start=1)
    ]
    context: dict[str, Any] = {
        "site": {
            "name": site.name,
            "base_url": base,
            "postal_address": site.postal_address,
            "postal_lines": [ln.strip() for ln in site.postal_address.splitlines() if ln.strip()],
        },
        # one-line subject and preheader, as in the headers
        "issue": replace(
            content, subject=clean_line(content.subject), preheader=clean_line(content.preheader)
        ),
        "posts": posts,
        "post": posts[0],
        "web": web,
        "web_url": web_url,
        "content_width": CONTENT_WIDTH,
        # the link no person sees (tracking.links): whoever follows it is a machine
        "honeypot_url": HONEYPOT if honeypot else "",
        **personal,
    }
    env = tpl.make_environment(tpl.templates_dir_for(settings, templates_dir))
    stem = content.template or content.kind
    names = (f"email/{stem}.html", f"email/{stem}.txt")
    return (
        tpl.render(env, names[0], context),
        tpl.render(env, names[1], context),
        *names,
    )


def render_web_html(
    content: IssueContent, settings: Settings, *, templates_dir: str | Path | None = None
) -> str:
    """The archive / "view in browser" page of an issue: the email's templates rendered with
    ``web`` true and no personal fields (empty, the name as the fallback), CSS left in its
    <style> block for the browser. Raises ContentError for a template problem."""
    personal = dict.fromkeys(PERSONAL_FIELDS, "") | {
        "name": DEFAULT_NAME_FALLBACK,
        "first_name": DEFAULT_NAME_FALLBACK,
    }
    html_doc, *_ = _render_documents(content, settings, templates_dir, web=True, personal=personal)
    return html_doc


class _Variant:
    """One way of writing the issue's message: with tracked links, or with the links as
    the author wrote them (for readers who chose not to be tracked)."""

    __slots__ = (
        "html",
        "html_fields",
        "html_keys",
        "parts",
        "reader",
        "reader_keys",
        "slots",
        "text",
        "text_keys",
    )

    def __init__(self, html: _Split, text: _Split, layout: _MessageLayout) -> None:
        self.html = html
        self.text = text
        self.parts = layout.parts
        self.slots = tuple(layout.slots)
        self.html_fields = frozenset(html.fields)
        # (field, slot key) pairs, so the hot path does not build the keys per recipient
        personal_text = sorted(set(text.fields) - {READER})
        self.text_keys = tuple((f, f"text:{f}") for f in personal_text)
        self.html_keys = tuple((f, f"html:{f}") for f in sorted(self.html_fields - {READER}))
        # The reader token is base64url: the same bytes in both parts, nothing to escape or
        # encode (it is far shorter than a quoted-printable line).
        self.reader_keys = tuple(
            f"{part}:{READER}"
            for part, fields in (("text", text.fields), ("html", html.fields))
            if READER in fields
        )
        self.reader = bool(self.reader_keys)


class PreparedIssue:
    """One issue with all per-issue work done; per recipient it only fills in values.

    Instances hold plain bytes and strings (picklable, safe to share between threads).
    Per-recipient methods raise InvalidEmailError for an address that cannot go into a
    header, InvalidInputError for an empty token.

    ``links`` are the issue's tracked links by number (index 0: the honeypot), () when
    nothing is tracked; the caller stores them so the redirector can find them.
    """

    def __init__(
        self,
        *,
        content: IssueContent,
        plain: _Variant,
        tracked: _Variant | None,
        plan: LinkPlan | None,
        base_url: str,
        message_id_domain: str,
        unsubscribe_mailto: str,
        name_fallback: str,
    ) -> None:
        self.content = content
        self.issue_id = content.issue_id
        self._plain = plain
        self._tracked = tracked
        self._signer = plan.signer if plan is not None else None
        self.links: tuple[str, ...] = tuple(plan.urls) if plan is not None else ()
        self._unsubscribe_prefix = f"{base_url}/unsubscribe/"
        # the issue the reader unsubscribed from, counted in its report
        self._unsubscribe_suffix = f"?issue={content.issue_id}"
        self._preferences_prefix = f"{base_url}/preferences/"
        self._mid_domain = message_id_domain
        self._mailto = unsubscribe_mailto
        self._name_fallback = name_fallback
        self._date_cache: tuple[int, bytes] = (-1, b"")

    # -- per recipient -------------------------------------------------------------------

    @staticmethod
    def _token(r: Recipient) -> str:
        if not r.token:
            raise InvalidInputError(f"subscriber {r.subscriber_id} has no unsubscribe token")
        return quote(r.token, safe="")

    def _variant(self, r: Recipient) -> _Variant:
        return self._tracked if self._tracked is not None and r.tracked else self._plain

    def _field_values(
        self, r: Recipient, name: str, token: str, variant: _Variant
    ) -> dict[str, str]:
        values = {
            "name": name or self._name_fallback,
            # the greeting's "Hi Ada,": the first word of the name, or the fallback
            "first_name": name.split(" ", 1)[0] if name else self._name_fallback,
            "email": r.email,
            "unsubscribe_url": self._unsubscribe_prefix + token + self._unsubscribe_suffix,
            "preferences_url": self._preferences_prefix + token,
        }
        if variant.reader and self._signer is not None:
            values[READER] = self._signer.reader(self.issue_id, r.subscriber_id)
        return values

    def _date_header(self, date: datetime | None) -> bytes:
        if date is not None:
            if date.tzinfo is None:
                date = date.replace(tzinfo=UTC)
            return b"Date: " + formatdate(date.timestamp(), usegmt=True).encode() + CRLF
        second = int(time.time())
        cached_second, header = self._date_cache
        if second != cached_second:
            header = b"Date: " + formatdate(second, usegmt=True).encode() + CRLF
            self._date_cache = (second, header)
        return header

    def _message_id(self, r: Recipient, token: str) -> str:
        key = f"{self.issue_id}:{r.subscriber_id}:{token}"
        digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
        return f"<{self.issue_id}.{r.subscriber_id}.{digest}@{self._mid_domain}>"

    def message_bytes(self, r: Recipient, *, date: datetime | None = None) -> bytes:
        """The complete RFC 5322 message for ``r`` with CRLF line ends, ready for SMTP DATA.

        ``date`` is the send time for the Date header (naive means UTC); default now.
        """
        local, domain = split_address(r.email)
        token = self._token(r)
        name = clean_name(r.name)
        variant = self._variant(r)
        fields = self._field_values(r, name, token, variant)
        if self._mailto:  # RFC 2369: folded between the <URI>s, never inside one
            uris = (f"<{fields['unsubscribe_url']}>,", f"<{self._mailto}{token}>")
        else:
            uris = (f"<{fields['unsubscribe_url']}>",)
        values = {
            "to": address_header("To", name, local, domain),
            "date": self._date_header(date),
            "message_id": items_header("Message-ID", (self._message_id(r, token),)),
            "list_unsubscribe": items_header("List-Unsubscribe", uris),
        }
        for field, key in variant.text_keys:
            values[key] = encode_value(fields[field])
        for field, key in variant.html_keys:
            values[key] = encode_value(markupsafe.escape(fields[field]))
        if variant.reader_keys:
            reader = fields[READER].encode("ascii") + SOFT_BREAK
            for key in variant.reader_keys:
                values[key] = reader
        parts = variant.parts.copy()
        for index, key in variant.slots:
            parts[index] = values[key]
        return b"".join(parts)  # type: ignore[arg-type]  # every None slot is filled

    def html_for(self, r: Recipient) -> str:
        """The personalised HTML part for ``r`` (a preview; what the message carries)."""
        variant = self._variant(r)
        fields = self._field_values(r, clean_name(r.name), self._token(r), variant)
        return variant.html.render({f: markupsafe.escape(fields[f]) for f in variant.html_fields})

    def text_for(self, r: Recipient) -> str:
        """The personalised plain-text part for ``r``."""
        variant = self._variant(r)
        return variant.text.render(
            self._field_values(r, clean_name(r.name), self._token(r), variant)
        )

    def unsubscribe_url(self, r: Recipient) -> str:
        """The https unsubscribe (and RFC 8058 one-click) URL in ``r``'s message: it names
        the issue, so the report counts who left because of which issue."""
        return self._unsubscribe_prefix + self._token(r) + self._unsubscribe_suffix

    def message_id(self, r: Recipient) -> str:
        """The Message-ID (with angle brackets) of ``r``'s message: the same on every call and
        in every process, so a resend after a crash carries the same one. It is derived from
        the issue id, the subscriber id and the token, under the sender's domain."""
        return self._message_id(r, self._token(r))

    @property
    def from_domain(self) -> str:
        """The domain of the From address (relays may be chosen by it)."""
        return self._mid_domain

    def envelope_recipient(self, r: Recipient) -> str:
        """The address for RCPT TO: the domain as an IDNA A-label. If the local part is not
        ASCII (see ``needs_smtputf8``) it can only be sent to a server offering SMTPUTF8;
        otherwise the delivery must be flagged, not sent. Raises InvalidEmailError."""
        local, domain = split_address(r.email)
        return f"{local}@{domain}"

    @staticmethod
    def needs_smtputf8(r: Recipient) -> bool:
        """True when ``r``'s local part is not ASCII, so the message needs SMTPUTF8."""
        return not r.email.rpartition("@")[0].isascii()


def _list_id(settings: Settings, sender_domain: str) -> str:
    """``<label.namespace>`` from ``sender.list_id``, or ``<slug-of-site-name.domain>``."""
    configured = settings.sender.list_id.strip().strip("<>").strip()
    if configured:
        if not configured.isascii() or re.search(r"[\s<>]", configured):
            raise ConfigError(f"sender.list_id: {configured!r} must be ASCII, without spaces")
        list_id = configured
    else:
        slug = re.sub(r"[^a-z0-9]+", "-", settings.site.name.lower()).strip("-") or "newsletter"
        list_id = f"{slug}.{sender_domain}"
    if len(list_id) > 253:
        raise ConfigError(f"sender.list_id: {list_id!r} is longer than 253 characters")
    return list_id


def _unsubscribe_mailto(settings: Settings) -> str:
    """The mailto URI prefix the token is appended to, or "" when not configured."""
    value = settings.sending.unsubscribe_mailto.strip()
    if not value:
        return ""
    address, _, query = value.removeprefix("mailto:").partition("?")
    local, domain = _sender_address(address, "sending.unsubscribe_mailto")
    if query:  # the user chose the subject/body; the token is not added
        return f"mailto:{local}@{domain}?{query}"
    return f"mailto:{local}@{domain}?subject=unsubscribe-"


def _add_headers(layout: _MessageLayout, content: IssueContent, settings: Settings) -> str:
    """Add the header block (per-issue headers encoded and folded once, slots for the
    per-recipient ones) to ``layout``; return the sender's domain for Message-IDs."""
    sender = settings.sender
    local, domain = _sender_address(sender.from_address, "sender.from_address")
    subject = clean_line(content.subject)
    if not subject:
        raise ContentError(f"issue {content.issue_id} has an empty subject")
    layout.add(address_header("From", clean_line(sender.from_name), local, domain))
    layout.slot("to")
    layout.add(text_header("Subject", subject))
    layout.slot("date")
    layout.slot("message_id")
    if sender.reply_to.strip():
        reply_name, reply_address = parseaddr(sender.reply_to)
        reply_local, reply_domain = _sender_address(reply_address, "sender.reply_to")
        layout.add(address_header("Reply-To", clean_line(reply_name), reply_local, reply_domain))
    layout.add(list_id_header(clean_line(settings.site.name), _list_id(settings, domain)))
    layout.slot("list_unsubscribe")
    layout.add(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nPrecedence: bulk\r\n")
    feedback_id = clean_line(settings.sending.feedback_id)
    if feedback_id:
        layout.add(text_header("Feedback-ID", feedback_id))
    return domain


def _with_final_newline(doc: str) -> str:
    return doc if doc.endswith("\n") else doc + "\n"


def _layout(
    content: IssueContent, settings: Settings, html: _Split, text: _Split
) -> tuple[_MessageLayout, str]:
    """The message's bytes with slots for the personal values; and the sender's domain."""
    layout = _MessageLayout()
    domain = _add_headers(layout, content, settings)

    # "=_" never occurs in quoted-printable text, so this boundary cannot clash with a body;
    # it is derived from the content so every process builds the same bytes.
    digest = hashlib.blake2b("".join(html.static + text.static).encode(), digest_size=12)
    boundary = f"=_nl{content.issue_id}_{digest.hexdigest()}".encode()
    layout.add(
        b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="'
        + boundary
        + b'"\r\n\r\n'
    )
    for subtype, split in ((b"plain", text), (b"html", html)):
        layout.add(
            b"--" + boundary + b"\r\nContent-Type: text/" + subtype + b'; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        layout.add_body(split, "text" if subtype == b"plain" else "html")
        layout.add(CRLF)
    layout.add(b"--" + boundary + b"--\r\n")
    return layout, domain


def _variant(
    content: IssueContent,
    settings: Settings,
    markers: _Markers,
    names: tuple[str, str],
    html_doc: str,
    text_doc: str,
) -> tuple[_Variant, str]:
    """The documents cut at the markers and laid out as a message; the sender's domain."""
    html, text = markers.split(html_doc, names[0]), markers.split(text_doc, names[1])
    layout, domain = _layout(content, settings, html, text)
    return _Variant(html, text, layout), domain


def prepare_issue(
    content: IssueContent,
    settings: Settings,
    *,
    templates_dir: str | Path | None = None,
    inliner: Inliner = inline_css,
    name_fallback: str = DEFAULT_NAME_FALLBACK,
    tracking: LinkPlan | None = None,
) -> PreparedIssue:
    """Render, inline and encode ``content`` once; the result personalises per recipient.

    ``templates_dir`` overrides ``[templates] dir``; ``inliner`` is the CSS inliner (premailer
    by default), called exactly once. ``tracking`` (from newsletter.tracking) rewrites the
    links to the redirector and adds the honeypot link (and the pixel, when it says so); the
    message of a recipient who chose not to be tracked keeps the links as written. Raises
    ContentError for a template, an issue or a document problem, ConfigError for an unusable
    sender/site setting.
    """
    markers = _Markers()
    clicks = tracking is not None and tracking.clicks
    html_doc, text_doc, html_name, text_name = _render_documents(
        content, settings, templates_dir, web=False, personal=markers.values, honeypot=clicks
    )
    html_doc = _with_final_newline(inliner(html_doc))
    text_doc = _with_final_newline(text_doc)
    names = (html_name, text_name)
    plain_html = strip_honeypot(html_doc) if clicks else html_doc
    plain, domain = _variant(content, settings, markers, names, plain_html, text_doc)
    tracked = None
    if tracking is not None:
        tracking.reader = markers.values[READER]
        html_tracked = rewrite_html(html_doc, tracking) if clicks else plain_html
        if tracking.opens:
            html_tracked = add_pixel(html_tracked, tracking)
        text_tracked = rewrite_text(text_doc, tracking) if clicks else text_doc
        tracked, _ = _variant(content, settings, markers, names, html_tracked, text_tracked)

    return PreparedIssue(
        content=content,
        plain=plain,
        tracked=tracked,
        plan=tracking,
        base_url=_site_url(settings),
        message_id_domain=domain,
        unsubscribe_mailto=_unsubscribe_mailto(settings),
        name_fallback=name_fallback,
    )
