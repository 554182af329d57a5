"""reputation guard: per-domain backoff, automatic pause of an issue

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_backoffs",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("reply", sa.String(length=500), nullable=False),
        sa.Column("throttled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_domain_backoffs")),
    )
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pause_reason", sa.String(length=500), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("guard_off", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("guard_off")
        batch_op.drop_column("pause_reason")
    op.drop_table("domain_backoffs")
