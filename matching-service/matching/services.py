"""The matching use cases: one function per command and per consumed event,
each taking a unit of work (``uow``: its ``session``, ``emit`` and ``now``),
the in-memory engine where it matches, and validated input.

The caller (``matching.dependencies.MatchingEngine``) runs them one at a time
under the engine's lock and, on PostgreSQL, an advisory lock, after it has
applied what other instances wrote to the read model (``catch_up``), so the
read model's ``seq`` rises in commit order. Events go out through
``uow.emit`` and reach the outbox in one statement when the unit of work
commits, in the order emitted.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, tuple_, update

from matching import analyses, domain, queries, semantic, vectors
from matching.engine import Engine
from matching.models import (
    DeclinedPair,
    MemberProfile,
    PendingAnnouncement,
    Proposal,
    ProposalMember,
    SuggestionSet,
)
from matching.queries import Lookups, project_data
from verbund import outbox
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import Conflict, Forbidden, NotFound, Unprocessable

STORED_LISTS_PER_QUERY = 200  # suggestion lists read with one SELECT ... IN
# Pending lists one flush round announces (the rest in the next round). A round holds the engine's
# lock: short rounds (~0.1 s) let a newcomer's event in between, so it does not wait behind hundreds.
PENDING_PER_ROUND = 25
log = logging.getLogger(__name__)


# --- the read model and the engine --------------------------------------------------------------------

def _next_seq(uow: UnitOfWork) -> int:
    return (uow.session.execute(select(func.max(MemberProfile.seq))).scalar() or 0) + 1


def load_engine(uow: UnitOfWork, engine: Engine) -> None:
    """Build the engine's index and everybody's suggestions from the read model (with the stored
    analyses of its free-text labels; those it had to do are stored)."""
    seq, profiles = queries.read_model(uow.session)
    labels = analyses.labels_of(profiles, engine.text)
    missing = labels - analyses.read(uow.session, engine.text, labels)
    try:
        engine.load(profiles)
    finally:
        engine.text.forget()
    analyses.store(uow.session, engine.text, missing)
    engine.seq = seq


def catch_up(uow: UnitOfWork, engine: Engine) -> None:
    """Apply what other instances wrote to the read model since this engine's state (``engine.seq``)."""
    rows = uow.session.execute(select(MemberProfile).where(MemberProfile.seq > engine.seq)
                               .order_by(MemberProfile.seq)).scalars().all()
    if rows and engine.semantic is not None:
        # The other instance embedded these texts and stored the vectors before it wrote the
        # profiles: read them, or its members would be matched lexically here until a rebuild.
        vectors.ensure(uow.session, engine.semantic, None, semantic.MODEL,
                       [row.profile for row in rows if not row.deleted])
    for row in rows:
        if row.deleted:
            engine.remove(row.id)
        else:
            engine.upsert(row.profile)
        engine.seq = row.seq


def on_member_event(uow: UnitOfWork, engine: Engine, event: dict) -> None:
    """member.registered / member.updated (v1 or v2) / member.deleted: the read model, suggestions
    and proposals follow. Other types are not matching's business and change nothing. A batch of
    one (``on_member_events``)."""
    on_member_events(uow, engine, [event])


@dataclass
class Fanout:
    """What a batch of member events leaves to do once, after all of them are applied
    (``on_member_events``): the lists to announce, the proposals to close, the anchors to try.

    ``lists``: members whose suggestion lists changed; ``first``: the members whose events these
    are, in event order (their own lists go out first); ``closings``: (reason, member id) in event
    order, ``consent_withdrawn`` or ``member_deleted``; ``anchors``: per event, whom to propose
    around, in that event's order of preference."""
    lists: set[str] = field(default_factory=set)
    first: list[str] = field(default_factory=list)
    closings: list[tuple[str, str]] = field(default_factory=list)
    anchors: list[list[str]] = field(default_factory=list)


