"""Bounces and complaints that come back after sending (email checklist items 24-27).

A relay almost always answers 250; the failures come back later as messages to the
envelope sender: delivery status notifications (RFC 3464), feedback reports (RFC 5965,
complaints) and bounces in older, non-standard formats. This package reads them from the
return mailbox and applies the suppression rules.

    verp       the signed per-delivery token in MAIL FROM (used by the dispatcher)
    parse      bytes -> Report: DSN, ARF, non-standard (flufl.bounce), auto-replies
    sources    Maildir, mbox, IMAP: what to read and how to mark it handled
    record     tie a report to a delivery and a subscriber; the rules; events
    process    one run over a source (`newsletter bounces process`, the scheduler job)
    history    `newsletter bounces ls`, bounce counts of an issue

Errors: ``BounceSourceError`` (a NewsletterError) when the source cannot be read.
"""

from __future__ import annotations

from ..store.bounces import issue_counts
from .history import iter_bounces
from .parse import Failure, Report, parse_report
from .process import Summary, process, process_spec, run_scheduled
from .sources import BounceSourceError, open_source

__all__ = [
    "BounceSourceError",
    "Failure",
    "Report",
    "Summary",
    "issue_counts",
    "iter_bounces",
    "open_source",
    "parse_report",
    "process",
    "process_spec",
    "run_scheduled",
]
