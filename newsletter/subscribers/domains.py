"""Receiving domains: which provider receives an address's mail, where it is known without
an MX lookup (the big consumer domains, whose many domains share one reputation)."""

from __future__ import annotations

PROVIDERS: dict[str, tuple[str, ...]] = {
    "google": ("gmail.com", "googlemail.com"),
    "microsoft": (
        "outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk", "hotmail.fr",
        "hotmail.de", "hotmail.it", "hotmail.es", "live.co.uk", "live.fr", "outlook.de",
        "outlook.fr", "windowslive.com",
    ),
    "yahoo": (
        "yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "yahoo.co.uk", "yahoo.fr",
        "yahoo.de", "yahoo.it", "yahoo.es", "yahoo.co.jp", "yahoo.com.br", "aim.com",
    ),
    "apple": ("icloud.com", "me.com", "mac.com"),
}  # fmt: skip
"""Consumer domains whose mail one provider receives (known without an MX lookup)."""

_PROVIDER_OF = {domain: name for name, domains in PROVIDERS.items() for domain in domains}


def domain_key(address: str) -> str:
    """The receiving domain ``address`` is grouped under: its provider for the big consumer
    domains ("google" for gmail.com and googlemail.com), else its domain, lower-cased."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    return _PROVIDER_OF.get(domain, domain)


def describe(key: str) -> str:
    """A domain key for people: "google (gmail.com, googlemail.com)" or the domain."""
    domains = PROVIDERS.get(key)
    if not domains:
        return key
    return f"{key} ({', '.join(domains[:3])}{', ...' if len(domains) > 3 else ''})"


def provider_domains(key: str) -> list[str]:
    """The domains a domain key stands for: a provider's, or the domain itself."""
    return list(PROVIDERS.get(key, (key,)))
