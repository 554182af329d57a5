"""Request input, bounded and typed before any handler uses it.

Every string from a request (form fields, JSON values, path parameters, query values) goes
through ``clean``, which keeps what XML 1.0 allows (``content.text.xml_safe``): NUL and the
other C0 controls but tab and line breaks, lone surrogates (which no database can store and
no encoder can write) and non-characters are removed. A JSON body is
parsed with a bound on its nesting; a path token that cannot be one of ours is a plain 404
before the store is asked. What is left is the core's to validate (addresses, lengths).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import traceback
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..content.text import xml_safe
from ..errors import InvalidInputError, NotFoundError

log = logging.getLogger("newsletter.web")
MAX_JSON_DEPTH = 10  # an object of lists of strings needs 2
_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,200}")


def clean(value: str) -> str:
    """``value`` without control characters (tab, CR and LF stay), lone surrogates and
    non-characters: the one rule for what is never kept, shared with the archive feed."""
    return xml_safe(value)


async def read_json(request: Request) -> Any:
    """The request's JSON body with every string cleaned. InvalidInputError for a body that
    is not UTF-8 JSON or is nested deeper than MAX_JSON_DEPTH (the body's size is bounded
    by the app's max_body_size)."""
    body = await request.body()
    try:
        data = json.loads(body)
    except RecursionError:
        raise InvalidInputError("the JSON body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("the body is not valid JSON") from None
    return _cleaned(data, 0)


def _cleaned(value: Any, depth: int) -> Any:
    if depth > MAX_JSON_DEPTH:
        raise InvalidInputError("the JSON body is nested too deeply")
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_cleaned(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {clean(k): _cleaned(v, depth + 1) for k, v in value.items()}
    if isinstance(value, float) and value != value:  # NaN: not JSON, but Python reads it
        raise InvalidInputError("the body is not valid JSON")
    return value


def path_token(request: Request, name: str = "token") -> str:
    """A token from the path: NotFoundError unless it has the shape of one of ours (URL-safe
    base64, 8 to 200 characters), so no odd value reaches a query."""
    value = request.path_params.get(name, "")
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise NotFoundError("no such link")
    return value


class UnexpectedErrorMiddleware:
    """The last net: an exception no handler knows becomes a plain 500 page (inside the
    security-headers middleware, so the page carries them) and one log line naming the
    request's route and where the code failed, without the exception's text or the path's
    values (they may hold an address or a token)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope["type"] != "http":
                raise
            frames = traceback.extract_tb(exc.__traceback__)[-3:]
            where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[::-1])
            route = "/" + scope.get("path", "").lstrip("/").split("/", 1)[0]
            log.error(
                "unexpected %s on %s %s at %s", type(exc).__name__, scope["method"], route, where
            )
            # (if the answer had started, the server refuses a second one: nothing to add)
            with contextlib.suppress(RuntimeError):
                await PlainTextResponse("Internal Server Error", status_code=500)(
                    scope, receive, send
                )
