"""email_confirmations, project_contacts; members.contact_pending_email and contact_confirmed_at

Revision ID: 0006_email_projects
Revises: 0005_sign_in_contacts
Create Date: 2026-12-06 16:30:00

A changed contact e-mail waits in ``contact_pending_email`` until the link mailed to it is used
(``email_confirmations`` keeps only the link's hash). ``contact_confirmed_at`` is set when a link
mailed to the contact address was used (sign-in or confirmation); members registered before stay
unconfirmed until their next sign-in. ``project_contacts`` records the teams of formed partner
projects (project.formed), who may see each other's contact person.
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_email_projects'
down_revision = '0005_sign_in_contacts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members') as batch:
        batch.add_column(sa.Column('contact_pending_email', sa.String(length=320), nullable=True))
        batch.add_column(sa.Column('contact_confirmed_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('email_confirmations',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index('ix_email_confirmations_member_id', 'email_confirmations', ['member_id'])
    op.create_table('project_contacts',
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('formed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('project_id', 'member_id')
    )
    op.create_index('ix_project_contacts_member_id', 'project_contacts', ['member_id'])


def downgrade() -> None:
    op.drop_index('ix_project_contacts_member_id', table_name='project_contacts')
    op.drop_table('project_contacts')
    op.drop_index('ix_email_confirmations_member_id', table_name='email_confirmations')
    op.drop_table('email_confirmations')
    with op.batch_alter_table('members') as batch:
        batch.drop_column('contact_confirmed_at')
        batch.drop_column('contact_pending_email')
