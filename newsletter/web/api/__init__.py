"""The JSON API (today the sign-up, ``POST /api/subscribe``): handlers that answer in JSON,
errors as ``{"error": ...}``.

``routes(web)`` is what the app factory mounts: behind CORS for ``web.cors_origins`` when
some are configured (a blog on another origin posting from a script).
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount, Route, Router

from ...config import WebSettings
from .subscribe import api_subscribe


def routes(web: WebSettings) -> list[BaseRoute]:
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
