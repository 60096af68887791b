"""matching-service entrypoints: member events, HTTP. Each hands its work to
``matching.commands`` inside one transaction and returns the result.

The engine lives in memory (``MatchingEngine``), built from the read-model
table when the service starts. If that table is empty, it is first filled
from members-service over RPC (``members.profiles_after``) in the background.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import eventlet
from eventlet.event import Event
from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy

from matching import commands
from matching.engine import Engine
from matching.schemas import (
    MemberProposalQuerySchema,
    ProposalQuerySchema,
    ProposeSchema,
    RebuildSchema,
    ResponseSchema,
)
from verbund.database import Database, Store
from verbund.errors import AppError
from verbund.service import ServiceBase
from verbund.subscriber import subscribe
from verbund.web import ANYONE, api, json_body, json_response

log = logging.getLogger(__name__)

RPC_PAGE = 500
RPC_TIMEOUT = 30
READY_TIMEOUT = 60


class NotReady(AppError):
    status = 503


class MatchingEngine:
    """The container's engine: one at a time changes it (and the read model)."""

    def __init__(self, container, settings):
        self.container = container
        self.settings = settings
        self.engine = Engine()
        self.lock = threading.Lock()  # green under `verbund run`'s monkey patch
        self.ready = Event()
        self.stale = True

    def store(self) -> Store:
        database = next(d for d in self.container.dependencies if isinstance(d, Database))
        return Store(database.engine, database.relay)

    def wait_ready(self) -> None:
        if not self.ready.ready():
            with eventlet.Timeout(READY_TIMEOUT, False):
                self.ready.wait()
        if not self.ready.ready():
            raise NotReady("the matching engine is still loading; try again shortly")

    def reload(self, store: Store) -> None:
        """Build the engine from the read model (the caller holds the lock)."""
        started = time.monotonic()
        with store.transaction() as session:
            seq, profiles = commands.read_model(session)
        # Outside the transaction: on SQLite it would hold the write lock all the while.
        self.engine.load(profiles)
        self.engine.seq = seq
        self.stale = False
        log.info("matching engine loaded: %d members in %.1fs", len(self.engine), time.monotonic() - started)

    def handle(self, store: Store, work):
        """Run ``work(engine)`` (which opens its transaction) under the lock; a failure leaves the
        engine to be rebuilt from the read model, which the rolled-back transaction did not change."""
        self.wait_ready()
        with self.lock:
            if self.stale:
                self.reload(store)
            try:
                return work(self.engine)
            except BaseException:
                self.stale = True
                raise

    def fetch_pages(self):
        """Every live profile from members-service, a page at a time."""
        config = {"AMQP_URI": self.settings.amqp_uri, "serializer": "json"}
        with ClusterRpcProxy(config, timeout=RPC_TIMEOUT) as rpc:
            after = None
            while True:
                page = rpc.members.profiles_after(after, RPC_PAGE)
                yield page["profiles"]
                if not page["next"]:
                    return
                after = page["next"]

    def rebuild(self, store: Store, from_members: bool = True) -> dict:
        """Refill the read model from members-service (optional), rebuild the engine and store
        (and announce) every suggestion that changed."""
        result = {}
        pages = None
        if from_members:
            try:
                pages = list(self.fetch_pages())  # before taking the lock: events flow while we wait
            except Exception as exc:
                raise NotReady(f"members-service did not answer: {type(exc).__name__}: {exc}") from None
        with self.lock:
            try:
                if pages is not None:
                    with store.transaction() as session:
                        result.update(commands.rebuild_read_model(session, self.engine, pages))
                self.reload(store)
                with store.transaction() as session:
                    commands.serialise(session)
                    result["announced"] = commands.refresh_all(session, self.engine)
            except BaseException:
                self.stale = True
                raise
        result["members"] = len(self.engine)
        return result

    def warm_up(self) -> None:
        """At start: load the engine; if the read model was empty, fill it from members-service."""
        store = self.store()
        delay = 1.0
        while True:
            try:
                with store.transaction() as session:
                    empty = commands.read_model_empty(session)
                with self.lock:
                    self.engine.warm_up()
                    self.reload(store)
                break
            except Exception as exc:  # the database is not reachable yet: /ready says so meanwhile
                log.warning("loading the matching engine failed, retrying in %.0fs: %s", delay, exc)
                eventlet.sleep(delay)
                delay = min(delay * 2, 60)
        self.ready.send(True)
        delay = 1.0
        while empty:
            try:
                log.info("read model rebuilt from members-service: %s", self.rebuild(store, from_members=True))
                return
            except Exception as exc:  # members-service not up yet: try again; events flow meanwhile
                log.warning("rebuild from members-service failed, retrying in %.0fs: %s", delay, exc)
                eventlet.sleep(delay)
                delay = min(delay * 2, 60)