def on_member_events(uow: UnitOfWork, engine: Engine, events: list[dict], *, window: float = 0.0) -> Fanout:
    """A batch of member.* events (in delivery order, not handled before) in one unit of work.

    Each event changes the read model and the engine in order, as one at a time would (an older
    version than the one held is ignored, so per-member order is kept). The fan-out is coalesced:
    every suggestion list the batch changed is announced once, with its final content (the
    batch's own members first, in event order, then the others in id order; a list that ends as it
    was told before is not announced again); proposals are closed as the events ask, then tried
    once per anchor for the whole batch (``propose_anchors``). A member registered and deleted
    within the batch is not announced, nor named in anyone's announced list. Returns the Fanout.

    ``window`` (seconds; 0: everything at once): the lists of members whose events these are go out
    at once, and proposals around them are tried at once; the other changed lists, and the
    proposals around those members, are marked pending in this unit of work, due ``window`` seconds
    from now (a mark already pending keeps its earlier time), for ``flush_pending`` to announce
    once with their state then."""
    fanout = Fanout()
    # the batch's texts linked at once (the other side's vectors converted once, not per member)
    engine.link_profiles([minimal(event["data"]["profile"]) for event in events
                          if event["type"] in ("member.registered", "member.updated")])
    for number, event in enumerate(events):
        if number:
            time.sleep(0)  # a long batch lets other green threads (heartbeats, HTTP) run
        if event["type"] == "member.deleted":
            on_member_deleted(uow, engine, event, fanout)
        elif event["type"] in ("member.registered", "member.updated"):
            on_member_changed(uow, engine, event, fanout)
    changed = [member_id for member_id in fanout.lists if member_id in engine]
    own = set(fanout.first) if window > 0 else set(changed)
    publish_suggestions(uow, engine, [member_id for member_id in changed if member_id in own], first=fanout.first)
    for reason, member_id in fanout.closings:
        if reason == "member_deleted":
            erase_member(uow, engine, member_id)
        else:
            close_proposals(uow, involving=member_id, reason=reason)
    deferred: list[str] = []
    propose_anchors(uow, engine, fanout.anchors, deferred=deferred if window > 0 else None, keep=own)
    if window > 0:
        mark_pending(uow, [member_id for member_id in changed if member_id not in own], deferred,
                     due=uow.now() + timedelta(seconds=window))
    return fanout


def on_member_changed(uow: UnitOfWork, engine: Engine, event: dict, fanout: Fanout) -> None:
    """A member registered or changed: keep the newer profile and update the engine; note in
    ``fanout`` the lists that changed (its own first), its open proposals to close if it withdrew
    consent, and whom to propose around: the member itself if what it offers or needs changed, and
    the members it now matters to."""
    profile = event["data"]["profile"]
    changed = event["data"].get("changed")
    if not store_profile(uow, engine, profile):
        log.info("ignored %s of %s: version %s is not newer", event["type"], profile["id"], profile["version"])
        return
    changes = engine.upsert(minimal(profile))
    fanout.lists.update(changes.lists)
    if profile["id"] not in fanout.first:
        fanout.first.append(profile["id"])
    if not profile["consent"]["suggest_as_partner"]:
        fanout.closings.append(("consent_withdrawn", profile["id"]))
    # Those it matters to most come first (it tops their list), so the obvious partner of a
    # newcomer is not crowded out by older members it merely entered the lists of.
    anchors = [profile["id"]] if domain.affects_matching(changed) else []
    fanout.anchors.append(anchors + anchors_by_gain(changes.lists, profile["id"]))


def propose_anchors(uow: UnitOfWork, engine: Engine, anchors: list[list[str]], *,
                    deferred: list[str] | None = None, keep: Collection[str] = ()) -> int:
    """Try proposals around the anchors of each event in turn (``anchors``: per event, in its order of
    preference): per event at most domain.PROPOSALS_PER_EVENT searches, each anchor at most once per
    call (so once per batch), members no longer in the engine skipped. Returns the searches made.

    ``deferred``: if given, only anchors in ``keep`` (the members whose events these are) are
    searched at once; the others that would be searched are appended to ``deferred`` instead (they
    count against the event's limit as a search would), for ``flush_pending``."""
    lookups = Lookups(uow.session)
    seen: set[str] = set()
    searched = 0
    # every candidate's own proposals in one query, not one per anchor (each anchor is searched at
    # most once here, so what an earlier search writes never concerns a later anchor's own)
    reach = domain.PROPOSALS_PER_EVENT * 4  # an event's candidates looked at, in its order of preference
    owned = own_proposals(uow, [member_id for candidates in anchors for member_id in candidates[:reach]
                                if member_id in engine])
    for candidates in anchors:
        tried = 0
        for member_id in candidates[:reach]:
            if tried == domain.PROPOSALS_PER_EVENT:
                break
            if member_id in seen or member_id not in engine:
                continue
            seen.add(member_id)
            state = anchor_state(uow, engine, member_id, own=owned.get(member_id, []))
            if state.settled:
                continue  # its proposal stands (or it declined lately): no need to search
            tried += 1
            if deferred is not None and member_id not in keep:
                deferred.append(member_id)
                continue
            propose_around(uow, engine, member_id, lookups, state=state)
        searched += tried
    return searched


