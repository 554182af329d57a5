"""What keeps the web service safe to expose: response headers, form (CSRF) tokens, the
origin check, the client's address behind a proxy, and log lines without secrets.

CSRF: there are no cookies and no log-in; every page that changes state is reached through
a link token (the subscriber's or a confirmation's). Its forms carry a stateless token,
``<issued-at>.<HMAC-SHA256(secret, purpose | link token | issued-at)>``, valid for
``CSRF_MAX_AGE``; a POST must bring a valid one for the same purpose and link, and its
``Origin`` header, when the browser sends one, must be this site. The RFC 8058 one-click
endpoint is exempt by design (mail providers POST to it without any page), and so is the
subscribe form, which the blog embeds on another origin (double opt-in, the honeypot and
the rate limits guard it).

Client address: ``X-Forwarded-For`` (and ``X-Forwarded-Proto``) are believed only when the
direct peer is one of ``[web] trusted_proxies``. The chain is read from the right, each proxy
having appended the address it saw: the client is the right-most address that is not a
trusted proxy. A malformed entry ends the walk (no proxy vouched for what lies left of it),
and the client is then the last trusted hop. The app does this itself
(``ClientAddressMiddleware``; uvicorn's proxy headers are off), so the rate limits and the
consent records never see a value the client chose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import WebSettings
from ..errors import ConfigError

CSRF_MAX_AGE = timedelta(hours=12)
CSRF_FIELD = "csrf_token"

TIMEZONE_SCRIPT = (
    "document.querySelectorAll('input[name=timezone]').forEach(function(f){try{"
    "f.value=Intl.DateTimeFormat().resolvedOptions().timeZone||''}catch(e){}});"
)
"""The one script of our pages: it fills the subscribe form's hidden time-zone field with the
browser's zone (Asia/Tokyo), so `issue schedule --local` can reach the reader at their hour.
Without it (scripts off) the field stays empty and the list's zone is used."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "script-src 'sha256-"
    + base64.b64encode(hashlib.sha256(TIMEZONE_SCRIPT.encode()).digest()).decode()
    + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""No script but TIMEZONE_SCRIPT (allowed by its hash: no inline or foreign script runs);
inline styles (the archive shows the email's own CSS); images from https (posts' images);
forms post only here; never framed (no click-jacking)."""


def load_secret(web: WebSettings) -> bytes:
    """The key that signs form tokens: from ``web.secret`` (the environment variable
    ``web.secret_env`` names), else random for this process (forms opened before a restart
    then fail once)."""
    value = web.secret
    if value:
        return hashlib.sha256(value.encode("utf-8")).digest()
    return secrets.token_bytes(32)


class CsrfSigner:
    """Issues and checks stateless form tokens bound to a purpose and a link token."""

    def __init__(self, secret: bytes, *, max_age: timedelta = CSRF_MAX_AGE) -> None:
        self._secret = secret
        self._max_age = max_age

    def _mac(self, purpose: str, subject: str, issued: int) -> str:
        message = f"{purpose}|{subject}|{issued}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def issue(self, purpose: str, subject: str, *, now: datetime) -> str:
        """A token for a form of ``purpose`` on the page of link token ``subject``."""
        issued = int(now.timestamp())
        return f"{issued}.{self._mac(purpose, subject, issued)}"

    def verify(self, token: str, purpose: str, subject: str, *, now: datetime) -> bool:
        """True if ``token`` was issued by us for this purpose and link and has not expired;
        the MAC is compared in constant time."""
        issued_text, _, mac = token.partition(".")
        if not issued_text.isdigit() or not mac or len(token) > 100:
            return False
        issued = int(issued_text)
        age = now.timestamp() - issued
        if age < -60 or age > self._max_age.total_seconds():
            return False
        return hmac.compare_digest(mac, self._mac(purpose, subject, issued))


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, as browsers write the Origin header."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, base_url: str) -> bool:
    """False when the browser says the form was posted from another site: an ``Origin``
    header that is neither ``site.base_url``'s origin nor the one the request was made to
    (``null`` included). No header (older clients, scripts) passes: the token decides."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    here = f"{request.url.scheme}://{request.url.netloc}".lower()
    return origin.lower() in (origin_of(base_url), here)


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_PORT = re.compile(r"[0-9]{1,5}")


