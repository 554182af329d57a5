"""The double opt-in confirmation email: built from the ``email/confirm.txt`` and
``email/confirm.html`` templates with the header helpers of ``compose.mime`` (never with
``email.message``: Python 3.11.7 can be tricked into writing headers hidden in an
encoded-word of a display name), and sent through the configured transport.

It is a transactional message to one person who just asked for it: no List-Unsubscribe,
no Precedence: bulk; ``Auto-Submitted: auto-generated`` keeps vacation responders quiet.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from email.utils import formatdate, parseaddr

import jinja2

from ..compose import templates as tpl
from ..compose.mime import (
    CRLF,
    address_header,
    clean_name,
    encode_body,
    items_header,
    split_address,
    text_header,
)
from ..config import Settings
from ..content.text import clean_line
from ..delivery.dispatcher import sender_address
from ..delivery.transports import Envelope, transport_for
from ..errors import ConfigError, InvalidEmailError, NewsletterError
from ..subscribers.optin import ConfirmationMail

log = logging.getLogger("newsletter.web")


def _configured_address(value: str, key: str) -> tuple[str, str]:
    try:
        local, domain = split_address(value)
    except InvalidEmailError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return local, domain


def confirmation_message(
    settings: Settings,
    mail: ConfirmationMail,
    *,
    confirm_url: str,
    now: datetime,
    env: jinja2.Environment | None = None,
) -> bytes:
    """The whole RFC 5322 message (CRLF line ends) asking ``mail.email`` to confirm.

    ``env`` is the template environment (made from ``[templates] dir`` if not given).
    Raises ContentError (a template problem), ConfigError (sender settings) and
    InvalidEmailError (an address that cannot go into a header).
    """
    site, sender = settings.site, settings.sender
    env = env or tpl.make_environment(tpl.templates_dir_for(settings))
    name = clean_name(mail.name)
    context = {
        "site": {
            "name": site.name,
            "base_url": site.base_url.rstrip("/"),
            "postal_lines": [ln.strip() for ln in site.postal_address.splitlines() if ln.strip()],
        },
        "name": name,
        "email": mail.email,
        "confirm_url": confirm_url,
        "expiry_hours": round(settings.web.confirm_expiry_hours),
        "consent_text": settings.web.consent_text,
    }
    text = tpl.render(env, "email/confirm.txt", context)
    html = tpl.render(env, "email/confirm.html", context)

    from_local, from_domain = _configured_address(sender.from_address, "sender.from_address")
    to_local, to_domain = split_address(mail.email)
    boundary = f"=_nlc{secrets.token_hex(12)}".encode()
    head = [
        address_header("From", clean_line(sender.from_name), from_local, from_domain),
        address_header("To", name, to_local, to_domain),
        text_header("Subject", clean_line(f"Confirm your subscription to {site.name}")),
        b"Date: " + formatdate(now.timestamp(), usegmt=True).encode() + CRLF,
        items_header("Message-ID", (f"<c{secrets.token_hex(16)}@{from_domain}>",)),
    ]
    if sender.reply_to.strip():
        reply_name, reply_address = parseaddr(sender.reply_to)
        local, domain = _configured_address(reply_address, "sender.reply_to")
        head.append(address_header("Reply-To", clean_line(reply_name), local, domain))
    head.append(
        b"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n\r\n'
    )
    body = []
    for subtype, doc in ((b"plain", text), (b"html", html)):
        encoded = encode_body(doc if doc.endswith("\n") else doc + "\n")
        body.append(
            b"--" + boundary + b"\r\nContent-Type: text/" + subtype + b'; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded + CRLF
        )
    return b"".join([*head, *body, b"--" + boundary + b"--\r\n"])


class ConfirmationMailer:
    """Sends confirmation emails through the transport ``[sending]``/``[smtp]`` configure,
    one connection per email (sign-ups are rare next to issues)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = settings.site.base_url.rstrip("/")
        self._env: jinja2.Environment | None = None

    def confirm_url(self, token: str) -> str:
        return f"{self.base_url}/confirm/{token}"

    async def send(self, mail: ConfirmationMail, *, now: datetime) -> bool:
        """Send one confirmation email; True if the server accepted it. Never raises for a
        delivery or configuration problem: it is logged (without the link) and False
        returned, so the caller can let the person try again."""
        try:
            if self._env is None:
                self._env = tpl.make_environment(tpl.templates_dir_for(self.settings))
            data = confirmation_message(
                self.settings,
                mail,
                confirm_url=self.confirm_url(mail.token),
                now=now,
                env=self._env,
            )
            local, domain = split_address(mail.email)
            envelope = Envelope(
                key=mail.confirmation_id,
                mail_from=sender_address(self.settings),
                rcpt_to=f"{local}@{domain}",
                data=data,
                smtputf8=not local.isascii(),
                from_domain=self.settings.sender.from_address.rpartition("@")[2].lower(),
            )
            transport = transport_for(self.settings)
            try:
                result = (await transport.send([envelope]))[0]
            finally:
                await transport.aclose()
        except NewsletterError as exc:
            log.error("confirmation email %s not sent: %s", mail.confirmation_id, exc)
            return False
        if result.outcome != "sent":
            log.warning(
                "confirmation email %s %s: %s %s",
                mail.confirmation_id,
                result.outcome,
                result.code or "",
                result.text,
            )
            return False
        return True
