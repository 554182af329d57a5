"""``[tracking] retention_days``: after that, an event keeps only its issue, link, time and
class; who (the subscriber, with ``per_subscriber``) and which message (the visitor hash)
are cleared."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from ..config import TrackingSettings
from ..store import tracking as store


def forget_tracked_people(session: Session, settings: TrackingSettings, *, now: datetime) -> int:
    """Clear who and which message of events older than the retention. Returns how many."""
    return store.forget_people(session, now - timedelta(days=settings.retention_days))