class EngineProvider(DependencyProvider):
    def setup(self):
        self.matching = MatchingEngine(self.container, self.container.config["VERBUND"])

    def start(self):
        self.container.spawn_managed_thread(self.matching.warm_up, identifier="matching.warm_up")

    def get_dependency(self, worker_ctx):
        return self.matching


class MatchingService(ServiceBase):
    name = "matching"
    matching = EngineProvider()

    @subscribe()
    def on_member_event(self, event):
        if not event["type"].startswith("member."):
            return
        store = self.db

        def work(engine):
            return store.handle_once(event, lambda session, e: commands.apply_member_event(session, engine, e))

        self.matching.handle(store, work)

    @api("GET", "/ready", roles=ANYONE, responses={200: "Database, broker and engine ready", 503: "Not ready"})
    def ready(self, request):
        """Ready when the database and the broker answer and the engine is loaded."""
        response = ServiceBase.ready(self, request)
        body = json.loads(response.get_data())
        body["checks"]["engine"] = "ok" if self.matching.ready.ready() else "loading"
        body["ready"] = body["ready"] and body["checks"]["engine"] == "ok"
        return json_response(body, 200 if body["ready"] else 503)

    @api("GET", "/members/<string:member_id>/suggestions", roles=("admin", "member"),
         responses={200: ("The member's explained cross-sector partner suggestions", {"type": "object"})})
    def suggestions(self, request, member_id):
        """A member's partner suggestions, each with its score's parts and reasons."""
        with self.db.transaction() as session:
            return commands.suggestions_of(session, request.principal, member_id)

    @api("GET", "/members/<string:member_id>/proposals", roles=("admin", "member"), query=MemberProposalQuerySchema,
         responses={200: ("The partner-project proposals the member is invited to", {"type": "object"})})
    def member_proposals(self, request, member_id):
        """The proposals a member is part of."""
        query = MemberProposalQuerySchema().load(request.args.to_dict())
        with self.db.transaction() as session:
            return commands.proposals_of(session, request.principal, member_id, query.get("status"))

    @api("GET", "/proposals", roles=("admin",), query=ProposalQuerySchema,
         responses={200: ("A page of proposals", {"type": "object"})})
    def list_proposals(self, request):
        """Every proposal, filtered and a page at a time."""
        query = ProposalQuerySchema().load(request.args.to_dict())
        with self.db.transaction() as session:
            return commands.list_proposals(session, query)

    @api("GET", "/proposals/<string:proposal_id>", roles=("admin", "member"),
         responses={200: ("The proposal with its explanation", {"type": "object"})})
    def get_proposal(self, request, proposal_id):
        """One proposal, for its members and admins."""
        with self.db.transaction() as session:
            return commands.get_proposal(session, request.principal, proposal_id)

    @api("POST", "/proposals/<string:proposal_id>/responses", roles=("admin", "member"), body=ResponseSchema,
         errors=(409,), responses={200: ("The proposal after the answer", {"type": "object"})})
    def respond(self, request, proposal_id):
        """Accept or decline an invitation; all accept: formed, one declines: closed."""
        data = ResponseSchema().load(json_body(request))
        with self.db.transaction() as session:
            return commands.respond(session, request.principal, proposal_id, data)

    @api("POST", "/proposals", roles=("admin", "organizer"), body=ProposeSchema, errors=(404, 409),
         responses={201: ("The proposal made, or why none could be", {"type": "object"})})
    def propose(self, request):
        """Build a proposal around a member's needs or a topic now."""
        data = ProposeSchema().load(json_body(request))
        store = self.db

        def work(engine):
            with store.transaction() as session:
                commands.serialise(session)
                commands.catch_up(session, engine)
                return commands.propose(session, engine, data)

        return json_response(self.matching.handle(store, work), 201)

    @api("POST", "/admin/rebuild", roles=("admin",), body=RebuildSchema, errors=(503,),
         responses={200: ("What the rebuild did", {"type": "object"})})
    def rebuild(self, request):
        """Rebuild the read model (from members-service) and every suggestion."""
        data = RebuildSchema().load(json_body(request) if request.get_data() else {})
        self.matching.wait_ready()
        return self.matching.rebuild(self.db, from_members=data["from_members"])
