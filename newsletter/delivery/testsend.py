"""`issue preview --to`: one test message through the configured transport."""

from __future__ import annotations

import asyncio

from ..compose import PreparedIssue, Recipient
from ..config import Settings
from ..subscribers.validate import normalise_email
from .dispatcher import sender_address
from .transports import Envelope, Result, transport_for

# The test copy carries a made-up token: its unsubscribe link cannot touch a real subscriber.
TEST_TOKEN = "test-message"


def test_send(prepared: PreparedIssue, sample: Recipient, to: str, settings: Settings) -> Result:
    """Send the issue, personalised like ``sample``, to ``to``. Raises InvalidEmailError for a
    bad address and TransportError when the transport cannot be used."""
    address = normalise_email(to).email
    recipient = Recipient(subscriber_id=0, email=address, name=sample.name, token=TEST_TOKEN)
    envelope = Envelope(
        key=0,
        mail_from=sender_address(settings),
        rcpt_to=prepared.envelope_recipient(recipient),
        data=prepared.message_bytes(recipient),
        smtputf8=prepared.needs_smtputf8(recipient),
        from_domain=prepared.from_domain,
    )

    async def once() -> Result:
        transport = transport_for(settings)
        try:
            return (await transport.send([envelope]))[0]
        finally:
            await transport.aclose()

    return asyncio.run(once())