def mark_pending(uow: UnitOfWork, member_ids: Sequence[str], anchors: Sequence[str], due: datetime) -> None:
    """Mark the lists of ``member_ids`` (and the proposals around ``anchors``) to be announced at
    ``due`` (``flush_pending``); a member already marked keeps its earlier time, so a list that
    keeps changing still goes out within one window of its first change."""
    session = uow.session
    proposing = set(anchors)
    wanted = sorted(set(member_ids) | proposing)
    for start in range(0, len(wanted), STORED_LISTS_PER_QUERY):
        chunk = wanted[start:start + STORED_LISTS_PER_QUERY]
        marked = {row.member_id: row for row in session.execute(
            select(PendingAnnouncement).where(PendingAnnouncement.member_id.in_(chunk))).scalars()}
        for member_id in chunk:
            row = marked.get(member_id)
            if row is None:
                session.add(PendingAnnouncement(member_id=member_id, due_at=due, propose=member_id in proposing))
            elif member_id in proposing:
                row.propose = True
    session.flush()


@dataclass
class Flushed:
    """What one round of ``flush_pending`` did: marks taken, lists announced, proposal searches."""
    taken: int = 0
    announced: int = 0
    searched: int = 0


def flush_pending(uow: UnitOfWork, engine: Engine, *, limit: int = PENDING_PER_ROUND,
                  held: float = 0.0) -> Flushed:
    """One round: take up to ``limit`` marks that are due (the earliest first) and delete them;
    announce each member's list as the engine holds it now, if it differs from what the member was
    last told (``publish_suggestions``); then try a proposal once around each marked anchor. Members
    deleted meanwhile are neither announced nor searched. On PostgreSQL the marks are claimed with
    ``FOR UPDATE SKIP LOCKED`` (besides the read-model lock the caller holds), so two instances never
    take the same mark; a crash before commit leaves them for the next round.

    ``held`` (seconds): marks wait this much longer than their due time (while an import or a burst
    still flows, ``MatchingEngine.flush``), so that a list it keeps changing goes out fewer times."""
    session = uow.session
    query = (select(PendingAnnouncement.member_id, PendingAnnouncement.propose)
             .where(PendingAnnouncement.due_at <= uow.now() - timedelta(seconds=held))
             .order_by(PendingAnnouncement.due_at, PendingAnnouncement.member_id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    marks = session.execute(query).all()
    if not marks:
        return Flushed()
    taken = [mark.member_id for mark in marks]
    session.execute(delete(PendingAnnouncement).where(PendingAnnouncement.member_id.in_(taken)))
    announced = publish_suggestions(uow, engine, [member_id for member_id in taken if member_id in engine])
    anchors = [[mark.member_id] for mark in marks if mark.propose]
    searched = propose_anchors(uow, engine, anchors)
    return Flushed(len(taken), announced, searched)


def anchors_by_gain(lists: dict[str, list[tuple[str, float]]], member_id: str) -> list[str]:
    """The members whose lists changed because of ``member_id``, those that rank it highest first
    (by its score in their list), then those that do not list it, in id order."""
    score = {other: dict(partners).get(member_id) for other, partners in lists.items() if other != member_id}
    return sorted(score, key=lambda other: (score[other] is None, -(score[other] or 0.0), other))


def on_member_deleted(uow: UnitOfWork, engine: Engine, event: dict, fanout: Fanout) -> None:
    """A member left (``data``: ``{id, version}``): a tombstone and out of the engine now; the lists it
    left and the erasure of its proposals noted in ``fanout`` (``forget_member``)."""
    remove_member(uow, engine, event["data"]["id"], event["data"]["version"], fanout)


def minimal(profile: dict) -> dict:
    """What matching keeps of a profile: no contact person, e-mail address or website (nor their ciphertext)."""
    kept = {key: value for key, value in profile.items() if key != "personal"}
    return {**kept, "contact": {"language": profile.get("contact", {}).get("language", "de")}, "website": None}


def store_profile(uow: UnitOfWork, engine: Engine, profile: dict) -> bool:
    """Keep a newer profile; False if the read model holds this version or a newer one."""
    session = uow.session
    row = session.get(MemberProfile, profile["id"])
    if row is not None and domain.is_stale(row.version, profile["version"]):
        return False
    seq = _next_seq(uow)
    if row is None:
        row = MemberProfile(id=profile["id"])
        session.add(row)
    row.version, row.seq, row.deleted, row.profile = profile["version"], seq, False, minimal(profile)
    row.updated_at = uow.now()
    session.flush()
    engine.seq = seq
    return True


def forget_member(uow: UnitOfWork, engine: Engine, member_id: str, version: int) -> None:
    """A member left: keep a tombstone, drop it from every suggestion, close and forget its proposals."""
    fanout = Fanout()
    remove_member(uow, engine, member_id, version, fanout)
    publish_suggestions(uow, engine, [other for other in fanout.lists if other in engine])
    for _, gone in fanout.closings:
        erase_member(uow, engine, gone)


def remove_member(uow: UnitOfWork, engine: Engine, member_id: str, version: int, fanout: Fanout) -> None:
    """The first half of forgetting a member: a tombstone in the read model (unless it holds this
    version or a newer one) and the member out of the engine; the lists that changed and the
    erasure (``erase_member``) are noted in ``fanout``."""
    session = uow.session
    row = session.get(MemberProfile, member_id)
    if row is not None and (row.deleted or domain.is_stale(row.version, version)):
        return
    seq = _next_seq(uow)
    if row is None:
        row = MemberProfile(id=member_id)
        session.add(row)
    row.version, row.seq, row.deleted, row.profile, row.updated_at = version, seq, True, None, uow.now()
    session.flush()
    engine.seq = seq
    fanout.lists.update(engine.remove(member_id).lists)
    fanout.closings.append(("member_deleted", member_id))


def erase_member(uow: UnitOfWork, engine: Engine, member_id: str) -> None:
    """The second half: its stored list, its proposals (the open ones closed and announced without
    its name first), its declined pairings and the published events that name it are deleted."""
    session = uow.session
    if member_id not in engine:  # unless it registered again since (a newer version)
        session.execute(delete(SuggestionSet).where(SuggestionSet.member_id == member_id))
        session.execute(delete(PendingAnnouncement).where(PendingAnnouncement.member_id == member_id))
    close_proposals(uow, involving=member_id, reason="member_deleted", erase=member_id)
    ids = select(ProposalMember.proposal_id).where(ProposalMember.member_id == member_id)
    for proposal in session.execute(select(Proposal).where(Proposal.id.in_(ids))).scalars().all():
        session.delete(proposal)
    session.execute(delete(DeclinedPair).where(or_(DeclinedPair.member_a == member_id,
                                                   DeclinedPair.member_b == member_id)))
    # Events already published that name the member leave the replayable history.
    table = outbox.outbox_table
    session.execute(delete(table).where(table.c.published_at.is_not(None), table.c.body.contains(member_id)))


# --- suggestions ---------------------------------------------------------------------------------------

def publish_suggestions(uow: UnitOfWork, engine: Engine, member_ids, first: Sequence[str] = ()) -> int:
    """Store and announce (``match.suggested``) the lists that changed in substance, each once with
    what the engine holds now; return how many were announced. The lists of ``first`` (the members
    whose events these are, who wait for their suggestions) go out first in that order, then the
    others in id order."""
    session = uow.session
    order = {member_id: i for i, member_id in enumerate(first)}
    member_ids = sorted(member_ids, key=lambda member_id: (order.get(member_id, len(order)), member_id))
    announced = 0
    for start in range(0, len(member_ids), STORED_LISTS_PER_QUERY):
        if start:
            time.sleep(0)  # a long refresh lets other green threads (heartbeats, HTTP) run
        chunk = member_ids[start:start + STORED_LISTS_PER_QUERY]
        told = dict(session.execute(select(SuggestionSet.member_id, SuggestionSet.fingerprint)
                                    .where(SuggestionSet.member_id.in_(chunk))).all())
        # The stored lists this engine computed itself: a newcomer in a list leaves the other partners'
        # explanations as they were, so those are read (~12 KB of JSON) instead of explained again.
        reusable = [member_id for member_id in chunk if engine.told_list_reusable(member_id, told.get(member_id))]
        earlier = dict(session.execute(select(SuggestionSet.member_id, SuggestionSet.suggestions)
                                       .where(SuggestionSet.member_id.in_(reusable))).all()) if reusable else {}
        news, inserts, updates, refingerprinted = [], [], [], []
        for member_id in chunk:
            suggestions = engine.explain_list(member_id, earlier.get(member_id))
            fingerprint = domain.fingerprint(suggestions)
            engine.told(member_id, fingerprint)
            if told.get(member_id) == fingerprint:
                continue
            if domain.told_in_earlier_form(told.get(member_id), suggestions):
                # told in the earlier fingerprint's form: kept in the new one, not announced again
                refingerprinted.append({"member_id": member_id, "fingerprint": fingerprint})
                continue
            # An empty list is news only to a member that was told of partners before.
            worth_telling = bool(suggestions) or member_id in told
            (updates if member_id in told else inserts).append(
                {"member_id": member_id, "fingerprint": fingerprint, "suggestions": suggestions,
                 "updated_at": uow.now()})
            if worth_telling:
                news.append((member_id, suggestions))
        # the chunk's stored lists in two statements (ORM bulk INSERT and UPDATE by primary key)
        if inserts:
            session.execute(insert(SuggestionSet), inserts)
        if updates:
            session.execute(update(SuggestionSet), updates)
        if refingerprinted:
            session.execute(update(SuggestionSet), refingerprinted)
        for member_id, suggestions in news:
            uow.emit("match.suggested", member_id, {"member_id": member_id, "suggestions": suggestions})
        announced += len(news)
    return announced


def refresh_all(uow: UnitOfWork, engine: Engine) -> int:
    """After a rebuild: store every member's suggestions, announcing those that changed; drop the
    stored lists of members the engine no longer has. Returns how many lists were announced."""
    ids = [member_id for member_id, _ in engine.all_suggestions()]
    announced = publish_suggestions(uow, engine, ids)
    known = set(ids)
    for member_id in uow.session.execute(select(SuggestionSet.member_id)).scalars().all():
        if member_id not in known:
            uow.session.execute(delete(SuggestionSet).where(SuggestionSet.member_id == member_id))
    return announced


# --- proposals -----------------------------------------------------------------------------------------

def create_proposal(uow: UnitOfWork, consortium: dict, lookups: Lookups) -> dict:
    """Store a consortium (as ``Engine.propose`` returns it) as an open proposal and emit
    ``project.proposed``; returns the proposal as the API shows it."""
    now = uow.now()
    member_ids = [m["member_id"] for m in consortium["members"]]
    proposal = Proposal(id=str(uuid.uuid4()), anchor_id=consortium["anchor_id"], topic=consortium["topic"],
                        title=consortium["title"], status="proposed", score=consortium["score"],
                        need_coverage=consortium["need_coverage"],
                        explanation=consortium["explanation"],
                        member_key=domain.member_key(member_ids),
                        created_at=now, updated_at=now)
    proposal.members = [ProposalMember(member_id=m["member_id"], position=i, name=m["name"], sector=m["sector"],
                                       response="pending") for i, m in enumerate(consortium["members"])]
    uow.session.add(proposal)
    uow.session.flush()
    lookups.proposed(member_ids)
    data = project_data(proposal)
    uow.emit("project.proposed", proposal.id, {"project": data})
    return data


@dataclass
class AnchorState:
    """What proposing around a member depends on: its open proposal, when it last declined (or a
    partner declined its team), and whether there is no point searching now (``settled``)."""
    open: Proposal | None
    last_declined: datetime | None
    settled: bool


def own_proposals(uow: UnitOfWork, member_ids: Sequence[str]) -> dict[str, list[Proposal]]:
    """{member id: the proposals anchored on it, whatever their status}, for many members in a
    query per 500 of them (through the anchor's index alone: with "status = 'proposed'" in the query
    SQLite walks every open proposal by the status index)."""
    owned: dict[str, list[Proposal]] = {}
    wanted = list(dict.fromkeys(member_ids))
    for start in range(0, len(wanted), 500):
        for proposal in uow.session.execute(
                select(Proposal).where(Proposal.anchor_id.in_(wanted[start:start + 500]))).scalars():
            owned.setdefault(proposal.anchor_id, []).append(proposal)
    return owned


def anchor_state(uow: UnitOfWork, engine: Engine, member_id: str, *, requested: bool = False,
                 own: list[Proposal] | None = None) -> AnchorState:
    """Its open proposal stands while it is younger than the quiet period and its team still
    clearly covers the member's needs; after a decline the next unasked proposal waits the quiet
    period too (``domain.POLICY``). A member who asks (``requested``) is never made to wait.
    ``own``: the proposals anchored on it, if read already (``own_proposals``)."""
    now = uow.now()
    if own is None:
        own = own_proposals(uow, [member_id]).get(member_id, [])
    open_own = next((proposal for proposal in own if proposal.status == "proposed"), None)
    last_declined = max((p.updated_at for p in own if p.closed_reason == "declined"), default=None)
    settled = False
    if not requested:
        if open_own is not None:
            settled = domain.too_soon(now, open_own.created_at) and domain.clearly_covers(
                engine.team_coverage(member_id, [m.member_id for m in open_own.members]))
        else:
            settled = domain.too_soon(now, last_declined)
    return AnchorState(open_own, last_declined, settled)


def propose_around(uow: UnitOfWork, engine: Engine, member_id: str, lookups: Lookups | None = None, *,
                   state: AnchorState | None = None) -> dict | None:
    """Propose a consortium around a member's needs if one clearly covers them
    (``domain.clearly_covers``). Its open proposal, if any, stays unless the new team is clearly
    better and the open one has stood long enough (``domain.supersedes``); then the old one is
    closed as superseded. Teams proposed before, and parts of them, are not proposed again.
    ``lookups`` may be shared by the calls within one unit of work. Returns the new proposal or None."""
    lookups = lookups or Lookups(uow.session)
    state = state or anchor_state(uow, engine, member_id)
    if state.settled:
        return None
    consortium = engine.propose(member_id, **lookups.options())
    if consortium is None or not domain.clearly_covers(consortium["need_coverage"]):
        return None
    if state.open is not None:
        standing = engine.team_coverage(member_id, [m.member_id for m in state.open.members])
        if not domain.supersedes(consortium["need_coverage"], standing, state.open.created_at, uow.now()):
            return None
        close_proposals(uow, reason="superseded", only=state.open, lookups=lookups)
    return create_proposal(uow, consortium, lookups)


def request_proposal(uow: UnitOfWork, engine: Engine, principal: Principal, member_id: str) -> dict:
    """A member asks for a (new) proposal around its needs, e.g. after it declined one: the best
    team not proposed or declined before, made at once, even if it covers less than an unasked
    proposal must. Forbidden for another member; NotFound for an unknown member; Conflict while a
    proposal around its needs is open (answer that one first); Unprocessable when no team can be
    found (no needs, no consent, or every fitting team was proposed or declined before)."""
    if not domain.can_see_member(principal, member_id):
        raise Forbidden("a member asks for proposals for itself only")
    card = engine.card(member_id)
    if card is None:
        raise NotFound(f"no member {member_id}")
    state = anchor_state(uow, engine, member_id, requested=True)
    if state.open is not None:
        raise Conflict("a proposal around your needs is open: accept or decline it first",
                       proposal_id=state.open.id)
    if not card.needs or not card.consent:
        raise Unprocessable("validation failed", fields={"member_id": [
            "the profile names no needs" if not card.needs else "the member has not agreed to be proposed to others"]})
    lookups = Lookups(uow.session)
    consortium = engine.propose(member_id, **lookups.options())
    if consortium is None:
        raise Unprocessable("no new team can be proposed now: no partners from other sectors cover your needs "
                            "beyond the teams proposed or declined before")
    return create_proposal(uow, consortium, lookups)


def propose(uow: UnitOfWork, engine: Engine, data: dict) -> dict:
    """An organizer asks for a consortium around a member or a topic (``data``: ProposeSchema,
    exactly one of ``member_id`` and ``topic``). NotFound for an unknown member; Unprocessable for
    an unknown topic or when no new consortium can be proposed."""
    lookups = Lookups(uow.session)
    if data.get("topic"):
        if data["topic"] not in engine.vocabulary.topics:
            raise Unprocessable("validation failed", fields={"topic": [f"unknown topic {data['topic']!r}"]})
        consortium = engine.propose_for_topic(data["topic"], **lookups.options())
    else:
        if data["member_id"] not in engine:
            raise NotFound(f"no member {data['member_id']}")
        consortium = engine.propose(data["member_id"], **lookups.options())
    if consortium is None:
        raise Unprocessable("no consortium can be proposed: no consenting partners from other sectors cover "
                            "the needs, or every such team was proposed or declined before")
    return create_proposal(uow, consortium, lookups)


def close_proposals(uow: UnitOfWork, *, reason: str, involving: str | None = None, erase: str | None = None,
                    only: Proposal | None = None, lookups: Lookups | None = None) -> int:
    """Close every open proposal the member ``involving`` is invited to (or just ``only``) with
    ``reason`` and emit ``project.closed`` for each, without the name of the member ``erase``.
    Returns how many were closed."""
    session = uow.session
    if only is not None:
        candidates = [only]
    else:
        ids = select(ProposalMember.proposal_id).where(ProposalMember.member_id == involving)
        # The status filtered here, as in propose_around: the member's few proposals, found by its index.
        candidates = [proposal for proposal in session.execute(
            select(Proposal).where(Proposal.id.in_(ids)).order_by(Proposal.created_at, Proposal.id)).scalars()
            if proposal.status == "proposed"]
    for proposal in candidates:
        proposal.status, proposal.closed_reason, proposal.updated_at = "closed", reason, uow.now()
        session.flush()
        if lookups is not None:
            lookups.closed([m.member_id for m in proposal.members])
        uow.emit("project.closed", proposal.id, {"project": project_data(proposal, erase=erase)})
    return len(candidates)


def respond(uow: UnitOfWork, principal: Principal, proposal_id: str, data: dict) -> dict:
    """An invited member accepts or declines (``data``: ResponseSchema). All accept: formed
    (``project.formed``). One declines: closed (``project.closed``), and the decliner is not
    proposed together with the others again. The same answer again changes nothing; NotFound,
    Forbidden/Unprocessable (``domain.answering_member``, ``domain.check_invited``), Conflict for a
    formed or closed proposal or a changed answer. Returns the proposal as it now is."""
    session = uow.session
    member_id = domain.answering_member(principal, data.get("member_id"))
    proposal = queries.load_proposal(session, proposal_id, for_update=True)
    invited = {m.member_id: m for m in proposal.members}
    domain.check_invited(principal, member_id, invited)
    wanted = domain.RESPONSES[data["response"]]
    invitee = invited[member_id]
    if invitee.response == wanted:
        return project_data(proposal)  # the same answer again: nothing changes
    if proposal.status != "proposed":
        raise Conflict(f"the proposal is {proposal.status} already", proposal_status=proposal.status)
    if invitee.response != "pending":
        raise Conflict(f"{member_id} answered {invitee.response} already")
    now = uow.now()
    invitee.response, invitee.responded_at = wanted, now
    decision = domain.decide({m.member_id: m.response for m in proposal.members})
    proposal.status, proposal.closed_reason, proposal.updated_at = decision.status, decision.closed_reason, now
    if wanted == "declined":
        for a, b in domain.declined_pairs(member_id, list(invited)):
            exists = session.execute(select(DeclinedPair).where(
                tuple_(DeclinedPair.member_a, DeclinedPair.member_b) == (a, b))).first()
            if not exists:
                session.add(DeclinedPair(member_a=a, member_b=b, declined_at=now))
    session.flush()
    result = project_data(proposal)
    if decision.event:
        uow.emit(decision.event, proposal.id, {"project": result})
    return result


# --- rebuilding from members-service --------------------------------------------------------------------

def rebuild_read_model(uow: UnitOfWork, engine: Engine, pages) -> dict:
    """Fill the read model from members-service pages of profiles (an iterable of lists; newer
    versions win) and forget members it no longer has. Returns ``{fetched, stored, forgotten}``.
    Call ``load_engine`` and ``refresh_all`` afterwards."""
    session = uow.session
    seen, stored = set(), 0
    for profiles in pages:
        for profile in profiles:
            seen.add(profile["id"])
            row = session.get(MemberProfile, profile["id"])
            if row is not None and row.deleted and row.version >= profile["version"]:
                continue
            if store_profile(uow, engine, profile):
                stored += 1
    gone = session.execute(select(MemberProfile.id).where(MemberProfile.deleted.is_(False))).scalars().all()
    forgotten = 0
    for member_id in gone:
        if member_id not in seen:
            row = session.get(MemberProfile, member_id)
            forget_member(uow, engine, member_id, row.version + 1)
            forgotten += 1
    return {"fetched": len(seen), "stored": stored, "forgotten": forgotten}
