"""Sequence use cases: create, steps (add, edit, remove), list, show, pause and resume,
enrol by hand, preview, and who missed a step. Each takes the caller's Session and does not
commit. Raises NotFoundError (sequence, list, step, subscriber) and InvalidInputError (a
bad name, trigger, delay or window), ContentError (a step file that cannot be used).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from collections.abc import Sequence as Seq
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Settings
from ..durations import spoken
from ..errors import InvalidInputError, NotFoundError
from ..issues import report as issue_report
from ..issues import status as issue_status
from ..store import sequences as store
from ..store import tracking as store_tracking
from ..store.models import Issue, Sequence, SequenceStep, Subscriber, utcnow
from ..subscribers.service import find_subscriber, get_list
from ..subscribers.tags import normalise_tag
from . import steps as step_files

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
TRIGGERS = ("confirm", "join", "tag:NAME")


def normalise_trigger(text: str) -> str:
    """ "confirm", "join" or "tag:NAME" (the tag's stored form). Raises InvalidInputError."""
    value = text.strip()
    if value.lower() in ("confirm", "join"):
        return value.lower()
    if value.lower().startswith("tag:") and value[4:].strip():
        return f"tag:{normalise_tag(value[4:])}"
    raise InvalidInputError(f"--trigger {text!r}: use confirm, join or tag:NAME")


def create_sequence(session: Session, name: str, list_name: str, trigger: str) -> Sequence:
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"sequence name {name!r}: use letters, digits, '.', '-' and '_' (at most 100)"
        )
    if session.scalar(select(Sequence.id).where(Sequence.name == name)) is not None:
        raise InvalidInputError(f"a sequence named {name!r} exists already")
    mlist = get_list(session, list_name)
    sequence = Sequence(name=name, list_id=mlist.id, trigger=normalise_trigger(trigger))
    session.add(sequence)
    session.flush()
    return sequence


def get_sequence(session: Session, name: str) -> Sequence:
    sequence = session.scalar(select(Sequence).where(Sequence.name == name))
    if sequence is None:
        known = ", ".join(session.scalars(select(Sequence.name).order_by(Sequence.name)))
        hint = f" (sequences: {known})" if known else " (newsletter sequence create NAME --list L)"
        raise NotFoundError(f"no sequence named {name!r}{hint}")
    return sequence


def list_sequences(session: Session) -> list[Sequence]:
    return list(session.scalars(select(Sequence).order_by(Sequence.name)))


def get_step(session: Session, sequence: Sequence, number: int) -> SequenceStep:
    step = session.scalar(
        select(SequenceStep).where(
            SequenceStep.sequence_id == sequence.id,
            SequenceStep.position == number,
            SequenceStep.removed_at.is_(None),
        )
    )
    if step is None:
        have = ", ".join(str(s.position) for s in store.steps(session, sequence.id)) or "none"
        raise NotFoundError(f"sequence {sequence.name!r} has no step {number} (steps: {have})")
    return step


def add_step(
    session: Session,
    settings: Settings,
    name: str,
    path: Path,
    *,
    after: str,
    window: str | None = None,
) -> SequenceStep:
    """Add a step at the end, from a Markdown file, ``after`` the step before it (or after
    enrolling, for the first). Its issue is made and opened at once; readers reach it when
    the daemon finds them due."""
    sequence = get_sequence(session, name)
    delay = step_files.delay(after)
    window = step_files.window(window)
    email = step_files.load_step(path, settings)
    now = utcnow()
    issue = Issue(
        kind="post",
        subject=email.subject,
        preheader=email.preheader,
        list_id=sequence.list_id,
        status="paused" if sequence.paused else "sending",
        started_at=now,
        archive=False,  # a step is not an edition: its web view needs the signed link
        sequence_id=sequence.id,
        audience_rule={},
    )
    session.add(issue)
    session.flush()
    step = SequenceStep(
        sequence_id=sequence.id,
        position=store.next_position(session, sequence.id),
        delay_seconds=int(delay.total_seconds()),
        window=window,
        subject=email.subject,
        preheader=email.preheader,
        template=email.template,
        html=email.html,
        source=str(path),
        issue_id=issue.id,
    )
    session.add(step)
    session.flush()
    return step


def edit_step(
    session: Session,
    settings: Settings,
    name: str,
    number: int,
    *,
    path: Path | None = None,
    after: str | None = None,
    window: str | None = None,
) -> SequenceStep:
    """Change a step's content (from its file again, or another), delay or window. Readers
    who have not received it yet get the new version; a new delay moves the due time of
    readers waiting for it."""
    sequence = get_sequence(session, name)
    step = get_step(session, sequence, number)
    if path is not None or (after is None and window is None):
        source = path or Path(step.source)
        email = step_files.load_step(source, settings)
        step.subject, step.preheader = email.subject, email.preheader
        step.template, step.html, step.source = email.template, email.html, str(source)
        issue = session.get_one(Issue, step.issue_id)
        issue.subject, issue.preheader = email.subject, email.preheader
        issue.updated_at = utcnow()  # workers that rendered it render it again
    if after is not None:
        seconds = int(step_files.delay(after).total_seconds())
        store.shift_due(session, sequence.id, step.position,
                        timedelta(seconds=seconds - step.delay_seconds))  # fmt: skip
        step.delay_seconds = seconds
    if window is not None:
        step.window = step_files.window(window)
    session.flush()
    return step


