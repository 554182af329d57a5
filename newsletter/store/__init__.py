"""The store: engine and session factory, models, per-entity queries and migrations."""

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
