"""The JSON APIs: the public sign-up (``POST /api/subscribe``, no token, throttled; errors as
``{"error": ...}``) and the token API under ``/api/v1`` (v1/: scoped tokens, problem
documents, its OpenAPI document at /api/v1/openapi.json).

``routes(web)`` is what the app factory mounts: behind CORS for ``web.cors_origins`` when
some are configured (a blog on another origin posting from a script).
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount, Route, Router

from ...config import WebSettings
from .subscribe import api_subscribe
from .v1 import openapi
from .v1.framework import OUTER_LIMIT, PREFIX
from .v1.openapi import DOC_PATH
from .v1.routes import api


def routes(web: WebSettings) -> list[BaseRoute]:
    v1 = Mount(
        PREFIX,
        app=api.router([Route(DOC_PATH, openapi.endpoint(api), methods=["GET"])]),
        # The API checks its own limit (MAX_BODY) and answers with a problem document; the
        # app's smaller one for forms must not answer first.
        max_body_size=OUTER_LIMIT,
    )
    return [v1, *_public(web)]


def _public(web: WebSettings) -> list[BaseRoute]:
    if not web.cors_origins:
        return [Route("/api/subscribe", api_subscribe, methods=["POST"])]
    inner = Router(routes=[Route("/subscribe", api_subscribe, methods=["POST"])])
    return [
        Mount(
            "/api",
            app=CORSMiddleware(
                inner,
                allow_origins=list(web.cors_origins),
                allow_methods=["POST"],
                allow_headers=["Content-Type"],
                max_age=600,
            ),
        )
    ]


__all__ = ["routes"]
