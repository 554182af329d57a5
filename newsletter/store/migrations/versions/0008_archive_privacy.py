"""archive privacy: public lists, an issue's archive setting, unguessable issue slugs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:00:00.000000
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public", sa.Boolean(), nullable=True))
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archive", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("slug", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    issues = sa.table("issues", sa.column("id", sa.BigInteger), sa.column("slug", sa.String))
    for (issue_id,) in conn.execute(sa.select(issues.c.id)).all():
        conn.execute(
            issues.update().where(issues.c.id == issue_id).values(slug=secrets.token_urlsafe(16))
        )
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.alter_column("slug", existing_type=sa.String(length=32), nullable=False)
    op.create_index(op.f("ix_issues_slug"), "issues", ["slug"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_issues_slug"), table_name="issues")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("slug")
        batch_op.drop_column("archive")
    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.drop_column("public")
