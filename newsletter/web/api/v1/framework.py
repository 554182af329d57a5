"""The little framework of /api/v1: a table of endpoints (method, path, scope, the body and
query Structs, the response), each request answered the same way:

1. the path's method, else 405; a bearer token (401), its scope (403), its rate (429 with
   Retry-After; ``[api] requests_per_minute`` per token, per process);
2. the query string and the JSON body decoded into their Structs (415 for another media
   type, 413 beyond MAX_BODY, 422 naming the field for a wrong type, an unknown field...);
3. the handler, in a worker thread inside one transaction (writes) or a read-only one;
4. writes recorded in the audit log (who, what, when, from where, the status);
5. errors as RFC 9457 problem documents: our errors by kind, anything else a 500 that is
   logged (a bug), never a traceback to the client.

The OpenAPI document (openapi.py) is made from the same table, so it lists every route.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router

from ....config import Settings
from ....errors import (
    AuthError,
    ContentError,
    InvalidInputError,
    NewsletterError,
    NotFoundError,
    RateLimitedError,
    StoreError,
)
from ....tokens import audit
from ....tokens import service as tokens
from ...state import WebApp, web_app
from .schemas import Problem

log = logging.getLogger("newsletter.api")
PREFIX = "/api/v1"
MAX_BODY = 256 * 1024
OUTER_LIMIT = 16 * 1024 * 1024  # beyond this Starlette itself refuses (413, plain text)
PROBLEM = "application/problem+json"
_FIELD = re.compile(r" - at `\$\.?([^`]*)`$")


class ApiError(Exception):
    """An answer other than success, raised anywhere while handling a request."""

    def __init__(self, status: int, title: str, detail: str = "", *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.field = status, title, detail, field
        self.headers = headers or {}


@dataclass
class Call:
    """What a handler gets: its session, the token's name, the settings, the path
    parameters, the decoded query and body, the client address."""

    session: Session
    actor: str
    settings: Settings
    params: dict[str, Any]
    query: Any
    body: Any
    ip: str
    web: WebApp
    target: str = ""  # what the audit log names (set by write handlers)
    after: list[Callable[[], Any]] = field(default_factory=list)  # to run after the commit


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # as Starlette writes it: /subscribers/{subscriber_id:int}
    handler: Callable[[Call], Any]
    scope: str
    summary: str
    response: Any
    status: int
    body: type | None
    query: type | None
    media: str = "application/json"

    @property
    def writes(self) -> bool:
        return self.method != "GET"

    @property
    def openapi_path(self) -> str:
        return PREFIX + re.sub(r"\{(\w+):\w+\}", r"{\1}", self.path)


class RateLimiter:
    """A sliding window of one minute per token, in this process."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def check(self, key: str, per_minute: int) -> None:
        now = time.monotonic()
        hits = self._hits[key]
        while hits and now - hits[0] >= 60:
            hits.popleft()
        if len(hits) >= per_minute:
            retry = max(1, int(60 - (now - hits[0])) + 1)
            raise ApiError(429, "Too Many Requests",
                           f"more than {per_minute} requests a minute with this token",
                           headers={"Retry-After": str(retry)})  # fmt: skip
        hits.append(now)


