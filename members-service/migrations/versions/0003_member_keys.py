"""member_keys: each member's key for the personal fields its events carry encrypted

Revision ID: 0003_member_keys
Revises: 0001
Create Date: 2026-12-06 12:45:00

Members registered before keep no key until their next event; erasure deletes the key.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_member_keys'
down_revision = '0002_search_keys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_keys',
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id')
    )


def downgrade() -> None:
    op.drop_table('member_keys')
