"""pending announcements: other members' changed lists, announced once after a window

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pending_announcements',
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('propose', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('member_id')
    )
    op.create_index('ix_pending_announcements_due_at', 'pending_announcements', ['due_at'])


def downgrade() -> None:
    op.drop_index('ix_pending_announcements_due_at', table_name='pending_announcements')
    op.drop_table('pending_announcements')
