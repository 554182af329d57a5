"""The redirector's logic: what a tracked URL names, where it goes, and what is recorded.

Everything a request needs is in memory after the first request of an issue (the key, the
issue's links), so a click costs a MAC check, a dictionary lookup and a queued ``Hit``; the
web layer (newsletter/web/pages/track.py) only translates HTTP.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from ..config import TrackingSettings
from ..store import tracking as store
from . import plan, robots
from .recorder import Recorder, hit_now
from .tokens import Signer

MAX_CACHED_ISSUES = 512


@dataclass(frozen=True, slots=True)
class Target:
    """What a verified token names."""

    issue_id: int
    link_idx: int | None  # None for the open pixel
    subscriber_id: int


class Redirector:
    """Parses tracked URLs, finds their links and records hits (through a ``Recorder``)."""

    def __init__(self, settings: TrackingSettings, sessions: sessionmaker[Session]) -> None:
        self._signer: Signer | None = None
        self._links: dict[int, dict[int, str]] = {}
        self._lock = threading.Lock()
        self.recorder = Recorder(sessions, self.signer, per_subscriber=settings.per_subscriber)

    # -- what needs the database once -----------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._signer is not None

    def load_key(self, session: Session) -> None:
        """Read (or make) the deployment's tracking key."""
        with self._lock:
            if self._signer is None:
                self._signer = plan.signer(session)

    def signer(self) -> Signer:
        if self._signer is None:
            raise RuntimeError("Redirector.load_key has not run")
        return self._signer

    def has_links(self, issue_id: int) -> bool:
        return issue_id in self._links

    def load_links(self, session: Session, issue_id: int) -> None:
        """Read an issue's links into memory (an issue never prepared has none)."""
        links = store.link_urls(session, issue_id)
        with self._lock:
            if len(self._links) >= MAX_CACHED_ISSUES:
                self._links.clear()
            self._links[issue_id] = links

    # -- per request ----------------------------------------------------------------------

    def parse(self, token: str, *, kind: str) -> Target | None:
        """The link (``kind`` "click": ``<link>.<reader>``) or pixel (``kind`` "open":
        ``<pixel>.<reader>``) a token names, or None for anything that is not ours."""
        first, dot, reader = token.partition(".")
        if not dot:
            return None
        signer = self.signer()
        if kind == "click":
            link = signer.parse_link(first)
            if link is None:
                return None
            issue_id, idx = link
        else:
            pixel_issue = signer.parse_pixel(first)
            if pixel_issue is None:
                return None
            issue_id, idx = pixel_issue, None
        subscriber_id = signer.parse_reader(issue_id, reader)
        return None if subscriber_id is None else Target(issue_id, idx, subscriber_id)

    def url(self, target: Target) -> str | None:
        """Where a click goes (after ``load_links``): the original URL; None for the pixel,
        the honeypot (which has no destination) and a link the issue does not have."""
        if not target.link_idx:
            return None
        return self._links.get(target.issue_id, {}).get(target.link_idx)

    def record(self, target: Target, method: str, headers: Mapping[str, str], *, kind: str) -> None:
        """Queue the hit with the rule the request meets by itself."""
        rule = robots.request_rule(method, headers, kind=kind)
        self.recorder.add(
            hit_now(kind, target.issue_id, target.link_idx, target.subscriber_id, rule)
        )
