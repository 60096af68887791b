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

from sqlalchemy import delete, func, or_, select, tuple_

from matching import domain, queries
from matching.engine import Engine
from matching.models import DeclinedPair, MemberProfile, Proposal, ProposalMember, SuggestionSet
from matching.queries import Lookups, project_data
from verbund import outbox
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import Conflict, NotFound, Unprocessable

STORED_LISTS_PER_QUERY = 200  # suggestion lists read with one SELECT ... IN
log = logging.getLogger(__name__)


# --- the read model and the engine --------------------------------------------------------------------

def _next_seq(uow: UnitOfWork) -> int:
    return (uow.session.execute(select(func.max(MemberProfile.seq))).scalar() or 0) + 1


def load_engine(uow: UnitOfWork, engine: Engine) -> None:
    """Build the engine's index and everybody's suggestions from the read model."""
    seq, profiles = queries.read_model(uow.session)
    engine.load(profiles)
    engine.seq = seq


def catch_up(uow: UnitOfWork, engine: Engine) -> None:
    """Apply what other instances wrote to the read model since this engine's state (``engine.seq``)."""
    rows = uow.session.execute(select(MemberProfile).where(MemberProfile.seq > engine.seq)
                               .order_by(MemberProfile.seq)).scalars().all()
    for row in rows:
        if row.deleted:
            engine.remove(row.id)
        else:
            engine.upsert(row.profile)
        engine.seq = row.seq


def on_member_event(uow: UnitOfWork, engine: Engine, event: dict) -> None:
    """member.registered / member.updated (v1 or v2) / member.deleted: the read model, suggestions
    and proposals follow. Other types are not matching's business and change nothing."""
    if event["type"] == "member.deleted":
        on_member_deleted(uow, engine, event)
    elif event["type"] in ("member.registered", "member.updated"):
        on_member_changed(uow, engine, event)


def on_member_changed(uow: UnitOfWork, engine: Engine, event: dict) -> None:
    """A member registered or changed: keep the newer profile, announce the suggestion lists that
    changed (its own first), close its open proposals if it withdrew consent, and propose around it
    and around the members it now matters to (at most domain.PROPOSALS_PER_EVENT)."""
    profile = event["data"]["profile"]
    changed = event["data"].get("changed")
    if not store_profile(uow, engine, profile):
        log.info("ignored %s of %s: version %s is not newer", event["type"], profile["id"], profile["version"])
        return
    changes = engine.upsert(minimal(profile))
    publish_suggestions(uow, engine, changes.lists, first=profile["id"])
    if not profile["consent"]["suggest_as_partner"]:
        close_proposals(uow, involving=profile["id"], reason="consent_withdrawn")
    # Around the member itself if what it offers or needs changed, and around members who have
    # a new partner now: a growing network leads to better teams.
    anchors = [profile["id"]] if domain.affects_matching(changed) else []
    anchors += [member_id for member_id in changes.lists if member_id != profile["id"]]
    lookups = Lookups(uow.session)
    for member_id in anchors[:domain.PROPOSALS_PER_EVENT]:
        propose_around(uow, engine, member_id, lookups)


def on_member_deleted(uow: UnitOfWork, engine: Engine, event: dict) -> None:
    """A member left (``data``: ``{id, version}``): it is forgotten everywhere (``forget_member``)."""
    forget_member(uow, engine, event["data"]["id"], event["data"]["version"])


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
    publish_suggestions(uow, engine, engine.remove(member_id).lists)
    session.execute(delete(SuggestionSet).where(SuggestionSet.member_id == member_id))
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

def explained(engine: Engine, member_id: str) -> list[dict]:
    """A member's suggestions as match-suggestion.v1 items, best first, each with its ``rank`` (1-based)."""
    suggestions = []
    for rank, (partner_id, _) in enumerate(engine.suggestions(member_id), start=1):
        suggestion = engine.explain(member_id, partner_id)
        if suggestion is not None:
            suggestions.append({**suggestion, "rank": rank})
    return suggestions


def publish_suggestions(uow: UnitOfWork, engine: Engine, member_ids, first: str | None = None) -> int:
    """Store and announce (``match.suggested``) the lists that changed in substance; return how many
    were announced. The list of ``first`` (the member whose event this is, who waits for its
    suggestions) goes out first, then the others in id order."""
    session = uow.session
    member_ids = sorted(member_ids, key=lambda member_id: (member_id != first, member_id))
    announced = 0
    for start in range(0, len(member_ids), STORED_LISTS_PER_QUERY):
        if start:
            time.sleep(0)  # a long refresh lets other green threads (heartbeats, HTTP) run
        chunk = member_ids[start:start + STORED_LISTS_PER_QUERY]
        rows = {row.member_id: row for row in session.execute(
            select(SuggestionSet).where(SuggestionSet.member_id.in_(chunk))).scalars()}
        news = []
        for member_id in chunk:
            suggestions = explained(engine, member_id)
            fingerprint = domain.fingerprint(suggestions)
            row = rows.get(member_id)
            if row is not None and row.fingerprint == fingerprint:
                continue
            # An empty list is news only to a member that was told of partners before.
            worth_telling = bool(suggestions) or row is not None
            if row is None:
                row = SuggestionSet(member_id=member_id)
                session.add(row)
            row.fingerprint, row.suggestions, row.updated_at = fingerprint, suggestions, uow.now()
            if worth_telling:
                news.append((member_id, suggestions))
        session.flush()  # the chunk's stored lists in one go, not one flush per announcement
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


def propose_around(uow: UnitOfWork, engine: Engine, member_id: str, lookups: Lookups | None = None) -> dict | None:
    """Propose a consortium around a member's needs. Its open proposal, if any, stays unless the new
    team covers clearly more of its needs (``domain.supersedes``); then the old one is closed as
    superseded. ``lookups`` may be shared by the calls within one unit of work."""
    session = uow.session
    lookups = lookups or Lookups(session)
    # Through the anchor's index alone, the status filtered here: with "status = 'proposed'" in the
    # query SQLite walks every open proposal by the status index.
    open_own = next((proposal for proposal in session.execute(
        select(Proposal).where(Proposal.anchor_id == member_id)).scalars() if proposal.status == "proposed"), None)
    consortium = engine.propose(member_id, **lookups.options())
    if consortium is None:
        return None
    if open_own is not None:
        if not domain.supersedes(consortium["need_coverage"], open_own.need_coverage):
            return None
        close_proposals(uow, reason="superseded", only=open_own, lookups=lookups)
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
