"""why "schedule all" could not place a meeting

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('meetings', sa.Column('unplaced_reason', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('meetings') as batch:
        batch.drop_column('unplaced_reason')
