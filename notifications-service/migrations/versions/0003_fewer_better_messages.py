"""fewer, better messages: per-kind preferences, a mailbox per member (daily budget, last digest),
what a delivery is about (topic) and which later delivery it was merged into

Revision ID: 0003_fewer_better_messages
Revises: 0002_calendar_entries
Create Date: 2026-12-06 15:20:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_fewer_better_messages'
down_revision = '0002_calendar_entries'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('preference_kinds',
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=12), nullable=False),
    sa.PrimaryKeyConstraint('member_id', 'kind')
    )
    op.create_table('mailboxes',
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('budget_day', sa.String(length=10), nullable=True),
    sa.Column('budget_used', sa.Integer(), nullable=False),
    sa.Column('last_digest_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('member_id')
    )
    # Digests were timed by preferences.last_digest_at; the mailbox keeps it from now on.
    op.execute("INSERT INTO mailboxes (member_id, budget_used, last_digest_at) "
               "SELECT member_id, 0, last_digest_at FROM preferences WHERE last_digest_at IS NOT NULL")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('merged_into', sa.Integer(), nullable=True))
        batch_op.create_index('ix_deliveries_target_topic', ['target', 'topic'], unique=False)
    with op.batch_alter_table('preferences', schema=None) as batch_op:
        batch_op.drop_column('last_digest_at')


def downgrade() -> None:
    with op.batch_alter_table('preferences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_digest_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE preferences SET last_digest_at = (SELECT last_digest_at FROM mailboxes "
               "WHERE mailboxes.member_id = preferences.member_id)")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_target_topic')
        batch_op.drop_column('merged_into')
        batch_op.drop_column('topic')
    op.drop_table('mailboxes')
    op.drop_table('preference_kinds')
