"""What a send needs from tracking, read from the settings and the store once per issue."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..config import Settings
from ..store import secrets
from ..store import tracking as store
from .links import LinkPlan
from .tokens import Signer

KEY_NAME = "tracking"  # the secrets table's row that signs tracking tokens


def signer(session: Session) -> Signer:
    """This deployment's token signer (its key made and stored on first use)."""
    return Signer(secrets.key(session, KEY_NAME))


def link_plan(session: Session, settings: Settings, issue_id: int, web_url: str) -> LinkPlan | None:
    """How issue ``issue_id``'s links are tracked, or None when ``[tracking]`` counts neither
    clicks nor opens. The unsubscribe, preferences and web-view (``web_url``) links stay as
    they are, and so do links to the redirector itself."""
    conf = settings.tracking
    if not conf.clicks and not conf.opens:
        return None
    base = settings.site.base_url.rstrip("/")
    keep = (f"{base}/unsubscribe/", f"{base}/preferences/", f"{base}/l/", f"{base}/o/")
    return LinkPlan(
        signer=signer(session),
        issue_id=issue_id,
        base_url=base,
        keep_prefixes=(*keep, web_url),
        clicks=conf.clicks,
        opens=conf.opens,
    )


def save_links(session: Session, plan: LinkPlan) -> None:
    """Store the links ``plan`` numbered (after the issue was prepared with it)."""
    if plan.clicks:
        store.save_links(session, plan.issue_id, plan.urls)