def remove_step(session: Session, name: str, number: int) -> SequenceStep:
    """Take a step out: readers who have not reached it go on to the next one. Its ledger
    (who received it) stays."""
    sequence = get_sequence(session, name)
    step = get_step(session, sequence, number)
    step.removed_at = utcnow()
    session.flush()
    return step


def set_paused(
    session: Session, settings: Settings, name: str, paused: bool
) -> tuple[Sequence, int]:
    """Pause (due steps wait) or resume (they go, but those more than [sequences] max_late
    late are skipped). Returns the sequence and how many waiting messages were skipped."""
    sequence = get_sequence(session, name)
    issues = _step_issues(session, sequence)
    skipped = 0
    if paused:
        for issue in issues:
            if issue.status == "sending":
                issue_status.change(issue, "paused")
    else:
        now = utcnow()
        before = now - settings.sequences.max_late_span()
        skipped = store.stale_pending(session, [i.id for i in issues], before, now)
        for issue in issues:
            if issue.status == "paused":
                issue_status.change(issue, "sending")
    sequence.paused = paused
    session.flush()
    return sequence, skipped


def _step_issues(session: Session, sequence: Sequence) -> list[Issue]:
    return list(session.scalars(select(Issue).where(Issue.sequence_id == sequence.id)))


def enrol(
    session: Session, name: str, who: Seq[str], *, restart: bool = False
) -> tuple[int, list[str]]:
    """Put readers into a sequence by hand (they must be active members of its list).
    Returns (how many were enrolled or restarted, the addresses that could not be)."""
    sequence = get_sequence(session, name)
    ids, refused = [], []
    for ref in who:
        sub = find_subscriber(session, ref)
        if sub.status != "active" or sequence.list_id not in {m.id for m in sub.lists}:
            refused.append(f"{sub.email} ({sub.status}, not an active member of the list)")
            continue
        ids.append(sub.id)
    if not ids:
        return 0, refused
    n = store.enroll(session, sequence, Subscriber.id.in_(ids), utcnow(), restart=restart)
    return n, refused


# --- reports -------------------------------------------------------------------------------


def show(session: Session, name: str) -> dict[str, Any]:
    """The sequence and, per step: waiting, sent, skipped, failed and clicks (when tracked)."""
    sequence = get_sequence(session, name)
    steps = store.steps(session, sequence.id)
    ledgers = store.delivery_counts(session, [s.issue_id for s in steps])
    waiting_at = store.waiting_by_position(session, sequence.id)
    rows = []
    for i, step in enumerate(steps):
        lower = steps[i - 1].position + 1 if i else 1
        waiting = sum(n for p, n in waiting_at.items() if lower <= p <= step.position)
        ledger = ledgers.get(step.issue_id, {})
        clicks = store_tracking.counts(session, step.issue_id, "click")
        rows.append(
            {
                "step": step.position,
                "after": spoken(step.delay_seconds),
                "after_seconds": step.delay_seconds,
                "window": step.window,
                "subject": step.subject,
                "template": step.template,
                "file": step.source,
                "issue_id": step.issue_id,
                "waiting": waiting + ledger.get("pending", 0) + ledger.get("deferred", 0)
                + ledger.get("sending", 0),
                "sent": ledger.get("sent", 0),
                "skipped": ledger.get("skipped", 0),
                "failed": ledger.get("failed", 0) + ledger.get("bounced", 0),
                "clicks": clicks.get("unique", 0),
            }
        )  # fmt: skip
    enrolled = store.enrollment_counts(session, sequence.id)
    return {
        "name": sequence.name,
        "list": sequence.mailing_list.name,
        "trigger": sequence.trigger,
        "status": "paused" if sequence.paused else "active",
        "created_at": sequence.created_at.isoformat(),
        "enrolled": sum(enrolled.values()),
        "in_progress": enrolled.get(store.ACTIVE, 0),
        "done": enrolled.get(store.DONE, 0),
        "left": enrolled.get(store.LEFT, 0),
        "steps": rows,
    }


def missed(session: Session, name: str) -> Iterator[dict[str, Any]]:
    """Who has not received a step they reached, and why (as `issue missed`, per step)."""
    sequence = get_sequence(session, name)
    for step in store.steps(session, sequence.id, removed=True):
        issue = session.get_one(Issue, step.issue_id)
        for row in issue_report.missed(session, issue):
            yield {"step": step.position, **row}


def step_issue(session: Session, name: str, number: int) -> Issue:
    """The issue a step is sent through (for previews)."""
    sequence = get_sequence(session, name)
    return session.get_one(Issue, get_step(session, sequence, number).issue_id)


def when(at: datetime | None) -> str | None:
    return at.isoformat() if at else None
