"""registrations.moved_to: the event a registration cancelled with reason "moved" moved to

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('registrations') as batch:
        batch.add_column(sa.Column('moved_to', sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('registrations') as batch:
        batch.drop_column('moved_to')