class Api:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        response: Any,
        status: int = 200,
        body: type | None = None,
        query: type | None = None,
        media: str = "application/json",
    ) -> Callable[[Callable[[Call], Any]], Callable[[Call], Any]]:
        def register(handler: Callable[[Call], Any]) -> Callable[[Call], Any]:
            summary = (handler.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
            self.endpoints.append(Endpoint(method, path, handler, scope, summary, response,
                                           status, body, query, media))  # fmt: skip
            return handler

        return register

    def router(self, extra: list[BaseRoute]) -> Router:
        """The routes under PREFIX: one Route per path (the method is chosen here, so a wrong
        one is a 405 problem), ``extra`` (the OpenAPI document), and a problem 404 for the
        rest."""
        by_path: dict[str, dict[str, Endpoint]] = defaultdict(dict)
        for e in self.endpoints:
            by_path[e.path][e.method] = e
        routes: list[BaseRoute] = [*extra]
        limiter = RateLimiter()  # one per app
        for path, methods in by_path.items():
            routes.append(Route(path, self._dispatcher(methods, limiter), methods=_ALL_METHODS))
        return Router(routes=routes, default=_not_found)

    def _dispatcher(
        self, methods: dict[str, Endpoint], limiter: RateLimiter
    ) -> Callable[[Request], Any]:
        async def dispatch(request: Request) -> Response:
            endpoint = methods.get(request.method)
            if endpoint is None:
                allowed = ", ".join(sorted(methods))
                return problem(405, "Method Not Allowed", f"use {allowed}",
                               headers={"Allow": allowed})  # fmt: skip
            return await self._handle(endpoint, request, limiter)

        return dispatch

    async def _handle(self, endpoint: Endpoint, request: Request, limiter: RateLimiter) -> Response:
        web = web_app(request)
        ip = request.client.host if request.client else ""
        who: dict[str, Any] = {}  # the token, once known (for the audit of a refused write)
        action = f"{endpoint.method} {request.url.path}"[:200]
        try:
            presented = _bearer(request)
            query = _query(endpoint, request)
            body = await _body(endpoint, request)
            # The token, its scope and rate, and the handler: one transaction.
            args = (endpoint, presented, limiter, who, web, dict(request.path_params), query,
                    body, ip, action)  # fmt: skip
            run = web.run if endpoint.writes else web.read
            result, after = await run(_invoke, *args)
            for task in after:
                await task()
        except ApiError as exc:
            await self._audit_failure(web, endpoint, who.get("name", ""), action, ip, exc.status)
            return problem(exc.status, exc.title, exc.detail, field=exc.field,
                           headers=exc.headers)  # fmt: skip
        except NewsletterError as exc:
            status, title = _status_of(exc)
            if status >= 500:
                log.error("api %s: %s", action, exc)
            await self._audit_failure(web, endpoint, who.get("name", ""), action, ip, status)
            retry = (
                {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitedError) else {}
            )
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else retry
            return problem(status, title, str(exc), headers=headers)
        if endpoint.media != "application/json":
            return Response(result, status_code=endpoint.status, media_type=endpoint.media)
        if endpoint.status == 204:
            return Response(status_code=204)
        status = endpoint.status
        if isinstance(result, tuple):  # (status, body): e.g. 200 for a subscriber who exists
            status, result = result
        return Response(msgspec.json.encode(result), status_code=status,
                        media_type="application/json")  # fmt: skip

    async def _audit_failure(
        self, web: WebApp, endpoint: Endpoint, actor: str, action: str, ip: str, status: int
    ) -> None:
        """A refused write is in the audit log too (who tried what); not the 401s of no one."""
        if not endpoint.writes or not actor:
            return
        try:
            await web.run(lambda s: audit.record(s, actor=actor, action=action, target="",
                                                 status=status, ip=ip))  # fmt: skip
        except NewsletterError:
            log.error("api: could not write the audit entry of %s", action)


_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _bearer(request: Request) -> str:
    """The presented token (no database yet). Raises AuthError (401) without one."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise AuthError("send the token as Authorization: Bearer TOKEN")
    return presented.strip()


def _invoke(
    session: Session,
    endpoint: Endpoint,
    presented: str,
    limiter: RateLimiter,
    who: dict[str, Any],
    web: WebApp,
    params: dict[str, Any],
    query: Any,
    body: Any,
    ip: str,
    action: str,
) -> tuple[Any, list[Callable[[], Any]]]:
    token = tokens.authenticate(session, presented)
    who["name"] = token.name
    if endpoint.scope not in token.scopes:
        raise ApiError(403, "Forbidden", f"this token lacks the scope {endpoint.scope!r}")
    limiter.check(token.name, web.settings.api.requests_per_minute)
    call = Call(session, token.name, web.settings, params, query, body, ip, web)
    if tokens.needs_touch(token):  # last_used_at, written at most once a minute
        call.after.append(lambda: web.run(tokens.touch, token.id))
    result = endpoint.handler(call)
    if endpoint.writes:
        status = result[0] if isinstance(result, tuple) else endpoint.status
        audit.record(session, actor=token.name, action=action, target=call.target,
                     status=status, ip=ip)  # fmt: skip
    return result, call.after


def _query(endpoint: Endpoint, request: Request) -> Any:
    params = dict(request.query_params)
    if endpoint.query is None:
        if params:
            raise ApiError(400, "Bad Request", "this endpoint takes no query parameters")
        return None
    try:
        return msgspec.convert(params, endpoint.query, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


async def _body(endpoint: Endpoint, request: Request) -> Any:
    if endpoint.body is None:
        return None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, "Unsupported Media Type", "send JSON (Content-Type: application/json)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, "Content Too Large", f"the body is larger than {MAX_BODY // 1024} KB")
    raw = bytearray()
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise ApiError(413, "Content Too Large",
                               f"the body is larger than {MAX_BODY // 1024} KB")  # fmt: skip
    except ApiError:
        raise
    except Exception:  # the client went away, or Starlette's own limit
        raise ApiError(400, "Bad Request", "the body could not be read") from None
    try:
        return msgspec.json.decode(bytes(raw), type=endpoint.body)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    except msgspec.DecodeError:
        raise ApiError(400, "Bad Request", "the body is not valid JSON") from None


def _invalid(exc: msgspec.ValidationError) -> ApiError:
    """A validation error, with the field it is about."""
    text = str(exc)
    match = _FIELD.search(text)
    name = match.group(1) if match else None
    detail = _FIELD.sub("", text)
    if "unknown field" in detail:
        name = re.search(r"`([^`]*)`", detail).group(1) if "`" in detail else name  # type: ignore[union-attr]
    if name:
        detail = f"{name}: {detail}"
    return ApiError(422, "Unprocessable Content", detail, field=name or None)


def _status_of(exc: NewsletterError) -> tuple[int, str]:
    if isinstance(exc, AuthError):
        return exc.status, "Unauthorized" if exc.status == 401 else "Forbidden"
    if isinstance(exc, NotFoundError):
        return 404, "Not Found"
    if isinstance(exc, RateLimitedError):
        return 429, "Too Many Requests"
    if isinstance(exc, StoreError):
        return 503, "Service Unavailable"
    if isinstance(exc, ContentError):
        return 422, "Unprocessable Content"
    if isinstance(exc, InvalidInputError):
        return 422, "Unprocessable Content"
    return 400, "Bad Request"


def problem(
    status: int,
    title: str,
    detail: str = "",
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = Problem(title=title, status=status, detail=detail, field=field)
    return Response(msgspec.json.encode(body), status_code=status, media_type=PROBLEM,
                    headers=headers)  # fmt: skip


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    await problem(404, "Not Found", "no such API route (see /api/v1/openapi.json)")(
        scope, receive, send
    )
