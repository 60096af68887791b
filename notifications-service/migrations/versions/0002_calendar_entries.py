"""calendar entries: who was sent which joint event's calendar entry, at which SEQUENCE and STATUS

Revision ID: 0002_calendar_entries
Revises: 0001
Create Date: 2026-12-06 12:40:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0002_calendar_entries'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('calendar_entries',
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('source_event_id', sa.String(length=36), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_version', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('member_id', 'source_event_id')
    )
    with op.batch_alter_table('calendar_entries', schema=None) as batch_op:
        batch_op.create_index('ix_calendar_entries_event_member', ['event_id', 'member_id', 'sequence'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calendar_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_calendar_entries_event_member')
    op.drop_table('calendar_entries')
