"""probe tables (the outbox and inbox come from the kit's branch)

Revision ID: 0001
Revises:
"""
from alembic import op

from probe.models import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = "verbund_0001"


def upgrade() -> None:
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
