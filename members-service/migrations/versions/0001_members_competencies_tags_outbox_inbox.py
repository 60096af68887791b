"""members, competencies, tags

Revision ID: 0001
Revises:
Create Date: 2026-11-21 07:08:00.652765
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = 'verbund_0001'


def upgrade() -> None:
    op.create_table('members',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('organisation_key', sa.String(length=300), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('sector', sa.String(length=20), nullable=True),
    sa.Column('state', sa.String(length=2), nullable=True),
    sa.Column('postcode', sa.String(length=5), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('employees', sa.Integer(), nullable=True),
    sa.Column('turnover_eur', sa.BigInteger(), nullable=True),
    sa.Column('balance_sheet_eur', sa.BigInteger(), nullable=True),
    sa.Column('size_category', sa.String(length=6), nullable=True),
    sa.Column('website', sa.String(length=500), nullable=True),
    sa.Column('contact_name', sa.String(length=200), nullable=True),
    sa.Column('contact_email', sa.String(length=320), nullable=True),
    sa.Column('contact_language', sa.String(length=2), nullable=True),
    sa.Column('consent_suggest', sa.Boolean(), nullable=False),
    sa.Column('consent_email', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organisation_key')
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_deleted_at'), ['deleted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_sector'), ['sector'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_size_category'), ['size_category'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_state'), ['state'], unique=False)

    op.create_table('member_competencies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=5), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('term', sa.String(length=100), nullable=True),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('member_competencies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_competencies_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_competencies_term'), ['term'], unique=False)

    op.create_table('member_tags',
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('facet', sa.String(length=20), nullable=False),
    sa.Column('value', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', 'facet', 'value')
    )
    with op.batch_alter_table('member_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_tags_value'), ['value'], unique=False)

    # The outbox and inbox come from the kit's migration (verbund_0001), which this one depends on.



def downgrade() -> None:

    with op.batch_alter_table('member_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_tags_value'))

    op.drop_table('member_tags')
    with op.batch_alter_table('member_competencies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_competencies_term'))
        batch_op.drop_index(batch_op.f('ix_member_competencies_member_id'))

    op.drop_table('member_competencies')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_state'))
        batch_op.drop_index(batch_op.f('ix_members_size_category'))
        batch_op.drop_index(batch_op.f('ix_members_sector'))
        batch_op.drop_index(batch_op.f('ix_members_deleted_at'))

    op.drop_table('members')
