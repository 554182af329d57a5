"""The app factory: ``create_app(settings, engine)`` wires settings, the store, the mailer and
the routes into one Starlette application, used by `newsletter serve` and the tests alike.

Handlers (``handlers.py``) translate HTTP into calls of the core (``subscribers.optin``,
``web.archive``) through ``WebApp.run`` (writes) and ``WebApp.read``, which run each call in
a worker thread inside one transaction, so the event loop never waits on the database.
Errors are translated once, here: NotFoundError is a plain 404 (the same for an unknown and
a tampered link), FormExpiredError a 403 page, StoreError or a lost database a 503,
ContentError or ConfigError (templates, settings) a 500, any other NewsletterError a 400
page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from ..compose import templates as tpl
from ..config import Settings
from ..errors import (
    ConfigError,
    ContentError,
    FormExpiredError,
    NewsletterError,
    NotFoundError,
    StoreError,
)
from ..store import session_factory, writer_sessions
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
from . import handlers
from .inputs import UnexpectedErrorMiddleware
from .mail import ConfirmationMailer
from .security import (
    AccessLogMiddleware,
    ClientAddressMiddleware,
    CsrfSigner,
    SecurityHeadersMiddleware,
    TrustedProxies,
    load_secret,
)

log = logging.getLogger("newsletter.web")

MAX_BODY_SIZE = 64 * 1024
"""Largest request body accepted (413 beyond): forms and JSON here are a few hundred bytes."""

CLEANUP_INTERVAL_SECONDS = 600.0
"""How often the service deletes expired sign-ups and ended rate-limit windows."""

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

    # -- pages ----------------------------------------------------------------------------

    def site(self) -> dict[str, Any]:
        site = self.settings.site
        return {
            "name": site.name,
            "base_url": self.base_url,
            "postal_lines": [ln.strip() for ln in site.postal_address.splitlines() if ln.strip()],
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


# -- errors, translated once -----------------------------------------------------------------


def _web(request: Request) -> WebApp:
    return request.app.state.web


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("Not Found", status_code=404)


async def _form_expired(request: Request, exc: Exception) -> Response:
    return _web(request).message(
        "This form has expired",
        "For your safety, forms on this site work for a limited time and only from this "
        "site. Go back, reload the page and try again.",
        status_code=403,
    )


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.error("%s", exc)
    return PlainTextResponse("Service Unavailable", status_code=503, headers={"Retry-After": "60"})


async def _broken(request: Request, exc: Exception) -> Response:
    log.error("%s", exc)  # a template or setting the operator must fix
    return PlainTextResponse("Internal Server Error", status_code=500)


async def _refused(request: Request, exc: Exception) -> Response:
    return _web(request).message("That did not work", str(exc), status_code=400)


# -- the app ---------------------------------------------------------------------------------


def _routes(settings: Settings) -> list[BaseRoute]:
    api: BaseRoute = Route("/api/subscribe", handlers.api_subscribe, methods=["POST"])
    if settings.web.cors_origins:
        inner = Router(routes=[Route("/subscribe", handlers.api_subscribe, methods=["POST"])])
        api = Mount(
            "/api",
            app=CORSMiddleware(
                inner,
                allow_origins=list(settings.web.cors_origins),
                allow_methods=["POST"],
                allow_headers=["Content-Type"],
                max_age=600,
            ),
        )
    return [
        Route("/", handlers.home, methods=["GET"]),
        Route("/subscribe", handlers.subscribe_page, methods=["GET"]),
        Route("/subscribe", handlers.subscribe_form, methods=["POST"]),
        Route("/subscribe/thanks", handlers.thanks, methods=["GET"]),
        api,
        Route("/confirm/{token}", handlers.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", handlers.confirm_post, methods=["POST"]),
        Route("/unsubscribe/{token}", handlers.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", handlers.unsubscribe_post, methods=["POST"]),
        Route("/preferences/{token}", handlers.preferences_page, methods=["GET"]),
        Route("/preferences/{token}", handlers.preferences_post, methods=["POST"]),
        Route("/preferences/{token}/export", handlers.preferences_export, methods=["POST"]),
        Route("/preferences/{token}/erase", handlers.preferences_erase, methods=["POST"]),
        Route("/archive", handlers.archive_index, methods=["GET"]),
        Route("/archive/feed.xml", handlers.archive_feed, methods=["GET"]),
        Route("/archive/{slug}", handlers.archive_issue, methods=["GET"]),
    ]


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    clock: Callable[[], datetime] = utcnow,
    secret: bytes | None = None,
    cleanup_interval: float | None = CLEANUP_INTERVAL_SECONDS,
) -> Starlette:
    """The subscriber web service as an ASGI app on ``engine`` (a migrated database).

    ``clock`` gives the current UTC time (tests move it); ``secret`` signs form tokens
    (default: from ``web.secret_env``, else random); ``cleanup_interval`` is the period of
    the expired-sign-up clean-up (None: never, e.g. when another process runs it).
    Raises ContentError if ``[templates] dir`` does not exist, ConfigError for a
    ``web.trusted_proxies`` entry that is not an address or network.
    """
    web = WebApp(settings, engine, clock=clock, secret=secret)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if cleanup_interval is not None:
            task = asyncio.create_task(_cleanup_loop(web, cleanup_interval))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=_routes(settings),
        middleware=[
            Middleware(
                ClientAddressMiddleware, proxies=TrustedProxies(settings.web.trusted_proxies)
            ),
            Middleware(AccessLogMiddleware),
            Middleware(
                SecurityHeadersMiddleware, hsts=settings.site.base_url.startswith("https://")
            ),
            Middleware(UnexpectedErrorMiddleware),
        ],
        exception_handlers={
            NotFoundError: _not_found,
            FormExpiredError: _form_expired,
            StoreError: _unavailable,
            ContentError: _broken,
            ConfigError: _broken,
            NewsletterError: _refused,
        },
        lifespan=lifespan,
        max_body_size=MAX_BODY_SIZE,
    )
    app.state.web = web
    return app


async def _cleanup_loop(web: WebApp, interval: float) -> None:
    while True:
        try:
            await web.cleanup()
        except Exception:  # logged; the next round tries again
            log.exception("clean-up of expired sign-ups failed")
        await asyncio.sleep(interval)
