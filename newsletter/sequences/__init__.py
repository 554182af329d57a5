"""Sequences: a welcome email and drip series for new readers, on the delivery ledger.

A sequence belongs to a list and starts for a reader on a trigger ("confirm", "join",
"tag:NAME"; newsletter.subscribers.enrol enrols them in the event's transaction). Each step is
a Markdown email with a delay after the one before, sent through an issue of its own that
stays open while the sequence runs: the daemon's job (advance.py) puts each due reader into
that issue's ledger, and the dispatcher sends it with everything an issue has (exactly once,
retries, bounces, tracking, the rate limit). service.py has the use cases the CLI calls.
"""
