"""outbox and inbox: the kit's messaging tables, shared by every service

Revision ID: verbund_0001
Revises:

A branch of its own (label ``verbund``) that a service's migrations depend on
(``depends_on = "verbund_0001"``). It creates each table only where it does not
exist yet: a database migrated before the tables moved into the kit (they were
part of each service's first revision) keeps them as they are.
"""
import sqlalchemy as sa
from alembic import op

revision = "verbund_0001"
down_revision = None
branch_labels = ("verbund",)
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "outbox" not in existing:
        op.create_table(
            "outbox",
            sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("event_id", sa.String(length=36), nullable=False),
            sa.Column("type", sa.String(length=100), nullable=False),
            sa.Column("subject", sa.String(length=200), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("seq"),
            sa.UniqueConstraint("event_id"),
        )
        op.create_index("ix_outbox_published_at", "outbox", ["published_at"], unique=False)
    if "inbox" not in existing:
        op.create_table(
            "inbox",
            sa.Column("event_id", sa.String(length=36), nullable=False),
            sa.Column("type", sa.String(length=100), nullable=False),
            sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("event_id"),
        )


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_table("outbox")
