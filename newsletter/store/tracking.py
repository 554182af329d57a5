"""The engagement tables: an issue's numbered links, click and open events, and
unsubscriptions counted per issue (newsletter.tracking keeps the rules)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from .dialect import insert as upsert
from .models import Issue, IssueLink, Subscriber, TrackingEvent, Unsubscribe

# -- links ------------------------------------------------------------------------------------


def save_links(session: Session, issue_id: int, urls: Sequence[str]) -> None:
    """Store the issue's links, ``urls[i]`` numbered i, unless stored already: every process
    that prepares the issue numbers them the same way, so the first one's rows stand."""
    if not urls:
        return
    stored = session.scalar(
        select(func.count()).select_from(IssueLink).where(IssueLink.issue_id == issue_id)
    )
    if stored == len(urls):
        return
    session.execute(
        upsert(session, IssueLink)
        .values([{"issue_id": issue_id, "idx": i, "url": url} for i, url in enumerate(urls)])
        .on_conflict_do_nothing(index_elements=["issue_id", "idx"])
    )


def link_urls(session: Session, issue_id: int) -> dict[int, str]:
    """index -> URL of the issue's links ({} for an issue that was never prepared)."""
    rows = session.execute(
        select(IssueLink.idx, IssueLink.url).where(IssueLink.issue_id == issue_id)
    )
    return dict(rows.all())


# -- events -----------------------------------------------------------------------------------


class Targets(NamedTuple):
    """Which of some issues and subscribers events may be written for."""

    issues: set[int]  # that exist
    subscribers: set[int]  # that exist (the erased do not)
    opted_out: set[int]  # that chose not to be tracked


def tracking_targets(session: Session, issue_ids: set[int], subscriber_ids: set[int]) -> Targets:
    """The issues and subscribers of a batch of events that exist, and who opted out."""
    issues = set(session.scalars(select(Issue.id).where(Issue.id.in_(issue_ids))))
    people = session.execute(
        select(Subscriber.id, Subscriber.no_tracking).where(Subscriber.id.in_(subscriber_ids))
    )
    subscribers, opted_out = set(), set()
    for sid, no_tracking in people:
        subscribers.add(sid)
        if no_tracking:
            opted_out.add(sid)
    return Targets(issues, subscribers, opted_out)


def add_events(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert events (dicts of TrackingEvent's columns); their ids in the same order."""
    if not rows:
        return []
    result = session.execute(insert(TrackingEvent).returning(TrackingEvent.id), list(rows))
    return list(result.scalars().all())


def mark_machine(session: Session, ids: Iterable[int], reason: str) -> None:
    """Reclassify events already written as made by a machine (a burst seen afterwards)."""
    ids = list(ids)
    if ids:
        session.execute(
            update(TrackingEvent).where(TrackingEvent.id.in_(ids)).values(machine=reason)
        )


def counts(session: Session, issue_id: int, kind: str) -> dict[str, Any]:
    """The report of one kind of event for one issue::

        {"total", "unique", "machine", "links": [{"idx", "total", "unique"}],
         "filtered": {rule: n}}

    ``total``/``unique`` count people (``unique``: distinct messages); ``machine`` counts
    clicks by machines (GET requests found by a rule); HEAD and prefetch requests are not
    clicks and appear only in ``filtered``, with every rule's count."""
    ev = TrackingEvent
    scope = (ev.issue_id == issue_id, ev.kind == kind)
    human = (*scope, ev.machine == "")
    total, unique = session.execute(
        select(func.count(), func.count(func.distinct(ev.visitor))).where(*human)
    ).one()
    by_rule = dict(
        session.execute(
            select(ev.machine, func.count()).where(*scope, ev.machine != "").group_by(ev.machine)
        ).all()
    )
    links = [
        {"idx": idx, "total": n, "unique": u}
        for idx, n, u in session.execute(
            select(ev.link_idx, func.count(), func.count(func.distinct(ev.visitor)))
            .where(*human, ev.link_idx.is_not(None))
            .group_by(ev.link_idx)
            .order_by(func.count().desc(), ev.link_idx)
        )
    ]
    machine = sum(n for rule, n in by_rule.items() if rule not in ("head", "prefetch"))
    return {
        "total": total,
        "unique": unique,
        "machine": machine,
        "links": links,
        "filtered": by_rule,
    }


def hourly(session: Session, issue_id: int, kind: str) -> list[tuple[datetime, bool]]:
    """(time, by a machine) of every GET event of one kind for one issue, oldest first."""
    rows = session.execute(
        select(TrackingEvent.at, TrackingEvent.machine)
        .where(
            TrackingEvent.issue_id == issue_id,
            TrackingEvent.kind == kind,
            TrackingEvent.machine.not_in(("head", "prefetch")),
        )
        .order_by(TrackingEvent.at)
    )
    return [(at, machine != "") for at, machine in rows]


def events_of(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    """A person's own events (only ever stored with ``per_subscriber`` on), for their data
    export: kind, issue, the link's URL, time, and whether a rule took it for a machine."""
    rows = session.execute(
        select(TrackingEvent, IssueLink.url)
        .outerjoin(
            IssueLink,
            (IssueLink.issue_id == TrackingEvent.issue_id)
            & (IssueLink.idx == TrackingEvent.link_idx),
        )
        .where(TrackingEvent.subscriber_id == subscriber_id)
        .order_by(TrackingEvent.id)
    )
    return [
        {
            "kind": e.kind,
            "issue_id": e.issue_id,
            "url": url or "",
            "at": e.at.isoformat(timespec="seconds"),
            "machine": e.machine,
        }
        for e, url in rows
    ]


def delete_events_of(session: Session, subscriber_id: int) -> int:
    """Delete a person's events (erase; the foreign key does it too). Returns how many."""
    result = session.execute(
        delete(TrackingEvent).where(TrackingEvent.subscriber_id == subscriber_id)
    )
    return result.rowcount or 0


def forget_people(session: Session, before: datetime) -> int:
    """Clear who and which message of every event older than ``before`` (retention): the
    counts stay, the unique counts of those events are frozen. Returns how many changed."""
    result = session.execute(
        update(TrackingEvent)
        .where(
            TrackingEvent.at < before,
            (TrackingEvent.visitor != "") | TrackingEvent.subscriber_id.is_not(None),
        )
        .values(visitor="", subscriber_id=None)
    )
    return result.rowcount or 0


# -- unsubscribes per issue -------------------------------------------------------------------


def add_unsubscribe(session: Session, issue_id: int | None) -> int:
    """Count an unsubscription for ``issue_id`` (None: not from an issue). Returns its id."""
    row = Unsubscribe(issue_id=issue_id)
    session.add(row)
    session.flush()
    return row.id


def set_unsubscribe_reason(session: Session, unsubscribe_id: int, reason: str) -> bool:
    """Record the answer to "why?" once. False if there is no such row or it has one."""
    result = session.execute(
        update(Unsubscribe)
        .where(Unsubscribe.id == unsubscribe_id, Unsubscribe.reason == "")
        .values(reason=reason)
    )
    return bool(result.rowcount)


def unsubscribe_counts(session: Session, issue_id: int) -> tuple[int, dict[str, int]]:
    """(unsubscriptions from this issue, {reason: n} of those who answered why)."""
    rows = session.execute(
        select(Unsubscribe.reason, func.count())
        .where(Unsubscribe.issue_id == issue_id)
        .group_by(Unsubscribe.reason)
    )
    by_reason = dict(rows.all())
    return sum(by_reason.values()), {r: n for r, n in by_reason.items() if r}
