"""The app factory: ``create_app(settings, engine)`` wires settings, the store, the mailer and
the routes into one Starlette application, used by `newsletter serve` and the tests alike.

It mounts the HTML pages (``pages/``) and the JSON API (``api/``), whose handlers translate
HTTP into calls of the core (``subscribers.optin``, ``issues.published``) through the shared
``WebApp`` (``state.py``): ``WebApp.run`` (writes) and ``WebApp.read`` run each call in a
worker thread inside one transaction, so the event loop never waits on the database. The
imports run one way: this module imports the handlers and ``state``, never the reverse.
Errors are translated once, here: NotFoundError is a plain 404 (the same for an unknown and
a tampered link), FormExpiredError a 403 page, StoreError or a lost database a 503,
ContentError or ConfigError (templates, settings) a 500, any other NewsletterError a 400
page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..config import Settings
from ..errors import (
    ConfigError,
    ContentError,
    FormExpiredError,
    NewsletterError,
    NotFoundError,
    StoreError,
)
from ..store.models import utcnow
from . import api, pages
from .api import providers
from .inputs import UnexpectedErrorMiddleware
from .security import (
    AccessLogMiddleware,
    ClientAddressMiddleware,
    SecurityHeadersMiddleware,
    TrustedProxies,
)
from .state import WebApp, web_app

log = logging.getLogger("newsletter.web")

MAX_BODY_SIZE = 64 * 1024
"""Largest request body accepted (413 beyond): forms and JSON here are a few hundred bytes."""

CLEANUP_INTERVAL_SECONDS = 600.0
"""How often the service deletes expired sign-ups and ended rate-limit windows."""

# -- errors, translated once -----------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("Not Found", status_code=404)


async def _form_expired(request: Request, exc: Exception) -> Response:
    return web_app(request).message(
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
    return web_app(request).message("That did not work", str(exc), status_code=400)


# -- the app ---------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    clock: Callable[[], datetime] = utcnow,
    secret: bytes | None = None,
    cleanup_interval: float | None = CLEANUP_INTERVAL_SECONDS,
    webhooks: bool = True,
) -> Starlette:
    """The subscriber web service as an ASGI app on ``engine`` (a migrated database).

    ``clock`` gives the current UTC time (tests move it); ``secret`` signs form tokens
    (default: from ``web.secret_env``, else random); ``cleanup_interval`` is the period of
    the expired-sign-up clean-up (None: never, e.g. when another process runs it);
    ``webhooks``: deliver the webhook outbox every ``[webhooks] interval_seconds``.
    Raises ContentError if ``[templates] dir`` does not exist, ConfigError for a
    ``web.trusted_proxies`` entry that is not an address or network.
    """
    web = WebApp(settings, engine, clock=clock, secret=secret)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = []
        if cleanup_interval is not None:
            tasks.append(asyncio.create_task(_cleanup_loop(web, cleanup_interval)))
        if webhooks:
            tasks.append(asyncio.create_task(_webhook_loop(web)))
        web.redirector.recorder.start()
        try:
            yield
        finally:
            await asyncio.to_thread(web.redirector.recorder.stop)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            web.close()

    app = Starlette(
        routes=[*pages.routes, *api.routes(settings.web), *providers.routes(settings)],
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


async def _webhook_loop(web: WebApp) -> None:
    while True:
        try:
            await web.deliver_webhooks()
        except Exception:  # logged; the next round tries again (nothing is lost: the outbox)
            log.exception("webhook delivery failed")
        await asyncio.sleep(web.settings.webhooks.interval_seconds)
