"""Outgoing webhooks: events (a subscriber confirmed, unsubscribed, bounced…, an issue sent, a
link clicked) POSTed to the URLs `newsletter webhook add` registered, signed per the Standard
Webhooks specification, from a durable outbox (newsletter.store.outbox: written in the
event's own transaction), retried with a growing delay for a day and then disabled with a
notice. `newsletter serve` and `newsletter run` both deliver (claims with a lease, SKIP
LOCKED on PostgreSQL, so a message goes out once per attempt)."""
