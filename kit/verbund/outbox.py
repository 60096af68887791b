"""Transactional outbox and inbox.

A service writes its state change and the events announcing it in one
database transaction (``add``). The relay publishes committed events in the
order they were written, with publisher confirms, right after the commit and
again from a periodic sweep for anything a crash left behind. A consumer
claims each event id in the inbox in the same transaction as its effect, so
a redelivered event has no second effect.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from functools import cache

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from verbund import envelope
from verbund.broker import Outgoing

log = logging.getLogger(__name__)

messaging_metadata = MetaData()

outbox_table = Table(
    "outbox", messaging_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True, index=True),
)

inbox_table = Table(
    "inbox", messaging_metadata,
    Column("event_id", String(36), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)

# Key of the PostgreSQL advisory lock that lets one relay at a time publish,
# so that several instances of a service keep the events in order.
RELAY_LOCK_KEY = 0x5645524255  # "VERBU"
PUBLISH_CHUNK = 100  # events sent before waiting for their confirms


def add(session: Session, *events: dict) -> None:
    """Write ``events`` to the outbox inside the caller's transaction, in this order (one statement)."""
    if not events:
        return
    now = envelope.utcnow()
    rows = []
    for event in events:
        envelope.validate(event)
        rows.append({"event_id": event["id"], "type": event["type"], "subject": event["subject"],
                     "body": envelope.dumps(event).decode("utf-8"), "created_at": now})
    session.execute(insert(outbox_table), rows)
    session.info["outbox_pending"] = True


def claim(session: Session, event: dict) -> bool:
    """Record ``event`` as processed; False if it was processed before.

    One statement: the insert does nothing when the id is there. A second
    worker racing on the same id waits for the first one's transaction and
    then finds it (PostgreSQL), or waits for the write lock (SQLite).
    """
    statement = _claim_statement(session.get_bind().dialect.name)
    return session.execute(statement, {"event_id": event["id"], "type": event["type"],
                                       "processed_at": envelope.utcnow()}).rowcount == 1


def claim_many(session: Session, events: list[dict]) -> set[str]:
    """Record ``events`` as processed in one statement; the ids of those not processed before.

    A multi-row insert that skips ids already there and returns the ids it wrote (RETURNING:
    PostgreSQL, SQLite 3.35+). An id twice in ``events`` is claimed once.
    """
    rows, seen = [], set()
    now = envelope.utcnow()
    for event in events:
        if event["id"] not in seen:
            seen.add(event["id"])
            rows.append({"event_id": event["id"], "type": event["type"], "processed_at": now})
    if not rows:
        return set()
    statement = (_claim_statement(session.get_bind().dialect.name).values(rows)
                 .returning(inbox_table.c.event_id))
    return set(session.execute(statement).scalars())


@cache
def _claim_statement(dialect: str):
    insert_for = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    return insert_for(inbox_table).on_conflict_do_nothing(index_elements=[inbox_table.c.event_id])


def pending_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(outbox_table.c.published_at.is_(None))).scalar_one()


class Relay:
    """Publishes committed outbox rows in order; safe to call from many places.

    Only one relay runs at a time in a process (a second call asks the
    running one to look again) and, on PostgreSQL, in the whole cluster of
    instances sharing the database (an advisory lock).
    """

    def __init__(self, engine: Engine, publisher, batch_size: int = 500, retention: timedelta = timedelta(days=7),
                 on_published=None):
        self.engine = engine
        self.on_published = on_published  # called with the number of events each batch published
        self.publisher = publisher
        self.batch_size = batch_size
        self.retention = retention
        self._lock = threading.Lock()
        self._look_again = False

    def relay(self) -> int:
        """Publish everything pending; return how many events went out."""
        if not self._lock.acquire(blocking=False):
            self._look_again = True
            return 0
        try:
            published = 0
            while True:
                self._look_again = False
                count = self._relay_batch()
                published += count
                if count < self.batch_size and not self._look_again:
                    return published
        finally:
            self._lock.release()

    def relay_quietly(self) -> None:
        """``relay`` for background use: a broker outage is logged, the sweep retries."""
        try:
            self.relay()
        except Exception as exc:
            log.warning("outbox relay failed, will retry: %s", exc)

    def purge_published(self) -> int:
        """Forget published events older than the retention period."""
        cutoff = envelope.utcnow() - self.retention
        with self.engine.begin() as conn:
            return conn.execute(delete(outbox_table).where(outbox_table.c.published_at < cutoff)).rowcount

    def _relay_batch(self) -> int:
        with self.engine.connect() as conn:
            if not self._take_cluster_lock(conn):
                return 0
            try:
                rows = conn.execute(
                    select(outbox_table.c.seq, outbox_table.c.event_id, outbox_table.c.type, outbox_table.c.body)
                    .where(outbox_table.c.published_at.is_(None))
                    .order_by(outbox_table.c.seq).limit(self.batch_size)
                ).all()
                conn.commit()  # no transaction is held while talking to the broker
                # In chunks, each marked once the broker confirmed it: a later chunk failing leaves
                # only itself and what follows to publish again.
                for start in range(0, len(rows), PUBLISH_CHUNK):
                    chunk = rows[start:start + PUBLISH_CHUNK]
                    self.publisher.publish_many(
                        [Outgoing(row.type, row.body.encode("utf-8"), row.event_id) for row in chunk])
                    conn.execute(update(outbox_table).where(outbox_table.c.seq.in_([row.seq for row in chunk]))
                                 .values(published_at=envelope.utcnow()))
                    conn.commit()
                    if self.on_published:
                        self.on_published(len(chunk))
                return len(rows)
            finally:
                self._release_cluster_lock(conn)

    def _take_cluster_lock(self, conn: Connection) -> bool:
        if conn.dialect.name != "postgresql":
            return True
        taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": RELAY_LOCK_KEY}).scalar()
        conn.commit()
        return bool(taken)

    def _release_cluster_lock(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RELAY_LOCK_KEY})
            conn.commit()

    def close(self) -> None:
        self.publisher.close()
