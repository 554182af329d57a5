"""tracking: issue links, click and open events, unsubscribes per issue, do-not-track

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 20:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "issue_links",
        sa.Column("issue_id", ID, nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_links_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issue_id", "idx", name=op.f("pk_issue_links")),
    )
    op.create_table(
        "tracking_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("issue_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("link_idx", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("machine", sa.String(length=16), nullable=False),
        sa.Column("visitor", sa.String(length=32), nullable=False),
        sa.Column("subscriber_id", ID, nullable=True),
        sa.CheckConstraint("kind IN ('click', 'open')", name=op.f("ck_tracking_events_kind")),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_tracking_events_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_tracking_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_events")),
    )
    op.create_index("ix_tracking_events_issue_id", "tracking_events", ["issue_id", "kind", "at"])
    op.create_index("ix_tracking_events_subscriber_id", "tracking_events", ["subscriber_id"])
    op.create_index("ix_tracking_events_at", "tracking_events", ["at"])
    op.create_table(
        "unsubscribes",
        sa.Column("id", ID, nullable=False),
        sa.Column("issue_id", ID, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_unsubscribes_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unsubscribes")),
    )
    op.create_index("ix_unsubscribes_issue_id", "unsubscribes", ["issue_id"])
    # A plain ADD COLUMN (SQLite has it for a column with a default): a batch operation
    # would copy the table and lose its expression index (ix_subscribers_token_selector).
    op.add_column(
        "subscribers",
        sa.Column("no_tracking", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("no_tracking")
    op.drop_index("ix_unsubscribes_issue_id", table_name="unsubscribes")
    op.drop_table("unsubscribes")
    op.drop_index("ix_tracking_events_at", table_name="tracking_events")
    op.drop_index("ix_tracking_events_subscriber_id", table_name="tracking_events")
    op.drop_index("ix_tracking_events_issue_id", table_name="tracking_events")
    op.drop_table("tracking_events")
    op.drop_table("issue_links")