def _port(text: str) -> bool:
    return bool(_PORT.fullmatch(text)) and int(text) <= 65535


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, a dual-stack socket) as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_address(entry: str) -> IPAddress | None:
    """One ``X-Forwarded-For`` entry as an address: ``192.0.2.1``, ``192.0.2.1:443``,
    ``2001:db8::1``, ``[2001:db8::1]`` or ``[2001:db8::1]:443``; None for anything else
    (``unknown``, obfuscated names, garbage)."""
    text = entry.strip()
    if len(text) > 100:
        return None
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and _port(port[1:]))):
            return None
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not _port(port):
            return None
    try:
        return _plain(ipaddress.ip_address(text))
    except ValueError:
        return None


class TrustedProxies:
    """``[web] trusted_proxies``: addresses and networks (``10.0.0.0/8``) of the reverse
    proxies whose forwarding headers are believed. ``"*"`` believes any direct peer, but
    only the addresses listed count as proxies inside the chain, so with ``["*"]`` alone the
    client is the right-most address of ``X-Forwarded-For`` (what the nearest proxy saw).

    Raises ConfigError for an entry that is neither an address, a network nor ``*``.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self.any_peer = False
        networks = []
        for entry in entries:
            if entry.strip() == "*":
                self.any_peer = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ConfigError(
                    f"web.trusted_proxies: {entry[:60]!r} is not an IP address or network"
                ) from None
        self._networks = tuple(networks)

    def _listed(self, address: IPAddress) -> bool:
        return any(address in network for network in self._networks)

    def is_proxy(self, peer: str) -> bool:
        """Whether the direct peer ``peer`` may tell us who the client is."""
        if self.any_peer:
            return True
        try:
            return self._listed(_plain(ipaddress.ip_address(peer)))
        except ValueError:
            return False

    def client_address(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client of a request from ``peer`` with these ``X-Forwarded-For`` values (every
        such header, in order): the right-most address of the chain that is not a trusted
        proxy; the left-most if all are; ``peer`` itself when it is not a trusted proxy or
        sent no usable value. A malformed entry ends the walk at the last trusted hop."""
        if not self.is_proxy(peer):
            return peer
        client = peer
        entries = [entry for value in forwarded_for for entry in value.split(",")]
        for entry in reversed(entries):
            address = forwarded_address(entry)
            if address is None:
                break
            client = str(address)
            if not self._listed(address):
                break
        return client


class ClientAddressMiddleware:
    """Sets the request's client (``request.client.host``) and scheme from a trusted proxy's
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` (see ``TrustedProxies``); from anyone else
    these headers change nothing."""

    def __init__(self, app: ASGIApp, *, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] in ("http", "websocket") else None
        if client and self.proxies.is_proxy(client[0]):
            forwarded: list[str] = []
            proto = ""
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded.append(value.decode("latin-1"))
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
            scope = dict(scope)
            host = self.proxies.client_address(client[0], forwarded)
            if host != client[0]:
                scope["client"] = (host, 0)
            if proto in ("http", "https") and scope["type"] == "http":
                scope["scheme"] = proto
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (and ``Cache-Control: no-store``
    where the handler set none: most pages hold a personal link)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = {
            "content-security-policy": CONTENT_SECURITY_POLICY,
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "same-origin",
            "cross-origin-opener-policy": "same-origin",
            "cross-origin-resource-policy": "same-origin",
            "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
        }
        if hsts:
            self.headers["strict-transport-security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


# /l/ and /o/: tracked links and the pixel, whose tokens name the reader
_LINK_PATH = re.compile(r"^/(unsubscribe|preferences|confirm|l|o)/[^/?]+")


def redact_path(path: str) -> str:
    """A request path fit for a log line: link tokens replaced by ``…``."""
    return _LINK_PATH.sub(lambda m: f"/{m.group(1)}/…", path)


access_log = logging.getLogger("newsletter.web.access")


class AccessLogMiddleware:
    """One INFO line per request on ``newsletter.web.access``: client, method, path (link
    tokens redacted: they are passwords) and status. Replaces uvicorn's access log, which
    would write the tokens out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            client = (scope.get("client") or ("-", 0))[0]
            path = redact_path(scope["path"])
            access_log.info('%s "%s %s" %d', client, scope["method"], path, status)
