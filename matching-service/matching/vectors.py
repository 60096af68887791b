"""Embedding each distinct need and offer text once: vectors come from the read model's
``text_vectors`` table if stored, else from the model (in batches, and the new ones are stored).
A rebuild therefore reads vectors and never embeds again. Vectors are stored as float16 bytes
(``semantic.STORED``, 1 KiB a text; migration 0003 converted the float32 ones stored before)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from sqlalchemy import select

from matching.models import TextVector
from matching.semantic import DIMENSIONS, NEED, OFFER, STORED, Space, text_key

BATCH = 64       # texts per call of the model
LOOKUP = 500     # keys per SELECT … IN


def texts_of(profiles: Iterable[dict]) -> set[tuple[str, str]]:
    """The (kind, text) pairs of profiles' needs and offers."""
    found = set()
    for profile in profiles:
        if not profile:
            continue
        found.update((NEED, item["label"]) for item in profile.get("needs", ()))
        found.update((OFFER, item["label"]) for item in profile.get("offers", ()))
    return found


def encode(vector) -> bytes:
    """A vector as stored: float16 bytes (``semantic.STORED``)."""
    return np.asarray(vector, STORED).tobytes()


def decode(blobs: list[bytes]) -> np.ndarray:
    """Stored vectors as one (len(blobs), 512) float16 array; float32 blobs (stored before
    migration 0003) are read too. ValueError for a blob of another length."""
    found = np.empty((len(blobs), DIMENSIONS), STORED)
    if not blobs:
        return found
    sizes = {len(blob) for blob in blobs}
    if sizes == {DIMENSIONS * 2}:  # the usual case: one buffer, no copy per text
        found[:] = np.frombuffer(b"".join(blobs), STORED).reshape(len(blobs), DIMENSIONS)
        return found
    for i, blob in enumerate(blobs):
        if len(blob) == DIMENSIONS * 2:
            found[i] = np.frombuffer(blob, STORED)
        elif len(blob) == DIMENSIONS * 4:
            found[i] = np.frombuffer(blob, np.float32)
        else:
            raise ValueError(f"a stored vector of {len(blob)} bytes (expected {DIMENSIONS * 2})")
    return found


def store(session, rows: list[dict]) -> None:
    """Insert vectors; one already stored is kept. Several instances embed the same new text when
    their events arrive together (a vocabulary label, say): a plain INSERT would fail the second
    one's whole batch on the duplicate key, and its texts would never be stored."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the service runs on PostgreSQL or SQLite
        session.add_all(TextVector(**row) for row in rows)
        return
    session.execute(insert(TextVector).values(rows).on_conflict_do_nothing(index_elements=["key"]))


def ensure(session, space: Space, embedder, model: str, profiles: Iterable[dict],
           run: Callable = lambda fn, *args: fn(*args)) -> dict:
    """Give ``space`` a vector for every text of ``profiles``: stored ones are read, missing ones
    embedded in batches (through ``run``, e.g. ``eventlet.tpool.execute`` so that the event loop
    keeps running while the model works) and stored. ``{read, embedded}``."""
    wanted = sorted(pair for pair in texts_of(profiles) if not space.has(*pair))
    keys = {text_key(kind, text): (kind, text) for kind, text in wanted}
    read = 0
    key_list = list(keys)
    for start in range(0, len(key_list), LOOKUP):
        chunk = key_list[start:start + LOOKUP]
        found = {NEED: ([], []), OFFER: ([], [])}
        for row in session.execute(select(TextVector.key, TextVector.vector).where(
                TextVector.key.in_(chunk), TextVector.model == model)):
            kind, text = keys.pop(row.key)
            found[kind][0].append(text)
            found[kind][1].append(row.vector)
        for kind, (texts, blobs) in found.items():  # one array per side and page, not one per text
            if texts:
                space.add_vectors(kind, texts, decode(blobs))
                read += len(texts)
    embedded = 0
    if embedder is not None:
        for kind in (NEED, OFFER):
            missing = [text for k, text in keys.values() if k == kind]
            for start in range(0, len(missing), BATCH):
                batch = missing[start:start + BATCH]
                vectors = run(embedder.embed, batch, kind)
                space.add_vectors(kind, batch, vectors)
                store(session, [{"key": text_key(kind, text), "model": model, "kind": kind, "text": text,
                                 "vector": encode(vector)}
                                for text, vector in zip(batch, vectors, strict=True)])
                embedded += len(batch)
    return {"read": read, "embedded": embedded}
