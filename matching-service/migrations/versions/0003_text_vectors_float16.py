"""text vectors: stored as float16 (half the bytes; a cosine moves by about 1e-4)

Revision ID: 0003
Revises: 0002
"""
import numpy as np
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

PAGE = 1000
vectors = sa.table('text_vectors', sa.column('key', sa.String), sa.column('vector', sa.LargeBinary))


def _convert(source, target, size: int) -> None:
    """Rewrite every vector of ``size`` bytes from dtype ``source`` to ``target``, a page at a time
    (keys in order, so a page never comes back)."""
    bind = op.get_bind()
    last = ''
    while True:
        rows = bind.execute(sa.select(vectors.c.key, vectors.c.vector).where(
            vectors.c.key > last).order_by(vectors.c.key).limit(PAGE)).all()
        if not rows:
            return
        changed = [{'k': key, 'v': np.frombuffer(blob, source).astype(target).tobytes()}
                   for key, blob in rows if len(blob) == size]
        if changed:
            bind.execute(vectors.update().where(vectors.c.key == sa.bindparam('k')).values(
                vector=sa.bindparam('v')), changed)
        last = rows[-1][0]


def upgrade() -> None:
    _convert(np.float32, np.float16, 512 * 4)


def downgrade() -> None:
    _convert(np.float16, np.float32, 512 * 2)
