"""search keys: case-folded NFC copies of member name, city and competency labels

Member search compares these (verbund.schema_fields.search_key) instead of
SQL lower(), which is ASCII-only on SQLite and composes nothing anywhere.
Existing rows are backfilled here, decomposed ones included.

Revision ID: 0002_search_keys
Revises: 0001
Create Date: 2026-12-06 12:40:00
"""
import sqlalchemy as sa
from alembic import op

from verbund.schema_fields import search_key

revision = '0002_search_keys'
down_revision = '0001'
branch_labels = None
depends_on = None

BATCH = 1000


def _backfill(table: str, key_id: str, sources: dict[str, str]) -> None:
    """Set each key column from its text column, a batch of rows at a time."""
    bind = op.get_bind()
    rows = sa.table(table, sa.column(key_id), *(sa.column(c) for pair in sources.items() for c in pair))
    last = None
    while True:
        query = sa.select(rows.c[key_id], *(rows.c[text] for text in sources)).order_by(rows.c[key_id]).limit(BATCH)
        if last is not None:
            query = query.where(rows.c[key_id] > last)
        batch = bind.execute(query).all()
        if not batch:
            return
        for row in batch:
            values = {key: search_key(getattr(row, text)) if getattr(row, text) is not None else None
                      for text, key in sources.items()}
            bind.execute(sa.update(rows).where(rows.c[key_id] == row[0]).values(**values))
        last = batch[-1][0]


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_key', sa.String(length=600), nullable=True))
        batch_op.add_column(sa.Column('city_key', sa.String(length=300), nullable=True))
        batch_op.create_index(batch_op.f('ix_members_city_key'), ['city_key'], unique=False)
    with op.batch_alter_table('member_competencies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label_key', sa.String(length=600), nullable=True))
        batch_op.create_index(batch_op.f('ix_member_competencies_label_key'), ['label_key'], unique=False)
    _backfill('members', 'id', {'name': 'name_key', 'city': 'city_key'})
    _backfill('member_competencies', 'id', {'label': 'label_key'})


def downgrade() -> None:
    with op.batch_alter_table('member_competencies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_competencies_label_key'))
        batch_op.drop_column('label_key')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_city_key'))
        batch_op.drop_column('city_key')
        batch_op.drop_column('name_key')
