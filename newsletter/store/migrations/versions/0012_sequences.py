"""sequences: welcome and drip series (sequences, their steps, the readers enrolled), and the
issue a step is sent through

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("issues", sa.Column("sequence_id", ID, nullable=True))
    op.create_index(op.f("ix_issues_sequence_id"), "issues", ["sequence_id"])
    op.create_table(
        "sequences",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("list_id", ID, nullable=False),
        sa.Column("trigger", sa.String(length=120), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_sequences_list_id_lists"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequences")),
        sa.UniqueConstraint("name", name=op.f("uq_sequences_name")),
    )  # fmt: skip
    op.create_table(
        "sequence_steps",
        sa.Column("id", ID, nullable=False),
        sa.Column("sequence_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("window", sa.String(length=11), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("preheader", sa.String(length=500), nullable=False),
        sa.Column("template", sa.String(length=100), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=2000), nullable=False),
        sa.Column("issue_id", ID, nullable=False),
        sa.Column("removed_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["sequence_id"], ["sequences.id"],
            name=op.f("fk_sequence_steps_sequence_id_sequences"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_sequence_steps_issue_id_issues"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequence_steps")),
        sa.UniqueConstraint(
            "sequence_id", "position", name=op.f("uq_sequence_steps_sequence_id")
        ),
    )  # fmt: skip
    op.create_table(
        "enrollments",
        sa.Column("id", ID, nullable=False),
        sa.Column("sequence_id", ID, nullable=False),
        sa.Column("subscriber_id", ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_position", sa.Integer(), nullable=False),
        sa.Column("due_at", WHEN, nullable=True),
        sa.Column("enrolled_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["sequence_id"], ["sequences.id"],
            name=op.f("fk_enrollments_sequence_id_sequences"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"],
            name=op.f("fk_enrollments_subscriber_id_subscribers"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint(
            "sequence_id", "subscriber_id", name=op.f("uq_enrollments_sequence_id")
        ),
    )  # fmt: skip
    op.create_index("ix_enrollments_due_at", "enrollments", ["due_at"])
    op.create_index("ix_enrollments_subscriber_id", "enrollments", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_enrollments_subscriber_id", table_name="enrollments")
    op.drop_index("ix_enrollments_due_at", table_name="enrollments")
    op.drop_table("enrollments")
    op.drop_table("sequence_steps")
    op.drop_table("sequences")
    op.drop_index(op.f("ix_issues_sequence_id"), table_name="issues")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("sequence_id")
