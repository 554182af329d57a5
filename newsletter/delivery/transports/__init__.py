"""Transports: how composed messages leave, behind one small interface.

    Transport.send(envelopes) -> results      one Result per Envelope, never raises for one
    Transport.aclose()                        message; TransportError for configuration

``make_transport`` is the one place that turns settings into a transport: SMTP (``smtp.py``)
or a local Maildir of .eml files (``maildir.py``), per ``sending.transport``.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ...config import SendingSettings, SmtpSettings
from .base import (
    BAD_MAILBOX,
    Envelope,
    Outcome,
    Result,
    Stage,
    Transport,
    TransportError,
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


def make_transport(smtp: SmtpSettings, sending: SendingSettings, *, base_dir: Path) -> Transport:
    """The transport ``sending.transport`` names. Relative paths (``sending.maildir_path``,
    ``smtp.ca_file``) are taken relative to ``base_dir``, the config file's directory.

    Raises ConfigError for SMTP settings that cannot work (see SmtpTransport).
    """
    base_dir = Path(base_dir)
    if sending.transport == "maildir":
        return MaildirTransport(base_dir / sending.maildir_path)
    if smtp.ca_file:
        smtp = msgspec.structs.replace(smtp, ca_file=str(base_dir / smtp.ca_file))
    return SmtpTransport(smtp, ehlo_name=smtp.ehlo_name)
