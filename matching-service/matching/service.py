"""matching-service entrypoints: member events, HTTP. Each parses, authorises,
hands its work to one use case (``matching.services``) or query
(``matching.queries``) in one unit of work, and answers.

The engine, its locks and the rebuild from members-service are in
``matching.dependencies``.
"""
from __future__ import annotations

import logging

from nameko.timer import timer

from matching import pair_scores, queries, services
from matching.dependencies import ANNOUNCE_CHECK_SECONDS, EngineProvider
from matching.schemas import (
    STATS,
    MemberProposalQuerySchema,
    MemberProposalsSchema,
    ProposalPageSchema,
    ProposalQuerySchema,
    ProposalSchema,
    ProposeSchema,
    RebuildResultSchema,
    RebuildSchema,
    ResponseSchema,
    SuggestionsSchema,
)
from verbund import stats
from verbund.service import ServiceBase
from verbund.subscriber import subscribe
from verbund.web import api, json_response

log = logging.getLogger(__name__)


class MatchingService(ServiceBase):
    name = "matching"
    matching = EngineProvider(database="db")

    # The batch form: the engine runs the batch in a transaction of its own under its lock (a
    # per-event handler would wait on the subscriber's shared transaction). CONSUME_BATCH_SIZE 1
    # hands batches of one; a failing batch comes again one event at a time.
    @subscribe(batch=True)
    def on_member_events(self, events):
        """A batch of consumed events (delivery order): the member.* ones not handled before go
        through ``services.on_member_events`` in one unit of work, their fan-out coalesced."""
        members = [event for event in events if event["type"].startswith("member.")]
        if members:
            self.matching.on_member_events(members, delivered=len(events))

    # Other members' lists changed by consumed events wait ANNOUNCE_WINDOW_SECONDS (marked in the
    # database, so a restart loses none); this announces the due ones, once each, on any instance.
    @timer(interval=ANNOUNCE_CHECK_SECONDS)
    def announce_pending(self):
        """Announce the suggestion lists whose window has passed (``MatchingEngine.flush``); nothing
        until the engine is loaded."""
        if self.matching.ready.ready():
            done = self.matching.flush()
            if done.taken:
                log.debug("pending lists: %d taken, %d announced, %d proposal searches",
                          done.taken, done.announced, done.searched)

    def readiness_checks(self) -> dict[str, str]:
        """The database and the broker, and the engine: "loading" until its read model is in memory."""
        checks = super().readiness_checks()
        checks["engine"] = "ok" if self.matching.ready.ready() else "loading"
        # "degraded: …" when the embedding model could not be loaded: ready, but matching lexically.
        checks["semantic"] = self.matching.semantic_status
        return checks

    @api("GET", "/members/<string:member_id>/suggestions", roles=("admin", "member"),
         responses={200: ("The member's explained cross-sector partner suggestions", SuggestionsSchema)})
    def suggestions(self, request, member_id):
        """A member's partner suggestions, each with its score's parts and reasons."""
        with self.db.unit_of_work() as uow:
            return queries.suggestions_of(uow.session, request.principal, member_id)

    @api("POST", "/pair-scores", roles=("admin", "member"), body=pair_scores.PairScoresSchema, errors=(403, 404),
         responses={200: ("The others of another sector, scored and explained for the member, best first",
                          {"type": "object"})})
    def pair_scores(self, request):
        """Pair scores of one member against a given set of members (meetings-service's "whom to meet")."""
        return self.matching.run(pair_scores.pair_scores, request.principal, request.body_data)

    @api("GET", "/members/<string:member_id>/proposals", roles=("admin", "member"), query=MemberProposalQuerySchema,
         responses={200: ("The partner-project proposals the member is invited to", MemberProposalsSchema)})
    def member_proposals(self, request, member_id):
        """The proposals a member is part of."""
        with self.db.unit_of_work() as uow:
            return queries.proposals_of(uow.session, request.principal, member_id, request.query_data.get("status"))

    @api("POST", "/members/<string:member_id>/proposals", roles=("admin", "member"), errors=(404, 409, 422),
         responses={201: ("A new proposal around the member's needs", ProposalSchema)})
    def request_proposal(self, request, member_id):
        """Ask for a (new) partner-project proposal around the member's needs, e.g. after declining
        one: the best team not proposed or declined before, made at once (``project.proposed``).
        The member itself or an admin; no body. 403 another member's; 404 unknown or deleted member;
        409 while a proposal around its needs is open (answer it first; ``proposal_id`` names it);
        422 when the profile names no needs, the member has not agreed to be proposed, or no new
        team can be found."""
        return json_response(self.matching.run(services.request_proposal, request.principal, member_id), 201)

    @api("GET", "/proposals", roles=("admin",), query=ProposalQuerySchema,
         responses={200: ("A page of proposals", ProposalPageSchema)})
    def list_proposals(self, request):
        """Every proposal, filtered and a page at a time."""
        with self.db.unit_of_work() as uow:
            return queries.list_proposals(uow.session, request.query_data)

    @api("GET", "/proposals/<string:proposal_id>", roles=("admin", "member"),
         responses={200: ("The proposal with its explanation", ProposalSchema)})
    def get_proposal(self, request, proposal_id):
        """One proposal, for its members and admins."""
        with self.db.unit_of_work() as uow:
            return queries.get_proposal(uow.session, request.principal, proposal_id)

    @api("POST", "/proposals/<string:proposal_id>/responses", roles=("admin", "member"), body=ResponseSchema,
         errors=(409,), responses={200: ("The proposal after the answer", ProposalSchema)})
    def respond(self, request, proposal_id):
        """Accept or decline an invitation; all accept: formed, one declines: closed."""
        with self.db.unit_of_work() as uow:
            return services.respond(uow, request.principal, proposal_id, request.body_data)

    @api("POST", "/proposals", roles=("admin", "organizer"), body=ProposeSchema, errors=(404, 409),
         responses={201: ("The proposal made", ProposalSchema)})
    def propose(self, request):
        """Build a proposal around a member's needs or a topic now."""
        return json_response(self.matching.run(services.propose, request.body_data), 201)

    @api("GET", "/stats/matching", roles=("admin", "organizer"), query=stats.StatsQuerySchema,
         responses={200: ("Suggestions made, partner projects proposed, formed and closed (why)", STATS)})
    def matching_stats(self, request):
        """What matching produced for one association's members (``?association=``) or for all:
        ``{scope, suggestions: {total, members}, proposals: {total, proposed, formed, closed,
        closed_by_reason}}``. Organizers see their own association's figures and the totals (403
        another's), admins all."""
        association = stats.scope(request.principal, request.query_data["association"])
        with self.db.unit_of_work() as uow:
            return queries.stats(uow.session, association)

    @api("POST", "/admin/rebuild", roles=("admin",), body=RebuildSchema, errors=(503,),
         responses={200: ("What the rebuild did", RebuildResultSchema)})
    def rebuild(self, request):
        """Rebuild the read model (from members-service) and every suggestion."""
        self.matching.wait_ready()
        return self.matching.rebuild(from_members=request.body_data["from_members"])
