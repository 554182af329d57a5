"""Transports: how composed messages leave, behind one small interface.

    Transport.send(envelopes) -> results      one Result per Envelope, never raises for one
    Transport.aclose()                        message; TransportError for configuration

``make_transport`` (``transport_for`` from the whole Settings) is the one place that turns
settings into a transport: SMTP (``smtp.py``), several SMTP relays (``pool.py``) or a local
Maildir of .eml files (``maildir.py``), per ``sending.transport``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from ...config import DkimSettings, SendingSettings, Settings, SmtpSettings
from .base import (
    BAD_MAILBOX,
    Envelope,
    EnvelopeSource,
    Outcome,
    Report,
    Result,
    Stage,
    Transport,
    TransportError,
    as_source,
    classify,
    is_throttle,
)
from .maildir import MaildirTransport
from .pool import Relay, RelayPool
from .smtp import SmtpTransport

__all__ = [
    "BAD_MAILBOX",
    "Envelope",
    "MaildirTransport",
    "Outcome",
    "Relay",
    "RelayPool",
    "Result",
    "SmtpTransport",
    "Stage",
    "Transport",
    "TransportError",
    "classify",
    "is_throttle",
    "make_transport",
    "smtp_transport",
    "transport_for",
]


def make_transport(
    smtp: SmtpSettings,
    sending: SendingSettings,
    *,
    base_dir: Path,
    dkim: DkimSettings | None = None,
    relays: Sequence[SmtpSettings] = (),
) -> Transport:
    """The transport ``sending.transport`` names, signing every message with the ``dkim``
    keys when there are any. With several ``relays`` (or one held to a ``rate_per_second``),
    SMTP goes through a RelayPool of them; else through ``smtp``. Relative paths
    (``sending.maildir_path``, ``ca_file``, the key files) are taken relative to ``base_dir``,
    the config file's directory.

    Raises ConfigError for SMTP settings that cannot work (see SmtpTransport) and for a DKIM
    key that cannot be used.
    """
    base_dir = Path(base_dir)
    inner: Transport
    if sending.transport == "maildir":
        inner = MaildirTransport(base_dir / sending.maildir_path)
    elif len(relays) > 1 or (relays and relays[0].rate_per_second):
        inner = RelayPool(
            [Relay(r, smtp_transport(r, base_dir)) for r in relays],
            down_seconds=sending.relay_down_seconds,
        )
    else:
        inner = smtp_transport(smtp, base_dir)
    if dkim is None or not dkim.all_keys():
        return inner
    from ...dkim.sign import signer_for

    signer = signer_for(dkim, str(base_dir))
    return SigningTransport(inner, signer) if signer is not None else inner


def transport_for(settings: Settings, *, connections: int | None = None) -> Transport:
    """The transport ``settings`` name, for a process that has ``connections`` of the
    relays' connections in all (``Settings.smtp_connections``; default all of them)."""
    relays = shared_out(settings.smtp_relays(), connections)
    return make_transport(
        relays[0], settings.sending, base_dir=Path(settings.base_dir), dkim=settings.dkim,
        relays=relays,
    )  # fmt: skip


def shared_out(relays: Sequence[SmtpSettings], connections: int | None) -> list[SmtpSettings]:
    """``relays`` with their connections (at least one each) and rates scaled to one process's
    share, ``connections`` of them all (`issue send --workers` shares them out)."""
    total = sum(r.concurrency for r in relays)
    if connections is None or connections == total:
        return list(relays)
    factor = connections / total
    return [
        msgspec.structs.replace(
            r,
            concurrency=max(1, round(r.concurrency * factor)),
            rate_per_second=r.rate_per_second * factor,
        )
        for r in relays
    ]


def smtp_transport(smtp: SmtpSettings, base_dir: Path) -> SmtpTransport:
    """One relay's SmtpTransport, its ``ca_file`` taken relative to ``base_dir``."""
    if smtp.ca_file:
        smtp = msgspec.structs.replace(smtp, ca_file=str(base_dir / smtp.ca_file))
    return SmtpTransport(smtp, ehlo_name=smtp.ehlo_name)


class SigningTransport:
    """A transport that DKIM-signs each message as it is handed to ``inner`` (the message is
    composed just before: its body, and so its body hash, is personal)."""

    def __init__(self, inner: Transport, signer: Any) -> None:
        self.inner, self.signer = inner, signer

    async def send(
        self, envelopes: Iterable[Envelope] | EnvelopeSource, report: Report | None = None
    ) -> list[Result]:
        source = as_source(envelopes)
        signer = self.signer

        class Signed:
            async def take(self) -> Envelope | None:
                envelope = await source.take()
                if envelope is None:
                    return None
                return dataclasses.replace(envelope, data=signer.sign(envelope.data))

        return await self.inner.send(Signed(), report)

    async def aclose(self) -> None:
        await self.inner.aclose()
