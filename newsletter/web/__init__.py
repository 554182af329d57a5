"""The subscriber web service (`newsletter serve`): subscribe with double opt-in, confirm,
unsubscribe (page and RFC 8058 one-click), preferences, and the public archive.

    app = create_app(settings, engine)      # an ASGI app; serve it with web.server.serve
"""

from .app import create_app

__all__ = ["create_app"]
