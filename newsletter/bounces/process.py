"""Processing a bounce source once: read, parse, record, mark.

    process(source, sessions, settings, dry_run=False) -> Summary
    process_spec(spec, sessions, settings, base_dir=..., dry_run=False) -> Summary
    run_scheduled(settings, sessions) -> Summary | None     the scheduler's job

Each message is recorded in a transaction of its own, and only after the commit is it
marked in the mailbox (moved, flagged); a crash in between leaves it unmarked, and the next
run sees that its report is already in the database. ``dry_run`` records everything in one
transaction that is rolled back, and marks nothing: the summary says what would happen.
"""

from __future__ import annotations

import email.policy
import logging
import re
from dataclasses import asdict, dataclass, field
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ..config import SendingSettings, Settings
from ..errors import NewsletterError, NotFoundError
from ..issues import guard
from ..store.bounces import issue_counts
from ..store.models import SUPPRESSED_STATUSES, Delivery, Issue
from ..subscribers.optin import subscriber_by_token
from ..subscribers.service import unsubscribe
from . import verp
from .parse import parse_report
from .record import Recorded, record_report
from .sources import Source, open_source

log = logging.getLogger("newsletter.bounces")


@dataclass
class Summary:
    """What one run found. Counts are of messages, except ``hard``, ``soft`` and
    ``complaints`` (of recipients reported) and ``changes`` (subscribers whose status
    changed: ``{"subscriber_id", "email", "status", "rule"}``)."""

    source: str
    dry_run: bool = False
    messages: int = 0
    recorded: int = 0
    not_bounces: int = 0
    duplicates: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    unmatched: int = 0
    unsubscribed: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    paused: list[int] = field(default_factory=list)  # issues paused for their complaint rate

    def add(self, recorded: Recorded) -> None:
        self.messages += 1
        if recorded.outcome == "ignored":
            self.not_bounces += 1
            return
        if recorded.outcome == "duplicate":
            self.duplicates += 1
            return
        self.recorded += 1
        self.hard += recorded.kinds.count("hard")
        self.soft += recorded.kinds.count("soft")
        self.complaints += recorded.kinds.count("complaint")
        self.unmatched += recorded.unmatched
        self.changes += [asdict(c) for c in recorded.changes]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for a log or a terminal."""
        verb = "Would process" if self.dry_run else "Processed"
        bounced = sum(1 for c in self.changes if c["status"] == "bounced")
        complained = sum(1 for c in self.changes if c["status"] == "complained")
        return (
            f"{verb} {self.messages} message(s) from {self.source}: {self.hard} hard, "
            f"{self.soft} soft, {self.complaints} complaint(s), {self.unmatched} unmatched; "
            f"{self.not_bounces} not a bounce (left alone), {self.duplicates} seen before; "
            f"{bounced} subscriber(s) bounced, {complained} complained; "
            f"{self.unsubscribed} unsubscribed by email."
            + (
                f" Paused for complaints: issue {', '.join(map(str, self.paused))}."
                if self.paused
                else ""
            )
        )


def pause_for_complaints(session: Session, issue_id: int, settings: SendingSettings) -> str:
    """Pause a sending issue whose complaint rate passed ``pause_complaint_rate``; returns
    the reason, or "" when it goes on."""
    issue = session.get(Issue, issue_id)
    if issue is None or issue.status != "sending":
        return ""
    complaints = issue_counts(session, issue_id)["complaint"]
    sent = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == "sent")
    )
    reason = guard.complaint_pause_reason(complaints, sent or 0, settings)
    return reason if guard.pause_for(session, issue, reason) else ""


def process(
    source: Source, sessions: sessionmaker[Session], settings: Settings, *, dry_run: bool = False
) -> Summary:
    """Process every unhandled message of ``source`` and close it.

    Raises BounceSourceError when the source fails (what was processed before stays
    processed), StoreError / SQLAlchemy errors when the database does.
    """
    summary = Summary(source=source.name, dry_run=dry_run)
    rules = settings.bounces
    try:
        if dry_run:  # everything in one transaction, rolled back
            with sessions() as session:
                try:
                    codec = verp.codec_for(settings, session)
                    for item in source.messages():
                        if _unsubscribe_request(session, item.raw, summary):
                            continue
                        report = parse_report(item.raw)
                        summary.add(
                            record_report(session, report, rules=rules, codec=codec,
                                          source=source.name)
                        )  # fmt: skip
                finally:
                    session.rollback()
            return summary
        with sessions() as session, session.begin():
            codec = verp.codec_for(settings, session)
        for item in source.messages():
            with sessions() as session, session.begin():
                handled = _unsubscribe_request(session, item.raw, summary)
            if handled:
                source.done(item)
                continue
            report = parse_report(item.raw)
            with sessions() as session, session.begin():
                recorded = record_report(
                    session, report, rules=rules, codec=codec, source=source.name
                )
            summary.add(recorded)
            for issue_id in recorded.complained_issues:
                with sessions() as session, session.begin():
                    reason = pause_for_complaints(session, issue_id, settings.sending)
                if reason:
                    summary.paused.append(issue_id)
                    log.warning("issue.paused id=%s reason=%s", issue_id, reason)
            if recorded.outcome == "ignored":
                source.skip(item)
            else:
                source.done(item)
            for change in recorded.changes:
                log.info("bounces.status subscriber=%s status=%s rule=%r",
                         change.subscriber_id, change.status, change.rule)  # fmt: skip
    finally:
        source.close()
    return summary


_UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*unsubscribe-([A-Za-z0-9_-]{16,64})\s*$", re.IGNORECASE)


def _unsubscribe_request(session: Session, raw: bytes, summary: Summary) -> bool:
    """A mail to the List-Unsubscribe mailto address (subject ``unsubscribe-<token>``, as
    the header offers it): unsubscribe the token's owner. True if the message was one (a
    forged or unknown token counts as handled and changes nothing)."""
    subject = (
        BytesParser(policy=email.policy.default)
        .parsebytes(raw, headersonly=True)
        .get("Subject", "")
    )
    match = _UNSUBSCRIBE_SUBJECT.match(str(subject))
    if match is None:
        return False
    summary.messages += 1
    try:
        sub = subscriber_by_token(session, match.group(1))
    except NotFoundError:
        log.info("bounces.unsubscribe_unknown_token")
        return True
    if sub.status not in SUPPRESSED_STATUSES:
        unsubscribe(session, sub, source="mailto")
        summary.unsubscribed += 1
        log.info("bounces.unsubscribed subscriber=%s via=mailto", sub.id)
    return True


def process_spec(
    spec: str,
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    base_dir: Path | str | None = None,
    dry_run: bool = False,
) -> Summary:
    """Open the source ``spec`` (a Maildir or mbox path, relative to ``base_dir``, default the
    config file's folder; or an imap(s):// URL) and process it. Raises BounceSourceError."""
    base = settings.base_dir if base_dir is None else base_dir
    source = open_source(spec, settings.bounces, base_dir=base)
    return process(source, sessions, settings, dry_run=dry_run)


def run_scheduled(settings: Settings, sessions: sessionmaker[Session]) -> Summary | None:
    """The scheduler's job: process ``[bounces] source`` once, if one is configured.

    Never raises for what a user can cause (an unreachable IMAP server, a missing folder):
    that is logged and the next run tries again. Returns the summary, or None when nothing
    ran.
    """
    spec = settings.bounces.source
    if not spec:
        return None
    try:
        summary = process_spec(spec, sessions, settings)
    except NewsletterError as exc:
        log.error("bounces.error source=%s error=%s", spec, exc)
        return None
    log.info("bounces.processed %s", summary.line())
    return summary
