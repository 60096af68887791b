"""SQLAlchemy 2 engine, unit of work, and the nameko dependency provider.

A use case runs in ``with self.db.unit_of_work() as uow:``: its state changes
(``uow.session``) and the events it announces (``uow.emit``) commit together
or not at all, and it reads the time from ``uow.now()``, never the wall clock.
After a commit that wrote events the outbox relay runs at once.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from nameko.extensions import DependencyProvider
from sqlalchemy import DateTime, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from verbund import catalogue, envelope, logs, metrics, outbox
from verbund.broker import Publisher

log = logging.getLogger(__name__)

SQLITE_LOCK_TIMEOUT = 30.0  # seconds a transaction waits for SQLite's write lock before it fails
PG_CONNECT_TIMEOUT_SECONDS = 10  # libpq connect_timeout: how long a new PostgreSQL connection may take


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg2 here (psycogreen makes it cooperative under eventlet)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def make_engine(url: str, **kwargs) -> Engine:
    url = normalize_url(url)
    # JSON columns (matching's stored suggestion lists, ~12 KB each) written and read with orjson
    kwargs.setdefault("json_serializer", envelope.json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        # isolation_level=None hands transaction control to us (below), so that
        # every transaction starts with BEGIN IMMEDIATE: writers queue up
        # instead of failing halfway, and read-modify-write is serialised.
        # No busy timeout in SQLite itself: its busy handler waits in a blocking C call, which under
        # eventlet freezes every green thread of the process, the one holding the lock included, for the
        # whole timeout. The wait for the write lock is below, in Python (time.sleep is green under
        # the monkey patch). With WAL and every transaction holding the write lock from its BEGIN, no
        # other statement waits for a lock.
        engine = create_engine(url, connect_args={"timeout": 0, "isolation_level": None}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            deadline = time.monotonic() + SQLITE_LOCK_TIMEOUT
            while True:
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    return
                except OperationalError as exc:
                    if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                        raise
                time.sleep(0.005)

        return engine
    # A database host that does not answer fails a connection within this many seconds (libpq's
    # connect_timeout), instead of the operating system's TCP timeout of minutes: a request gets its
    # 503 and a consumer holds its message back (verbund.outages) while the rest goes on.
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS},
                         **kwargs)


Clock = Callable[[], datetime]


class UTCDateTime(TypeDecorator):
    """A column type for aware UTC datetimes, alike on every database.

    Binds an aware datetime (any zone; stored as UTC) and hands back an aware
    UTC datetime, also on SQLite, which keeps no zone and would return naive
    ones. A naive datetime is refused with ``ValueError``: the zone it means
    cannot be guessed.
    """
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: say which zone they are in")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UnitOfWork:
    """One business transaction (the unit of work pattern): the SQLAlchemy
    ``session`` for state, the events it announces, and the clock it reads.

    ``emit`` builds a CloudEvent with the service's ``source`` and validates it
    at once (a ``ValueError`` naming the schema violation); the collected
    events are written to the outbox in one statement, in the order emitted,
    just before the transaction commits. ``now()`` is the injected clock, an
    aware UTC datetime, so use cases never read the wall clock themselves.
    """

    def __init__(self, session: Session, source: str, clock: Clock = envelope.utcnow):
        self.session = session
        self.source = source
        self._clock = clock
        self.events: list[dict] = []

    def now(self) -> datetime:
        return self._clock()

    def emit(self, type: str, subject: str, data: dict) -> dict:
        """Announce a catalogued event ``type`` about ``subject`` (an aggregate id) with ``data``.
        Validated once, when written to the outbox (``flush_events``: InvalidEvent fails the unit of
        work), not here too: a list of suggestions costs its schema check per item."""
        event = envelope.new_event(type, self.source, subject=subject, data=data, time=self.now(), check=False)
        self.events.append(event)
        return event

    def let_others_run(self) -> None:
        """Hand the process to its other green threads for a moment (``time.sleep(0)``, green under
        eventlet's monkey patch; a no-op without it). A use case that loops over many items calls it
        per item: SQLite's calls never yield, so a long loop would otherwise starve health checks, RPC
        replies and the broker connections' handshakes, which the broker then resets, and a failed
        RPC reply makes nameko kill the container. The transaction and its locks stay held."""
        time.sleep(0)

    def flush_events(self) -> None:
        """Write the events emitted so far to the outbox (one statement); called before commit."""
        outbox.add(self.session, *self.events)
        self.events = []


def _log_skipped(events: list[dict], handled) -> None:
    """One line per event of a batch that will not run (claimed before, or twice in the batch), with
    its id, as ``Store.handle`` logs it: operators and tests look a redelivery up by the event's id."""
    handled = {item["id"] if isinstance(item, dict) else item for item in handled}
    for consumed in events:
        if consumed["id"] in handled:
            handled.discard(consumed["id"])  # its first occurrence runs
        else:
            log.info("event %s already processed, skipped", consumed["id"])


# The worker context key naming the consumed batch a worker's event belongs to (``Database.batch``).
BATCH_KEY = "verbund_batch"


@dataclass
class Batch:
    """Consumed events handled in one transaction (``Database.batch``): the shared unit of work and
    the ids the batch claimed in the inbox (the others were processed before)."""
    uow: UnitOfWork
    claimed: set[str]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class Store:
    """What a worker gets: units of work on the service's database.

    ``source`` is the CloudEvents source of the events the service emits
    (``/verbund/<service>``); ``clock`` is what ``uow.now()`` returns (tests fix it).
    ``batch``: the consumed batch the worker is part of; its units of work and inbox claims join
    the batch's transaction, which the subscriber commits once for the whole batch.
    """

    def __init__(self, engine: Engine, relay: outbox.Relay, after_commit: Callable[[], None] | None = None, *,
                 source: str = "/verbund/unknown", clock: Clock = envelope.utcnow, batch: Batch | None = None):
        self.engine = engine
        self.relay = relay
        self.source = source
        self.clock = clock
        self.batch = batch
        self._after_commit = after_commit or relay.relay_quietly

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """A unit of work; it commits when the block ends and rolls back if it raises.

        Inside a consumed batch it is the batch's: the events it emits are written with the
        batch's, and a failure fails the batch."""
        if self.batch is not None:
            yield self.batch.uow
            return
        with self.transaction() as session:
            uow = UnitOfWork(session, self.source, self.clock)
            yield uow
            uow.flush_events()

    def handle(self, event: dict, handler: Callable[[UnitOfWork, dict], object]) -> bool:
        """Run ``handler(uow, event)`` unless this event was handled before (the idempotent inbox).

        The inbox record, the handler's effect and the events it emits commit together; False
        when the event id was claimed before (a redelivery), and nothing runs. Inside a consumed
        batch the batch claimed the id already (one statement for the batch) and commits.
        """
        if self.batch is not None:
            if event["id"] not in self.batch.claimed:
                log.info("event %s already processed, skipped", event["id"])
                return False
            handler(self.batch.uow, event)
            return True
        with self.unit_of_work() as uow:
            if not outbox.claim(uow.session, event):
                log.info("event %s already processed, skipped", event["id"])
                return False
            handler(uow, event)
            return True

    def handle_batch(self, events: list[dict], handler: Callable[[UnitOfWork, list[dict]], object]) -> list[dict]:
        """The batch form of ``handle``: ``handler(uow, fresh)`` with the events of ``events`` not
        handled before, in their order, in one unit of work with their inbox claims (one statement).
        Returns ``fresh`` (empty: all were redeliveries, and the handler did not run)."""
        with self.unit_of_work() as uow:
            claimed = self.batch.claimed if self.batch is not None else outbox.claim_many(uow.session, events)
            fresh, seen = [], set()
            for event in events:
                if event["id"] in claimed and event["id"] not in seen:
                    seen.add(event["id"])
                    fresh.append(event)
            _log_skipped(events, fresh)
            if fresh:
                handler(uow, fresh)
            return fresh

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A bare transaction, under ``unit_of_work``; services use a unit of work."""
        if self.batch is not None:
            yield self.batch.uow.session
            return
        session = Session(self.engine, expire_on_commit=False)
        try:
            with session.begin():
                yield session
            wrote_events = session.info.pop("outbox_pending", False)
        finally:
            session.close()
        if wrote_events:
            self._after_commit()

    def sweep(self) -> None:
        """Publish what an earlier crash or broker outage left in the outbox."""
        self.relay.relay_quietly()
        self.relay.purge_published()


class Database(DependencyProvider):
    """Engine and outbox relay per container; a Store per worker."""

    def setup(self):
        settings = self.container.config["VERBUND"]
        self.engine = make_engine(settings.database_url)
        counter = metrics.published.labels(settings.service)
        self.relay = outbox.Relay(self.engine, Publisher(settings.amqp_uri), on_published=counter.inc)
        self._batches: dict[str, Batch] = {}

    def stop(self):
        self.relay.close()
        self.engine.dispose()

    def kill(self):
        self.stop()

    @contextmanager
    def batch(self, events: list[dict]) -> Iterator[Batch]:
        """One transaction for consumed ``events`` (``verbund.subscriber``): their inbox claims in
        one statement, then what the workers the block runs do (each worker whose context names
        the batch under ``BATCH_KEY`` works in it), then the events they emitted in one outbox
        statement and the commit, when the block ends; a rollback if it raises."""
        store = self._store(None)
        with store.unit_of_work() as uow:
            batch = Batch(uow, outbox.claim_many(uow.session, events))
            _log_skipped(events, batch.claimed)
            self._batches[batch.id] = batch
            try:
                yield batch
            finally:
                del self._batches[batch.id]

    def get_dependency(self, worker_ctx):
        batch = self._batches.get(worker_ctx.data.get(BATCH_KEY)) if worker_ctx is not None else None
        return self._store(batch)

    def _store(self, batch: Batch | None) -> Store:
        return Store(self.engine, self.relay, after_commit=self._relay_in_background,
                     source=catalogue.source_of(self.container.config["VERBUND"].service), batch=batch)

    def worker_setup(self, worker_ctx):
        # Runs in the worker's green thread: log lines of this worker carry its correlation id.
        logs.set_correlation_id(worker_ctx.data.get("correlation_id"))

    def _relay_in_background(self):
        self.container.spawn_managed_thread(self.relay.relay_quietly, identifier="outbox.relay")
