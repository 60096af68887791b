"""integrator_grants: each integrator's current grant (event types, personal data, serial)

Revision ID: 0004_integrator_grants
Revises: 0003_member_keys
Create Date: 2026-12-06 13:50:00

Integrators made before have no row: their tokens carry no grant claim and keep the documented
default (every event type, no personal data) until `verbund integrator` is run for them again.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004_integrator_grants'
down_revision = '0003_member_keys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('integrator_grants',
    sa.Column('name', sa.String(length=41), nullable=False),
    sa.Column('events', sa.Text(), nullable=False),
    sa.Column('personal', sa.Boolean(), nullable=False),
    sa.Column('serial', sa.Integer(), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('integrator_grants')
