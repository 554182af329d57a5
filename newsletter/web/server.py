"""Serving the app with uvicorn: one place for the server options `newsletter serve` and the
tests share (no proxy headers: the app reads them from ``web.trusted_proxies`` only; no
Server header; our own access log that redacts link tokens instead of uvicorn's)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from ..config import WebSettings
from ..errors import ConfigError


def uvicorn_config(
    app: ASGIApp, web: WebSettings, *, log_config: dict[str, Any] | None = None
) -> uvicorn.Config:
    """uvicorn settings for ``app``. ``log_config`` None leaves logging as it is."""
    return uvicorn.Config(
        app,
        proxy_headers=False,  # security.ClientAddressMiddleware: right-most untrusted hop
        server_header=False,
        access_log=False,
        lifespan="on",
        log_config=log_config,
        timeout_graceful_shutdown=10,
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: any free port).

    TCP_NODELAY is set on it, and so on every connection it accepts: uvicorn writes a
    response's head and body apart, and with Nagle's algorithm on the body waited for the
    client's delayed ACK, 40 ms on every request of a keep-alive connection (43 ms a GET
    before, 0.7 ms after, on loopback).

    Raises ConfigError naming the address when it cannot be bound (in use, not ours).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def serve(app: ASGIApp, web: WebSettings, *, host: str, port: int) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (requests in flight finish, up to 10 s).

    Raises ConfigError when the address cannot be bound.
    """
    sock = listen(host, port)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ours = logging.getLogger("newsletter")
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    config = uvicorn_config(app, web, log_config=uvicorn.config.LOGGING_CONFIG)
    shown = f"[{host}]" if ":" in host else host
    ours.info("listening on http://%s:%d", shown, sock.getsockname()[1])
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        ours.removeHandler(handler)
