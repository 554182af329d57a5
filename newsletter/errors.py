"""The one exception tree of `newsletter`.

Everything a user can cause is a ``NewsletterError``; the CLI prints its message on one line
and exits 1, the web service turns it into a plain HTTP answer. Library exceptions
(SQLAlchemy, csv, email-validator, httpx, smtplib...) are wrapped once, where the library is
called, with ``raise SomeError(...) from exc``.

    NewsletterError
    ├── ConfigError          bad or missing configuration; the message names the key
    ├── StoreError           the database cannot be reached or is not migrated
    ├── NotFoundError        no subscriber / list / post / issue with that name or id
    ├── InvalidInputError    a value given on the command line or a form is not acceptable
    │   ├── InvalidEmailError    an address that email-validator refuses
    │   └── SegmentSyntaxError   a segment expression that cannot be read (the CLI exits 2)
    ├── RateLimitedError     too many sign-ups from one client or for one address (web: 429)
    ├── FormExpiredError     a web form without a valid form token, or from another site (403)
    ├── BounceSourceError    the bounce mailbox (Maildir, mbox, IMAP) cannot be read
    ├── ImportFileError      a CSV file that cannot be imported at all (binary, empty, no
    │                        email column, unknown --map column, unreadable path)
    ├── FeedError            a feed cannot be fetched or parsed (the others still run)
    ├── ContentError         a Markdown post or a template cannot be used
    └── TransportError       the SMTP or maildir transport cannot work with this config
                             (wrong password, no STARTTLS, untrusted certificate, a relay
                             that cannot be reached at all); carries the results of the
                             batch it stopped in
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotation only: errors stay at the bottom of the layers
    from .delivery.transports.base import Result


class NewsletterError(Exception):
    """Base of every error a user can cause; ``str(err)`` is the one line shown to them."""


class ConfigError(NewsletterError):
    """The configuration file is missing, unreadable or has a bad key or value."""


class StoreError(NewsletterError):
    """The database cannot be reached, or its schema is not the one this version expects."""


class NotFoundError(NewsletterError):
    """A named object (subscriber, list, post, issue) does not exist."""


class InvalidInputError(NewsletterError):
    """A value given by the user is not acceptable."""


class InvalidEmailError(InvalidInputError):
    """An email address failed validation; ``reason`` says why, the message names it too."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address!r} is not a valid email address: {reason}")
        self.address = address
        self.reason = reason


class SegmentSyntaxError(InvalidInputError):
    """A segment expression that cannot be read: ``position`` (1-based, in characters),
    what was ``expected`` there and what was ``found``. The message says all three on one
    line; it is a usage error, so the CLI exits 2."""

    def __init__(self, position: int, expected: str, found: str) -> None:
        super().__init__(f"segment: at {position}: expected {expected}, found {found}")
        self.position = position
        self.expected = expected
        self.found = found


class ImportFileError(NewsletterError):
    """A subscriber file cannot be imported at all; nothing was written."""


class FeedError(NewsletterError):
    """A feed could not be fetched or parsed; the message names the URL. Other feeds go on."""


class ContentError(NewsletterError):
    """A post file (Markdown with front matter) or a template cannot be used."""


class TransportError(NewsletterError):
    """The transport cannot be used with this configuration; nothing more can be sent.

    ``results`` holds one Result per envelope of the batch that was being sent (the ones that
    went out before the problem was found, and "deferred" for the rest), so the caller can
    record them before stopping. ``unreachable``: no connection to the relay could be opened
    at all (refused, unknown host, no answer, a failed TLS handshake), as opposed to a
    relay that refused our settings; ``reason`` is what went wrong in a few words.
    """

    def __init__(
        self,
        message: str,
        results: Sequence[Result] = (),
        *,
        unreachable: bool = False,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.results: list[Result] = list(results)
        self.unreachable = unreachable
        self.reason = reason or message  # what went wrong, without the advice


class RateLimitedError(NewsletterError):
    """Too many sign-up requests from one client or for one address in the current window.

    ``retry_after`` is the number of whole seconds until the window ends.
    """

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"too many sign-up requests {what}; try again in {retry_after} s")
        self.retry_after = retry_after


class FormExpiredError(NewsletterError):
    """A state-changing form came without a valid form (CSRF) token, or from another site.
    The web answers 403 with a page asking to reload and try again."""


class BounceSourceError(NewsletterError):
    """The bounce source cannot be read: a missing or wrong path, an IMAP server that cannot
    be reached or refuses the login. Nothing was processed after the problem."""


class AuthError(NewsletterError):
    """An API request without a valid token (401) or without the scope it needs (403)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status
