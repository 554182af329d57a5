"""The audit log: every write through the API (who: the token's name; what: method and path
and the object; when; from where; the answer's status). Read with `newsletter audit`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store.models import AuditEntry, utcnow


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    status: int,
    ip: str,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            at=utcnow(),
            actor=actor[:120],
            action=action[:200],
            target=target[:300],
            status=status,
            ip=ip[:64],
            detail=detail or {},
        )
    )


def entries(
    session: Session, *, since: datetime | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "status": e.status,
            "ip": e.ip,
            "detail": e.detail,
        }
        for e in session.scalars(query)
    ]
