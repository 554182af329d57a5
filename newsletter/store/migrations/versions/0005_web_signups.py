"""web sign-ups: confirmations, rate limits, token selector index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:54:52.617955
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limits")),
    )
    with op.batch_alter_table("rate_limits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rate_limits_window_start"), ["window_start"], unique=False
        )

    op.create_table(
        "confirmations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("selector", sa.String(length=16), nullable=False),
        sa.Column("verifier", sa.String(length=64), nullable=False),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("lists", sa.JSON(), nullable=False),
        sa.Column("consent", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_confirmations_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_confirmations")),
        sa.UniqueConstraint("selector", name=op.f("uq_confirmations_selector")),
    )
    with op.batch_alter_table("confirmations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_confirmations_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index("ix_confirmations_subscriber_id", ["subscriber_id"], unique=False)

    # Token lookups by their first 8 characters; the rest is compared in constant time.
    # (Written by hand: autogenerate cannot reflect expression indexes on SQLite.)
    op.create_index(
        "ix_subscribers_token_selector", "subscribers", [sa.text("substr(token, 1, 8)")]
    )


def downgrade() -> None:
    op.drop_index("ix_subscribers_token_selector", table_name="subscribers")

    with op.batch_alter_table("confirmations", schema=None) as batch_op:
        batch_op.drop_index("ix_confirmations_subscriber_id")
        batch_op.drop_index(batch_op.f("ix_confirmations_expires_at"))
    op.drop_table("confirmations")

    with op.batch_alter_table("rate_limits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_limits_window_start"))
    op.drop_table("rate_limits")
