"""meetings: read models of joint events and 1:1 meetings for meeting mails, reminders and the survey

Revision ID: 0004_meetings
Revises: 0003_fewer_better_messages
Create Date: 2026-12-06 18:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0004_meetings'
down_revision = '0003_fewer_better_messages'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('meeting_events',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=True),
    sa.Column('timezone', sa.String(length=60), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=True),
    sa.Column('surveyed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('meetings',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('requester_id', sa.String(length=36), nullable=False),
    sa.Column('recipient_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=True),
    sa.Column('table_no', sa.Integer(), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminded_for', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    for column in ('event_id', 'requester_id', 'recipient_id', 'starts_at'):
        op.create_index(f'ix_meetings_{column}', 'meetings', [column], unique=False)


def downgrade() -> None:
    for column in ('event_id', 'requester_id', 'recipient_id', 'starts_at'):
        op.drop_index(f'ix_meetings_{column}', table_name='meetings')
    op.drop_table('meetings')
    op.drop_table('meeting_events')
