"""Which URLs a webhook may target: http(s) only, and (unless ``[webhooks] allow_private``)
no host that resolves to a loopback, private, link-local, multicast or reserved address, so
neither the API nor a DNS answer can turn the server against its own network. Checked when
the webhook is added and again before each delivery."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ..errors import InvalidInputError

MAX_URL = 2000


def check(url: str, *, allow_private: bool) -> str:
    """``url`` if a webhook may POST to it. Raises InvalidInputError saying why not."""
    if not isinstance(url, str) or len(url) > MAX_URL or any(c.isspace() for c in url):
        raise InvalidInputError("the webhook URL must be one http(s) URL without spaces")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise InvalidInputError("the webhook URL may not carry a user name or password")
    if allow_private:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise InvalidInputError(f"{parts.hostname} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise InvalidInputError(
                f"{parts.hostname} is a loopback or private address ({address}); webhooks "
                "go to public hosts unless [webhooks] allow_private = true"
            )
    return url
