"""The store: engine and session factory, models, migrations, and one module per table that
owns its SQL and every PostgreSQL/SQLite difference (deliveries, imports, domains, secrets,
bounces, rate limits, issues' send-rate cursor, subscribers, the scheduler's lock).

The feature packages above keep the rules (what a claim means, what an import does) and
call these with their own Session or Connection; nothing here commits. Raw SQL text and
dialect checks appear nowhere else (`lint-imports` keeps the store below everything but
config and errors).
"""

from .engine import connect, lean_transaction, session_factory, writer_sessions
from .migrate import current_revision, head_revision, upgrade

__all__ = [
    "connect",
    "current_revision",
    "head_revision",
    "lean_transaction",
    "session_factory",
    "upgrade",
    "writer_sessions",
]
