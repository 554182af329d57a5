"""The HTML pages: read the request, call the core through ``WebApp.run`` (writes) or
``WebApp.read``, answer with a page.

The small ``_...(session, ...)`` functions of each module run inside one transaction: they
look the link token up first (so an unknown or tampered link is a 404 whatever else is
wrong), then check the form token (FormExpiredError, a 403), then call the use case in
``subscribers.optin``. A GET never changes anything.

``routes`` is what the app factory mounts.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from .archive import archive_feed, archive_index, archive_issue
from .confirm import confirm_page, confirm_post
from .home import home
from .preferences import preferences_erase, preferences_export, preferences_page, preferences_post
from .subscribe import subscribe_form, subscribe_page, thanks
from .track import click, pixel
from .unsubscribe import unsubscribe_page, unsubscribe_post, unsubscribe_why

routes: list[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/subscribe", subscribe_page, methods=["GET"]),
    Route("/subscribe", subscribe_form, methods=["POST"]),
    Route("/subscribe/thanks", thanks, methods=["GET"]),
    Route("/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/confirm/{token}", confirm_post, methods=["POST"]),
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_post, methods=["POST"]),
    Route("/unsubscribe/{token}/why", unsubscribe_why, methods=["POST"]),
    Route("/preferences/{token}", preferences_page, methods=["GET"]),
    Route("/preferences/{token}", preferences_post, methods=["POST"]),
    Route("/preferences/{token}/export", preferences_export, methods=["POST"]),
    Route("/preferences/{token}/erase", preferences_erase, methods=["POST"]),
    Route("/archive", archive_index, methods=["GET"]),
    Route("/archive/feed.xml", archive_feed, methods=["GET"]),  # before /archive/{slug}
    Route("/archive/{slug}", archive_issue, methods=["GET"]),
    Route("/l/{token}", click, methods=["GET", "HEAD"]),
    Route("/o/{token}", pixel, methods=["GET", "HEAD"]),
]

__all__ = ["routes"]
