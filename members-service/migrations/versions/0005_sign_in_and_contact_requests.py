"""sign_in_tokens, sign_in_attempts, contact_requests; an index on the lower-cased contact e-mail

Revision ID: 0005_sign_in_contacts
Revises: 0004_integrator_grants
Create Date: 2026-12-10 09:00:00

Sign-in by e-mail link looks members up by their contact e-mail whatever its case, hence the
expression index (SQLite and PostgreSQL both have them).
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_sign_in_contacts'
down_revision = '0004_integrator_grants'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sign_in_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index('ix_sign_in_tokens_member_id', 'sign_in_tokens', ['member_id'])
    op.create_index('ix_sign_in_tokens_expires_at', 'sign_in_tokens', ['expires_at'])
    op.create_table('sign_in_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sign_in_attempts_scope_key_at', 'sign_in_attempts', ['scope', 'key', 'at'])
    op.create_table('contact_requests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('requester_id', sa.String(length=36), nullable=False),
    sa.Column('recipient_id', sa.String(length=36), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['requester_id'], ['members.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recipient_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_contact_requests_requester_id', 'contact_requests', ['requester_id'])
    op.create_index('ix_contact_requests_recipient_id', 'contact_requests', ['recipient_id'])
    op.create_index('ix_contact_requests_created_at', 'contact_requests', ['created_at'])
    op.create_index('ix_members_contact_email_lower', 'members', [sa.text('lower(contact_email)')])


def downgrade() -> None:
    op.drop_index('ix_members_contact_email_lower', table_name='members')
    op.drop_table('contact_requests')
    op.drop_table('sign_in_attempts')
    op.drop_table('sign_in_tokens')
