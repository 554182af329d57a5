"""What every handler shares: ``WebApp``, made once by the app factory (``app.py``) and kept
on the Starlette app's state, and ``web_app(request)``, how a handler reaches it.

The pages (``pages/``) and the JSON API (``api/``) import this module, never ``app.py``, so
the imports run one way: the factory imports the handlers, the handlers import this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..compose import templates as tpl
from ..config import Settings
from ..store import connect, session_factory, writer_sessions
from ..store.errors import translating
from ..store.models import utcnow
from ..subscribers.optin import (
    ConfirmationMail,
    OptInPolicy,
    SignupRequest,
    count_signup_ip,
    expire_signups,
    forget_confirmation,
    request_signup,
)
from ..tracking.redirector import Redirector
from ..tracking.retention import forget_tracked_people
from ..webhooks.deliver import deliver_due
from .mail import ConfirmationMailer
from .security import TIMEZONE_SCRIPT, CsrfSigner, load_secret

log = logging.getLogger("newsletter.web")

T = TypeVar("T")


class WebApp:
    """What every handler shares: settings, the sign-up policy, form signing, the mailer,
    the clock and transactions on the store."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        secret: bytes | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = settings.site.base_url.rstrip("/")
        self.policy = OptInPolicy.from_settings(settings.web)
        self.csrf = CsrfSigner(secret if secret is not None else load_secret(settings.web))
        self.mailer = ConfirmationMailer(settings)
        self.clock = clock
        self.templates = tpl.make_environment(tpl.templates_dir_for(settings))
        # Requests that write are short read-then-write transactions: on SQLite they take the
        # write lock at BEGIN so concurrent ones queue (busy timeout) instead of failing to
        # upgrade a read lock. Pages that only read do not take it.
        self._writes: sessionmaker[Session] = writer_sessions(engine)
        self._reads: sessionmaker[Session] = session_factory(engine)
        self.redirector = Redirector(settings.tracking, self._writes)
        # The webhook deliverer has a pool of its own: a slow receiver never holds the
        # connections the requests need.
        self._hooks_engine = connect(engine.url.render_as_string(hide_password=False))
        self._hooks: sessionmaker[Session] = writer_sessions(self._hooks_engine)
        # loads that requests arriving together share (pages/track.py), by what they load
        self.loading: dict[object, asyncio.Future[None]] = {}

    # -- the store ------------------------------------------------------------------------

    @staticmethod
    @contextlib.contextmanager
    def _transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
        with translating(), sessions() as session, session.begin():
            yield session

    def _call(
        self,
        sessions: sessionmaker[Session],
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        with self._transaction(sessions) as session:
            return fn(session, *args, **kwargs)

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(session, *args, **kwargs)`` in a worker thread, in one transaction
        (committed if it returns, rolled back if it raises). Raises what ``fn`` raises and
        StoreError when the database cannot be used."""
        return await run_in_threadpool(self._call, self._writes, fn, args, kwargs)

    async def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Like ``run`` for a ``fn`` that only reads (a page view): no write lock taken."""
        return await run_in_threadpool(self._call, self._reads, fn, args, kwargs)

    # -- sign-ups -------------------------------------------------------------------------

    async def signup(self, req: SignupRequest) -> ConfirmationMail | None:
        """Count the request against the client's limit (its IPv6 network; committed even if
        the sign-up then fails) and record the sign-up. Returns the email to send after
        answering.

        Raises RateLimitedError, InvalidEmailError, InvalidInputError, StoreError.
        """
        now = self.clock()
        await self.run(count_signup_ip, req.ip, self.policy, now=now)
        return await self.run(request_signup, req, self.policy, now=now)

    async def deliver_confirmation(self, mail: ConfirmationMail) -> None:
        """Send a confirmation email (after the answer went out, so its timing reveals
        nothing); if it cannot be sent, forget the link so the person can simply retry."""
        try:
            if not await self.mailer.send(mail, now=self.clock()):
                await self.run(forget_confirmation, mail.confirmation_id)
        except Exception:  # a background task: log, never crash the server
            log.exception("confirmation email %s failed", mail.confirmation_id)

    async def cleanup(self) -> None:
        """Delete expired sign-ups, forget old links, drop ended rate-limit windows."""
        done = await self.run(expire_signups, self.policy, now=self.clock())
        if done.expired_people:
            log.info("deleted %d expired unconfirmed sign-up(s)", done.expired_people)
        await self.run(forget_tracked_people, self.settings.tracking, now=self.clock())

    async def deliver_webhooks(self) -> int:
        """Deliver the webhook messages that are due (newsletter.webhooks.deliver)."""
        return await run_in_threadpool(deliver_due, self._hooks, self.settings.webhooks)

    def close(self) -> None:
        self._hooks_engine.dispose()

    # -- pages ----------------------------------------------------------------------------

    def site(self) -> dict[str, Any]:
        site = self.settings.site
        return {
            "name": site.name,
            "base_url": self.base_url,
            "postal_lines": [ln.strip() for ln in site.postal_address.splitlines() if ln.strip()],
            "timezone_script": TIMEZONE_SCRIPT,
        }

    def render(self, name: str, context: dict[str, Any]) -> str:
        """A template with the site in its context. Raises ContentError."""
        return tpl.render(self.templates, name, {"site": self.site(), **context})

    def page(
        self,
        name: str,
        context: dict[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        return HTMLResponse(
            self.render(name, context or {}), status_code=status_code, headers=headers
        )

    def message(self, heading: str, text: str, *, status_code: int, **headers: str) -> Response:
        return self.page(
            "web/message.html",
            {"heading": heading, "text": text},
            status_code=status_code,
            headers=headers or None,
        )


def web_app(request: Request) -> WebApp:
    """The ``WebApp`` of the app serving ``request``."""
    return request.app.state.web
