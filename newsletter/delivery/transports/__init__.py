"""Transports: how composed messages leave, behind one small interface.

    Transport.send(envelopes) -> results      one Result per Envelope, never raises for one
    Transport.aclose()                        message; TransportError for configuration

``make_transport`` is the one place that turns settings into a transport: SMTP (``smtp.py``)
or a local Maildir of .eml files (``maildir.py``), per ``sending.transport``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from ...config import DkimSettings, SendingSettings, SmtpSettings
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
)
from .maildir import MaildirTransport
from .smtp import SmtpTransport

__all__ = [
    "BAD_MAILBOX",
    "Envelope",
    "MaildirTransport",
    "Outcome",
    "Result",
    "SmtpTransport",
    "Stage",
    "Transport",
    "TransportError",
    "classify",
    "make_transport",
]


def make_transport(
    smtp: SmtpSettings,
    sending: SendingSettings,
    *,
    base_dir: Path,
    dkim: DkimSettings | None = None,
) -> Transport:
    """The transport ``sending.transport`` names, signing every message with the ``dkim``
    keys when there are any. Relative paths (``sending.maildir_path``, ``smtp.ca_file``, the
    key files) are taken relative to ``base_dir``, the config file's directory.

    Raises ConfigError for SMTP settings that cannot work (see SmtpTransport) and for a DKIM
    key that cannot be used.
    """
    base_dir = Path(base_dir)
    if sending.transport == "maildir":
        inner: Transport = MaildirTransport(base_dir / sending.maildir_path)
    else:
        if smtp.ca_file:
            smtp = msgspec.structs.replace(smtp, ca_file=str(base_dir / smtp.ca_file))
        inner = SmtpTransport(smtp, ehlo_name=smtp.ehlo_name)
    if dkim is None or not dkim.all_keys():
        return inner
    from ...dkim.sign import signer_for

    signer = signer_for(dkim, str(base_dir))
    return SigningTransport(inner, signer) if signer is not None else inner


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
