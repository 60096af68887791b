"""integrator_grants.revoked_at: an integrator revoked from the admin pages

Revision ID: 0008_integrator_revocation
Revises: 0007_email_projects
Create Date: 2026-12-06 18:40:00

A revoked integrator keeps its row (its serial goes on rising if it is made again, so no old token
comes back to life); its tokens are refused while ``revoked_at`` is set.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_integrator_revocation'
down_revision = '0007_email_projects'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('integrator_grants') as batch:
        batch.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('integrator_grants') as batch:
        batch.drop_column('revoked_at')
