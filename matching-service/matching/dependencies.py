"""nameko dependency providers of matching-service (the nameko-examples
convention): the in-memory engine with its lock, the read-model lock across
instances, and the rebuild from members-service over RPC, a page at a time,
retried with backoff until members-service answers.

The engine lives in memory (``MatchingEngine``), built from the read-model
table when the service starts. If that table is empty, it is first filled
from members-service over RPC (``members.profiles_after``) in the background.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

import eventlet
import tenacity
from eventlet import tpool  # a submodule: `eventlet.tpool` is not there without this import
from eventlet.event import Event
from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import text
from sqlalchemy.orm import Session

from matching import analyses, queries, semantic, services, vectors
from matching.engine import Engine
from verbund.database import Database, Store, UnitOfWork
from verbund.errors import ServiceUnavailable
from verbund.settings import env

log = logging.getLogger(__name__)

# The embedding model in the running service (0: match lexically only, e.g. on a CPU too small for it).
SEMANTIC = env("MATCHING_SEMANTIC", "1") == "1"
RPC_PAGE = 500             # profiles per members.profiles_after call
RPC_TIMEOUT = 30           # seconds one RPC call may take
READY_TIMEOUT = 60         # seconds a request waits for the engine to load before a 503
BACKOFF_FIRST = 1.0        # seconds before the first retry at start ...
BACKOFF_MAX = 60.0         # ... doubling up to this
READ_MODEL_LOCK = 0x4D41544348  # "MATCH": one instance at a time changes the read model
# Other members' changed lists (and proposals around them) wait this long, so that a list an import
# or a burst changes several times goes out once, with its final state (0: at once).
ANNOUNCE_WINDOW_SECONDS = env("ANNOUNCE_WINDOW_SECONDS", 10.0, service="matching", kind="float")
# While member events keep coming in full batches (an import, a burst after a fair: the consumer is
# behind), those lists wait up to this long after their first change instead, so that a list the
# flow changes again and again goes out a few times, not once per window (0: never held longer).
ANNOUNCE_HOLD_SECONDS = env("ANNOUNCE_HOLD_SECONDS", 120.0, service="matching", kind="float")
# How often the timer looks for due lists: a few times per window, at most every 5 s.
ANNOUNCE_CHECK_SECONDS = min(max(ANNOUNCE_WINDOW_SECONDS / 5, 0.5), 5.0)
FLUSH_ROUNDS = 160  # rounds one timer tick runs at most while marks are due (the engine's lock freed between)


def serialise(session: Session) -> None:
    """Take the read-model lock for this transaction (PostgreSQL's advisory transaction lock;
    SQLite's BEGIN IMMEDIATE already serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": READ_MODEL_LOCK})


def fetch_pages(amqp_uri: str, page_size: int = RPC_PAGE):
    """Every live profile from members-service (``members.profiles_after``), a list per page."""
    config = {"AMQP_URI": amqp_uri, "serializer": "json"}
    with ClusterRpcProxy(config, timeout=RPC_TIMEOUT) as rpc:
        after = None
        while True:
            page = rpc.members.profiles_after(after, page_size)
            yield page["profiles"]
            if not page["next"]:
                return
            after = page["next"]


def retry_with_backoff(what: str, attempt: Callable[[], object]):
    """Call ``attempt`` until it returns (tenacity), waiting BACKOFF_FIRST seconds after the first
    failure, doubling up to BACKOFF_MAX (green sleeps: other work goes on meanwhile)."""
    def warn(state: tenacity.RetryCallState) -> None:
        log.warning("%s failed, retrying in %.0fs: %s", what, state.upcoming_sleep, state.outcome.exception())

    retrying = tenacity.Retrying(wait=tenacity.wait_exponential(multiplier=BACKOFF_FIRST, max=BACKOFF_MAX),
                                 sleep=eventlet.sleep, before_sleep=warn, reraise=True)
    return retrying(attempt)


class MatchingEngine:
    """The container's engine over the service's ``store``: one use case at a time changes it (and
    the read model)."""

    def __init__(self, store: Store, amqp_uri: str, announce_window: float = 0.0, announce_hold: float = 0.0,
                 batch_size: int = 1):
        self.store = store
        self.amqp_uri = amqp_uri
        self.announce_window = announce_window  # seconds other members' changed lists wait (services.on_member_events)
        self.announce_hold = announce_hold  # ... and at most this long while full batches keep coming
        self.batch_size = batch_size  # the subscriber's CONSUME_BATCH_SIZE: a batch this long means a backlog
        self.flowing_until: datetime | None = None  # until when the flow counts as busy (``held``; the store's clock)
        # The model is loaded in warm_up (off the start path); until then and without it: lexical.
        self.embedder = None
        self.semantic_status = "loading"
        self.space: semantic.Space | None = None
        self.engine = Engine()
        self.lock = threading.Lock()  # green under `verbund run`'s monkey patch
        self.model_lock = threading.Lock()  # one embedding call at a time (events are embedded outside `lock`)
        self.ready = Event()
        self.stale = True

    def wait_ready(self) -> None:
        """Wait up to READY_TIMEOUT seconds for the engine; ServiceUnavailable (503) after that."""
        if not self.ready.ready():
            with eventlet.Timeout(READY_TIMEOUT, False):
                self.ready.wait()
        if not self.ready.ready():
            raise ServiceUnavailable("the matching engine is still loading; try again shortly")

    def reload(self) -> None:
        """Build the engine from the read model (the caller holds the lock)."""
        started = time.monotonic()
        analyzer = self.engine.text
        with self.store.unit_of_work() as uow:
            seq, profiles = queries.read_model(uow.session)
            # the free-text labels' analyses done before: the load need not do them again
            labels = analyses.labels_of(profiles, analyzer)
            missing = labels - analyses.read(uow.session, analyzer, labels)
        if self.space is not None:
            profiles = list(profiles)
            self.embed(profiles)
        # Outside the transaction: on SQLite it would hold the write lock all the while.
        try:
            self.engine.load(profiles)
        finally:
            analyzer.forget()
        self.engine.seq = seq
        self.stale = False
        if missing:  # the analyses the load did, for the next one
            with self.store.unit_of_work() as uow:
                analyses.store(uow.session, analyzer, missing)
        # Once at start (warm_up), not for every reload: an empty read model is loaded, then rebuilt.
        log.debug("engine reloaded: %d members in %.1fs", len(self.engine), time.monotonic() - started)

    def load_model(self) -> None:
        """Load the embedding model; without it the engine matches lexically (``/ready``: degraded)."""
        # Reading ~90 MB of weights and a first embedding take seconds of native work: in a native
        # thread, so that the event loop (HTTP, heartbeats) keeps running.
        self.embedder, self.semantic_status = tpool.execute(semantic.load_embedder)
        if self.embedder is not None:
            self.space = self.embedder.space()
            self.engine = Engine(semantic=self.space)
            self.stale = True
        log.info("semantic matching: %s", self.semantic_status)

    def embed(self, profiles) -> dict:
        """Vectors for the profiles' texts: stored ones read, new ones embedded in a native thread
        (the event loop keeps running meanwhile) and stored in their own transaction."""
        if self.space is None:
            return {"read": 0, "embedded": 0}
        with self.model_lock, self.store.unit_of_work() as uow:
            return vectors.ensure(uow.session, self.space, self.embedder, semantic.MODEL, profiles,
                                  run=tpool.execute)

    def _locked(self, work: Callable[[], object]):
        """Run ``work()`` under the lock, on a current engine; a failure leaves the engine to be rebuilt
        from the read model, which the rolled-back transaction did not change."""
        self.wait_ready()
        with self.lock:
            if self.stale:
                self.reload()
            try:
                return work()
            except BaseException:
                self.stale = True
                raise

    def _prepared(self, uow: UnitOfWork) -> Engine:
        serialise(uow.session)
        services.catch_up(uow, self.engine)
        return self.engine

    def run(self, use_case: Callable[..., object], *args):
        """``use_case(uow, engine, *args)`` in a unit of work of its own, serialised and caught up."""
        def work():
            with self.store.unit_of_work() as uow:
                return use_case(uow, self._prepared(uow), *args)
        return self._locked(work)

    def handle(self, event: dict, handler: Callable[[UnitOfWork, Engine, dict], object]) -> bool:
        """``handler(uow, engine, event)`` through the idempotent inbox (False: handled before).
        The profile's new texts are embedded first, outside the engine's lock."""
        fresh = self.handle_batch([event], lambda uow, engine, events: handler(uow, engine, events[0]))
        return bool(fresh)

    def handle_batch(self, events: list[dict],
                     handler: Callable[[UnitOfWork, Engine, list[dict]], object]) -> list[dict]:
        """``handler(uow, engine, fresh)`` for a batch of consumed events in one unit of work: the new
        texts of all the batch's profiles embedded first, together and outside the engine's lock;
        then under the lock, once for the batch: the inbox claim (one statement), ``fresh`` (the
        events not handled before, in their order; the handler does not run if there are none),
        one commit and one outbox statement. Returns ``fresh``. If the handler or the commit fails,
        nothing of the batch stays in the database and the engine is rebuilt from the read model
        before the next use case (the subscriber then hands the events one by one)."""
        # Wait for the engine (and the model) first: an event taken while the model was loading
        # would otherwise be matched lexically until a rebuild.
        self.wait_ready()
        profiles = [profile for event in events if (profile := (event.get("data") or {}).get("profile"))]
        if profiles and self.space is not None:
            try:
                self.embed(profiles)
            except Exception:  # these members are matched lexically now and semantically at the next rebuild
                log.exception("embedding the texts of %d profile(s) failed (first %s)", len(profiles),
                              profiles[0].get("id"))
        return self._locked(lambda: self.store.handle_batch(
            events, lambda uow, fresh: handler(uow, self._prepared(uow), fresh)))

    def on_member_events(self, events: list[dict], delivered: int | None = None) -> list[dict]:
        """A batch of member events (``services.on_member_events`` through ``handle_batch``) with this
        engine's announcement window. ``delivered``: how many events the subscriber handed over in
        this batch (member events or not); a full batch (``batch_size``, more than one) means more
        wait in the queue, and the flow counts as busy for one window (``flush``). Returns the events
        not handled before."""
        if self.batch_size > 1 and (delivered if delivered is not None else len(events)) >= self.batch_size:
            self.flowing_until = self.store.clock() + timedelta(seconds=self.announce_window)
        return self.handle_batch(events, partial(services.on_member_events, window=self.announce_window))

    def held(self) -> float:
        """Seconds due lists wait beyond their window now: while the flow is busy, up to
        ``announce_hold`` after their first change; else 0."""
        if self.flowing_until is not None and self.store.clock() < self.flowing_until:
            return max(0.0, self.announce_hold - self.announce_window)
        return 0.0

    def flush(self) -> services.Flushed:
        """Announce the lists whose window has passed (``services.flush_pending``), round after round
        while a round finds a full share, the engine's lock freed between rounds so that consumed
        events go on. While full batches keep coming (``held``), only lists held ``announce_hold``
        since their first change. Cheap when nothing is due: one indexed query, no lock. Returns the
        total."""
        total = services.Flushed()
        for _ in range(FLUSH_ROUNDS):
            held = self.held()
            with self.store.unit_of_work() as uow:
                if not queries.pending_due(uow.session, uow.now() - timedelta(seconds=held)):
                    break
            done = self.run(partial(services.flush_pending, held=held))
            total.taken, total.announced, total.searched = (
                total.taken + done.taken, total.announced + done.announced, total.searched + done.searched)
            if done.taken < services.PENDING_PER_ROUND:
                break
            eventlet.sleep(0)
        return total

    def rebuild(self, from_members: bool = True) -> dict:
        """Refill the read model from members-service (optional), rebuild the engine and store
        (and announce) every suggestion that changed. ``{fetched, stored, forgotten, announced,
        members}``; ServiceUnavailable (503) when members-service does not answer."""
        result = {}
        pages = None
        if from_members:
            try:
                pages = list(fetch_pages(self.amqp_uri))  # before taking the lock: events flow while we wait
            except Exception as exc:
                raise ServiceUnavailable(f"members-service did not answer: {type(exc).__name__}: {exc}") from None
        with self.lock:
            try:
                if pages is not None:
                    with self.store.unit_of_work() as uow:
                        serialise(uow.session)
                        result.update(services.rebuild_read_model(uow, self.engine, pages))
                self.reload()
                with self.store.unit_of_work() as uow:
                    serialise(uow.session)
                    result["announced"] = services.refresh_all(uow, self.engine)
            except BaseException:
                self.stale = True
                raise
        result["members"] = len(self.engine)
        return result

    def warm_up(self) -> None:
        """At start: load the engine; if the read model was empty, fill it from members-service."""
        def load() -> bool:
            with self.store.unit_of_work() as uow:
                empty = queries.read_model_empty(uow.session)
            with self.lock:
                self.engine.warm_up()
                if self.semantic_status == "loading":
                    if SEMANTIC:
                        self.load_model()
                    else:
                        self.semantic_status = "degraded: semantic matching switched off (MATCHING_SEMANTIC=0)"
                self.reload()
            return empty

        # Until the database is reachable /ready says so.
        started = time.monotonic()
        empty = retry_with_backoff("loading the matching engine", load)
        self.ready.send(True)
        if empty:  # members-service not up yet: try again; events flow meanwhile
            result = retry_with_backoff("rebuild from members-service", lambda: self.rebuild(from_members=True))
            log.info("read model rebuilt from members-service: %s", result)
        log.info("matching engine loaded: %d members in %.1fs", len(self.engine), time.monotonic() - started)


class EngineProvider(DependencyProvider):
    """Gives workers the container's ``MatchingEngine`` over the service's own database.

    ``database``: the attribute name of the service's ``Database`` dependency. nameko 2 binds every
    declared extension separately (an extension given as an argument would be bound again as a copy
    with a connection pool and outbox relay of its own), so the engine gets the Store of that bound
    dependency when the container starts."""

    def __init__(self, database: str = "db"):
        self.database = database

    def start(self):
        # In start, not setup: every dependency's setup (the Database's engine and relay) has run.
        database = next(d for d in self.container.dependencies if d.attr_name == self.database)
        if not isinstance(database, Database):
            raise TypeError(f"{self.database} is not a Database dependency")
        settings = self.container.config["VERBUND"]
        self.matching = MatchingEngine(database.get_dependency(None), settings.amqp_uri,
                                       announce_window=ANNOUNCE_WINDOW_SECONDS, announce_hold=ANNOUNCE_HOLD_SECONDS,
                                       batch_size=settings.consume_batch_size)
        self.container.spawn_managed_thread(self.matching.warm_up, identifier="matching.warm_up")

    def get_dependency(self, worker_ctx):
        return self.matching
