"""POST /providers/ses | postmark | mailgun | sendgrid: bounce and complaint events from
sending providers (newsletter.bounces.providers checks and reads them). An endpoint answers
404 unless its provider is set up in ``[providers]``; a forged or unsigned event 401, a
stale or replayed one 403, and nothing is stored for any of them."""

from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ...bounces import providers as events
from ...bounces.parse import Report
from ...config import Settings
from ...webhooks import targets
from ..state import WebApp, web_app

log = logging.getLogger("newsletter.providers")
MAX_EVENT_BODY = 1024 * 1024
_certificates: dict[str, bytes] = {}


def _answer(status: int, **body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def _body(request: Request) -> bytes:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_EVENT_BODY:
            raise events.Refused(413, "the event is too large")
    return bytes(raw)


async def _record(web: WebApp, reports: list[Report], source: str) -> Response:
    if not reports:
        return _answer(200, recorded=0, note="no bounce or complaint in this event")
    recorded, seen = await web.run(events.record, reports, web.settings, source)
    if recorded == 0 and seen:
        raise events.Refused(403, "this event was received before: a replay is refused")
    log.info("providers.%s recorded=%s seen=%s", source, recorded, seen)
    return _answer(200, recorded=recorded, seen=seen)


def _now(web: WebApp) -> datetime:
    return web.clock()


async def ses(request: Request) -> Response:
    web = web_app(request)
    p = web.settings.providers
    message = events.parse_json(await _body(request))

    def certificate(url: str) -> bytes:
        if p.ses_certificate_file:
            path = Path(p.ses_certificate_file)
            return (path if path.is_absolute() else Path(web.settings.base_dir) / path).read_bytes()
        if not events.sns_certificate_url_allowed(url):
            raise ValueError(f"the signing certificate is not at an SNS address: {url!r}")
        if url not in _certificates:
            _certificates[url] = httpx.get(url, timeout=10).raise_for_status().content
        return _certificates[url]

    await asyncio.to_thread(events.verify_sns, message, certificate, topics=tuple(p.ses_topic_arns),
                            now=_now(web), max_age=p.max_age_seconds)  # fmt: skip
    if message.get("Type") == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL", ""))
        try:
            targets.check(url, allow_private=web.settings.webhooks.allow_private
                          or bool(p.ses_certificate_file))  # fmt: skip
            await asyncio.to_thread(lambda: httpx.get(url, timeout=10).raise_for_status())
        except Exception as exc:  # the topic stays unconfirmed; SNS asks again
            log.warning("providers.ses subscription not confirmed: %s", exc)
            return _answer(502, error=f"could not confirm the subscription: {exc}")
        log.info("providers.ses subscribed topic=%s", message.get("TopicArn"))
        return _answer(200, subscribed=message.get("TopicArn"))
    return await _record(web, events.ses_reports(message), "ses")


async def postmark(request: Request) -> Response:
    web = web_app(request)
    p = web.settings.providers
    secret = request.path_params.get("secret")
    path_secret = p.env("postmark_path_secret_env")
    if secret is not None:
        if not path_secret or not hmac.compare_digest(secret.encode(), path_secret.encode()):
            raise events.Refused(401, "wrong secret path")
    else:
        events.verify_basic(request.headers.get("authorization", ""), p.postmark_username,
                            p.env("postmark_password_env"))  # fmt: skip
    return await _record(web, events.postmark_reports(await _body(request)), "postmark")


async def mailgun(request: Request) -> Response:
    web = web_app(request)
    p = web.settings.providers
    event = events.parse_json(await _body(request))
    events.verify_mailgun(event, p.env("mailgun_signing_key_env"), now=_now(web),
                          max_age=p.max_age_seconds)  # fmt: skip
    return await _record(web, events.mailgun_reports(event), "mailgun")


async def sendgrid(request: Request) -> Response:
    web = web_app(request)
    p = web.settings.providers
    body = await _body(request)
    events.verify_sendgrid(
        body,
        request.headers.get("x-twilio-email-event-webhook-signature", ""),
        request.headers.get("x-twilio-email-event-webhook-timestamp", ""),
        p.sendgrid_public_key, now=_now(web), max_age=p.max_age_seconds,
    )  # fmt: skip
    return await _record(web, events.sendgrid_reports(body), "sendgrid")


def _guarded(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except events.Refused as exc:
            return _answer(exc.status, error=str(exc))

    return endpoint


def routes(settings: Settings) -> list[BaseRoute]:
    """The endpoints of the providers set up in ``[providers]``."""
    p = settings.providers
    found: list[BaseRoute] = []
    if p.ses_topic_arns:
        found.append(Route("/providers/ses", _guarded(ses), methods=["POST"]))
    if p.postmark_username or p.env("postmark_path_secret_env"):
        found.append(Route("/providers/postmark", _guarded(postmark), methods=["POST"]))
        found.append(Route("/providers/postmark/{secret}", _guarded(postmark), methods=["POST"]))
    if p.mailgun_signing_key_env and p.env("mailgun_signing_key_env"):
        found.append(Route("/providers/mailgun", _guarded(mailgun), methods=["POST"]))
    if p.sendgrid_public_key:
        found.append(Route("/providers/sendgrid", _guarded(sendgrid), methods=["POST"]))
    return found
