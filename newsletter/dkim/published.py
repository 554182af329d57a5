"""Is the published DNS record the configured key's? (`newsletter check`)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .keys import LoadedKey, public_value, record_name

Lookup = Callable[[str], list[str] | None]  # TXT strings of a name; None: DNS not reachable


@dataclass(frozen=True)
class Published:
    level: str  # "ok", "warn" or "fail"
    detail: str


def dns_txt(name: str, timeout: float = 5.0) -> list[str] | None:
    """The TXT records of ``name`` ([] when there are none), or None when DNS cannot be
    asked (no network, no resolver)."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=timeout)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError):
        return None
    return [b"".join(r.strings).decode("ascii", "replace") for r in answer]


def check(key: LoadedKey, lookup: Lookup = dns_txt) -> Published:
    name = record_name(key.selector, key.domain)
    kind, value = public_value(key.key)
    records = lookup(name)
    if records is None:
        return Published("warn", f"{name}: DNS could not be asked; not checked")
    for record in records:
        tags = dict(
            (t.split("=", 1)[0].strip(), t.split("=", 1)[1].strip())
            for t in record.split(";")
            if "=" in t
        )
        if tags.get("p", "").replace(" ", "") == value and tags.get("k", "rsa") == kind:
            return Published("ok", f"{name} publishes the {kind} key of {key.path}")
    if not records:
        return Published("fail", f"{name} has no TXT record: publish the one "
                                 "`newsletter dkim keygen` printed")  # fmt: skip
    return Published("fail", f"{name} publishes another key than {key.path}: receivers will "
                             "fail the signature")  # fmt: skip
