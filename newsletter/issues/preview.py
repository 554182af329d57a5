"""Previews of an issue: the HTML and the .eml for a sample subscriber, written to files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audiences import rules
from ..compose import PreparedIssue, Recipient
from ..errors import InvalidInputError
from ..store.models import Issue, Subscriber

# Stands in when the audience is empty, so a preview always works.
SAMPLE = Recipient(subscriber_id=0, email="reader@example.com", name="Ada", token="preview")


@dataclass(frozen=True)
class Preview:
    html_path: Path
    eml_path: Path
    recipient: Recipient
    size: int  # bytes of the HTML part


def sample_recipient(session: Session, issue: Issue) -> Recipient:
    """The first active subscriber in the issue's audience, or a made-up reader."""
    stmt = select(Subscriber).where(rules.audience(session, issue)).order_by(Subscriber.id)
    sub = session.scalars(stmt.limit(1)).first()
    if sub is None:
        return SAMPLE
    return Recipient(subscriber_id=sub.id, email=sub.email, name=sub.name, token=sub.token)


def write_preview(prepared: PreparedIssue, recipient: Recipient, out_dir: Path) -> Preview:
    """Write issue-<id>.html and issue-<id>.eml into ``out_dir``."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        html = prepared.html_for(recipient)
        stem = f"issue-{prepared.issue_id}"
        html_path, eml_path = out_dir / f"{stem}.html", out_dir / f"{stem}.eml"
        html_path.write_text(html, encoding="utf-8")
        eml_path.write_bytes(prepared.message_bytes(recipient))
    except OSError as exc:
        raise InvalidInputError(f"cannot write the preview to {out_dir}: {exc.strerror}") from exc
    return Preview(html_path, eml_path, recipient, len(html.encode()))
