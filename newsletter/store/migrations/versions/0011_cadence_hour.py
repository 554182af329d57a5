"""each reader's cadence and hour: memberships.cadence, subscribers.timezone, the digest
queue, and an issue's cadence and local send time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 23:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMNs (nullable, no constraint): no batch copy of the big tables.
    op.add_column("subscribers", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("memberships", sa.Column("cadence", sa.String(length=16), nullable=True))
    op.add_column("issues", sa.Column("cadence", sa.String(length=16), nullable=True))
    op.add_column("issues", sa.Column("local_time", sa.String(length=5), nullable=True))
    op.add_column("issues", sa.Column("local_within", sa.Integer(), nullable=True))
    op.add_column("issues", sa.Column("local_zone", sa.String(length=64), nullable=True))
    op.create_table(
        "digest_queue",
        sa.Column("id", ID, nullable=False),
        sa.Column("list_id", ID, nullable=False),
        sa.Column("subscriber_id", ID, nullable=False),
        sa.Column("post_id", ID, nullable=False),
        sa.Column("cadence", sa.String(length=16), nullable=False),
        sa.Column("queued_at", WHEN, nullable=False),
        sa.Column("issue_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_digest_queue_list_id_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"],
            name=op.f("fk_digest_queue_subscriber_id_subscribers"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_digest_queue_post_id_posts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_digest_queue_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_queue")),
        sa.UniqueConstraint(
            "list_id", "subscriber_id", "post_id", name=op.f("uq_digest_queue_list_id")
        ),
    )  # fmt: skip
    op.create_index("ix_digest_queue_waiting", "digest_queue", ["list_id", "cadence", "issue_id"])
    op.create_index("ix_digest_queue_issue", "digest_queue", ["issue_id", "subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_digest_queue_issue", table_name="digest_queue")
    op.drop_index("ix_digest_queue_waiting", table_name="digest_queue")
    op.drop_table("digest_queue")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("local_zone")
        batch_op.drop_column("local_within")
        batch_op.drop_column("local_time")
        batch_op.drop_column("cadence")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("cadence")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("timezone")
