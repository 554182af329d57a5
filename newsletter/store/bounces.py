"""The bounces table: reports of failed deliveries and complaints, read by issue."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import BOUNCE_KINDS, Bounce


def issue_counts(session: Session, issue_id: int) -> dict[str, int]:
    """Bounces and complaints of one issue by kind (every kind present, zeros included),
    counting each message once: ``{"hard": n, "soft": n, "complaint": n}``."""
    rows = session.execute(
        select(Bounce.kind, func.count(func.distinct(Bounce.delivery_id)))
        .where(Bounce.issue_id == issue_id)
        .group_by(Bounce.kind)
    ).all()
    counts = dict.fromkeys(BOUNCE_KINDS, 0)
    counts.update({kind: n for kind, n in rows})
    return counts
