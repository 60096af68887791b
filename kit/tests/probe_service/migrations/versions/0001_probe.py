"""probe tables

Revision ID: 0001
Revises:
"""
from alembic import op

from probe.models import metadata
from verbund.outbox import messaging_metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind())
    messaging_metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
    messaging_metadata.drop_all(op.get_bind())
