"""The matching service layer: each function is one use case on a session
(and, where it matches, the in-memory engine). State changes and their
events go into the same transaction (outbox).

Member events are applied one at a time (the caller holds the engine's
lock; on PostgreSQL an advisory lock also serialises instances), so the
read model's ``seq`` rises in commit order and an engine catches up with
changes other instances made by reading the rows after its own ``seq``.
"""
from __future__ import annotations

import logging
import time
import uuid

from sqlalchemy import bindparam, delete, func, or_, select, text, tuple_
from sqlalchemy.orm import Session

from matching import domain
from matching.engine import Engine
from matching.models import DeclinedPair, MemberProfile, Proposal, ProposalMember, SuggestionSet
from verbund import envelope, outbox
from verbund.auth import Principal
from verbund.catalogue import source_of
from verbund.errors import Conflict, Forbidden, NotFound, Unprocessable

SOURCE = source_of("matching")
# No spam: a member is invited to at most this many open proposals at a time, and one event
# leads to proposals around at most this many members.
MAX_OPEN_INVITATIONS = 3
PROPOSALS_PER_EVENT = 5
# A member's open proposal gives way to a new one that covers this much more of its needs.
SUPERSEDE_GAIN = 0.2
STORED_LISTS_PER_QUERY = 200  # suggestion lists read with one SELECT ... IN
READ_MODEL_LOCK = 0x4D41544348  # "MATCH": one instance at a time changes the read model
log = logging.getLogger(__name__)


def _event(type: str, subject: str, data: dict) -> dict:
    return envelope.new_event(type, SOURCE, subject=subject, data=data)


def _announce(session: Session, type: str, subject: str, data: dict) -> None:
    outbox.add(session, _event(type, subject, data))


# --- the read model and the engine --------------------------------------------------------------------

def serialise(session: Session) -> None:
    """Take the read-model lock for this transaction (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": READ_MODEL_LOCK})


def _next_seq(session: Session) -> int:
    return (session.execute(select(func.max(MemberProfile.seq))).scalar() or 0) + 1


def read_model_empty(session: Session) -> bool:
    return session.execute(select(func.count()).select_from(MemberProfile)).scalar_one() == 0


def live_profiles(session: Session):
    rows = session.execute(select(MemberProfile.profile).where(MemberProfile.deleted.is_(False))
                           .order_by(MemberProfile.seq).execution_options(yield_per=2000)).scalars()
    yield from rows


def read_model(session: Session) -> tuple[int, list[dict]]:
    """Every live profile and the read model's seq they reflect."""
    seq = session.execute(select(func.max(MemberProfile.seq))).scalar() or 0
    return seq, list(live_profiles(session))


def load_engine(session: Session, engine: Engine) -> None:
    """Build the engine's index and everybody's suggestions from the read model."""
    seq, profiles = read_model(session)
    engine.load(profiles)
    engine.seq = seq


def catch_up(session: Session, engine: Engine) -> None:
    """Apply what other instances wrote to the read model since this engine's state."""
    rows = session.execute(select(MemberProfile).where(MemberProfile.seq > engine.seq)
                           .order_by(MemberProfile.seq)).scalars().all()
    for row in rows:
        if row.deleted:
            engine.remove(row.id)
        else:
            engine.upsert(row.profile)
        engine.seq = row.seq


def apply_member_event(session: Session, engine: Engine, event: dict) -> None:
    """member.registered / member.updated / member.deleted: keep the read model, suggestions and
    proposals up to date."""
    serialise(session)
    catch_up(session, engine)
    if event["type"] == "member.deleted":
        forget_member(session, engine, event["data"]["id"], event["data"]["version"])
        return
    profile = event["data"]["profile"]
    changed = event["data"].get("changed")
    if not store_profile(session, engine, profile):
        log.info("ignored %s of %s: version %s is not newer", event["type"], profile["id"], profile["version"])
        return
    changes = engine.upsert(minimal(profile))
    publish_suggestions(session, engine, changes.lists, first=profile["id"])
    if not profile["consent"]["suggest_as_partner"]:
        close_proposals(session, involving=profile["id"], reason="consent_withdrawn")
    # Around the member itself if what it offers or needs changed, and around members who have
    # a new partner now: a growing network leads to better teams.
    anchors = [profile["id"]] if domain.affects_matching(changed) else []
    anchors += [member_id for member_id in changes.lists if member_id != profile["id"]]
    lookups = Lookups(session)
    for member_id in anchors[:PROPOSALS_PER_EVENT]:
        propose_around(session, engine, member_id, lookups)


def minimal(profile: dict) -> dict:
    """What matching keeps of a profile: no contact person, e-mail address or website (nor their ciphertext)."""
    kept = {key: value for key, value in profile.items() if key != "personal"}
    return {**kept, "contact": {"language": profile.get("contact", {}).get("language", "de")}, "website": None}


def store_profile(session: Session, engine: Engine, profile: dict) -> bool:
    """Keep a newer profile; False if the read model holds this version or a newer one."""
    row = session.get(MemberProfile, profile["id"])
    if row is not None and domain.is_stale(row.version, profile["version"]):
        return False
    seq = _next_seq(session)
    if row is None:
        row = MemberProfile(id=profile["id"])
        session.add(row)
    row.version, row.seq, row.deleted, row.profile = profile["version"], seq, False, minimal(profile)
    row.updated_at = envelope.utcnow()
    session.flush()
    engine.seq = seq
    return True


def forget_member(session: Session, engine: Engine, member_id: str, version: int) -> None:
    """A member left: keep a tombstone, drop it from every suggestion, close and forget its proposals."""
    row = session.get(MemberProfile, member_id)
    if row is not None and (row.deleted or domain.is_stale(row.version, version)):
        return
    seq = _next_seq(session)
    if row is None:
        row = MemberProfile(id=member_id)
        session.add(row)
    row.version, row.seq, row.deleted, row.profile, row.updated_at = version, seq, True, None, envelope.utcnow()
    session.flush()
    engine.seq = seq
    publish_suggestions(session, engine, engine.remove(member_id).lists)
    session.execute(delete(SuggestionSet).where(SuggestionSet.member_id == member_id))
    close_proposals(session, involving=member_id, reason="member_deleted", erase=member_id)
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
    suggestions = []
    for rank, (partner_id, _) in enumerate(engine.suggestions(member_id), start=1):
        suggestion = engine.explain(member_id, partner_id)
        if suggestion is not None:
            suggestions.append({**suggestion, "rank": rank})
    return suggestions


def publish_suggestions(session: Session, engine: Engine, member_ids, first: str | None = None) -> int:
    """Store and announce the lists that changed in substance; return how many were announced.
    The list of ``first`` (the member whose event this is, who waits for its suggestions) goes out
    first, then the others in id order."""
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
            row.fingerprint, row.suggestions, row.updated_at = fingerprint, suggestions, envelope.utcnow()
            if worth_telling:
                news.append((member_id, suggestions))
        session.flush()  # the chunk's stored lists in one go, not one flush per announcement
        outbox.add(session, *(_event("match.suggested", member_id, {"member_id": member_id, "suggestions": suggestions})
                              for member_id, suggestions in news))
        announced += len(news)
    return announced


def refresh_all(session: Session, engine: Engine) -> int:
    """After a rebuild: store every member's suggestions, announcing those that changed."""
    ids = [member_id for member_id, _ in engine.all_suggestions()]
    announced = publish_suggestions(session, engine, ids)
    known = set(ids)
    for member_id in session.execute(select(SuggestionSet.member_id)).scalars().all():
        if member_id not in known:
            session.execute(delete(SuggestionSet).where(SuggestionSet.member_id == member_id))
    return announced


def suggestions_of(session: Session, principal: Principal, member_id: str) -> dict:
    if not domain.can_see_member(principal, member_id):
        raise Forbidden("you may see your own suggestions only")
    member = session.get(MemberProfile, member_id)
    if member is None or member.deleted:
        raise NotFound(f"no member {member_id}")
    row = session.get(SuggestionSet, member_id)
    return {"member_id": member_id, "suggestions": row.suggestions if row else [],
            "updated_at": envelope.isoformat(row.updated_at) if row else None}


# --- proposals -----------------------------------------------------------------------------------------

def project_data(proposal: Proposal, erase: str | None = None) -> dict:
    """A proposal as the project.* events and the API show it (without a deleted member's name)."""
    return {
        "id": proposal.id, "version": proposal.version, "title": proposal.title, "topic": proposal.topic,
        "status": proposal.status, "anchor_id": proposal.anchor_id, "score": proposal.score,
        "need_coverage": proposal.need_coverage,
        "members": [{"member_id": m.member_id, "sector": m.sector, "response": m.response,
                     **({} if m.member_id == erase else {"name": m.name})} for m in proposal.members],
        "explanation": proposal.explanation, "closed_reason": proposal.closed_reason,
        "created_at": envelope.isoformat(proposal.created_at), "updated_at": envelope.isoformat(proposal.updated_at),
    }


# Statements built once (their ids are bound when run): open invitations per member, driven by the
# member index (joining on status instead lets SQLite walk every open proposal), and declined
# pairings that involve any of the members.
OPEN_INVITATIONS = (
    select(ProposalMember.member_id, func.count())
    .where(ProposalMember.member_id.in_(bindparam("ids", expanding=True)),
           select(Proposal.status).where(Proposal.id == ProposalMember.proposal_id).scalar_subquery() == "proposed")
    .group_by(ProposalMember.member_id))
DECLINED_PAIRS = select(DeclinedPair.member_a, DeclinedPair.member_b).where(or_(
    DeclinedPair.member_a.in_(bindparam("ids", expanding=True)),
    DeclinedPair.member_b.in_(bindparam("ids", expanding=True))))


class Lookups:
    """What proposing asks of the database about members, read once per member within one
    transaction: open invitations, declined pairings and the teams proposed before.

    Proposals made or closed in the same transaction are told (``proposed``/``closed``), so the
    answers stay what a fresh query would give; declined pairings are only written by ``respond``,
    which does not propose. Use one per transaction, never across transactions."""

    def __init__(self, session: Session):
        self.session = session
        self._open: dict[str, int] = {}                  # member -> open proposals it is invited to
        self._declined: dict[str, set[frozenset]] = {}   # member -> declined pairings it is part of
        self._teams: dict[str, set[frozenset]] = {}      # member -> teams of every proposal it was in

    def busy_among(self, member_ids: list[str]) -> set[str]:
        """The members invited to MAX_OPEN_INVITATIONS open proposals already."""
        missing = [m for m in dict.fromkeys(member_ids) if m not in self._open]
        if missing:
            self._open.update(dict.fromkeys(missing, 0))
            self._open.update(self.session.execute(OPEN_INVITATIONS, {"ids": missing}).tuples().all())
        return {m for m in member_ids if self._open[m] >= MAX_OPEN_INVITATIONS}

    def declined_among(self, member_ids: list[str]) -> set[frozenset]:
        """The declined pairings of which both members are among ``member_ids``."""
        missing = [m for m in dict.fromkeys(member_ids) if m not in self._declined]
        if missing:
            for m in missing:
                self._declined[m] = set()
            rows = self.session.execute(DECLINED_PAIRS, {"ids": missing}).all()
            for row in rows:
                for m in row:
                    if m in self._declined:
                        self._declined[m].add(frozenset(row))
        among = set(member_ids)
        return {pair for m in among for pair in self._declined[m] if pair <= among}

    def teams_of(self, member_id: str) -> set[frozenset]:
        """Every team proposed with the member in it, whatever became of the proposal."""
        if member_id not in self._teams:
            ids = select(ProposalMember.proposal_id).where(ProposalMember.member_id == member_id)
            keys = self.session.execute(select(Proposal.member_key).where(Proposal.id.in_(ids))).scalars()
            self._teams[member_id] = {frozenset(key.split(",")) for key in keys}
        return self._teams[member_id]

    def proposed(self, member_ids: list[str]) -> None:
        """A proposal to these members was made in this transaction."""
        team = frozenset(member_ids)
        for m in member_ids:
            if m in self._open:
                self._open[m] += 1
            if m in self._teams:
                self._teams[m].add(team)

    def closed(self, member_ids: list[str]) -> None:
        """An open proposal to these members was closed in this transaction."""
        for m in member_ids:
            if m in self._open:
                self._open[m] -= 1

    def options(self) -> dict:
        """The keyword arguments ``Engine.propose`` takes to ask these questions."""
        return {"declined": self.declined_among, "proposed": self.teams_of, "unavailable": self.busy_among}


def _create_proposal(session: Session, consortium: dict, lookups: Lookups) -> dict:
    now = envelope.utcnow()
    member_ids = [m["member_id"] for m in consortium["members"]]
    proposal = Proposal(id=str(uuid.uuid4()), anchor_id=consortium["anchor_id"], topic=consortium["topic"],
                        title=consortium["title"], status="proposed", score=consortium["score"],
                        need_coverage=consortium["need_coverage"],
                        explanation=consortium["explanation"],
                        member_key=domain.member_key(member_ids),
                        created_at=now, updated_at=now)
    proposal.members = [ProposalMember(member_id=m["member_id"], position=i, name=m["name"], sector=m["sector"],
                                       response="pending") for i, m in enumerate(consortium["members"])]
    session.add(proposal)
    session.flush()
    lookups.proposed(member_ids)
    data = project_data(proposal)
    _announce(session, "project.proposed", proposal.id, {"project": data})
    return data


def propose_around(session: Session, engine: Engine, member_id: str, lookups: Lookups | None = None) -> dict | None:
    """Propose a consortium around a member's needs. Its open proposal, if any, stays unless the new
    team covers clearly more of its needs; then the old one is closed as superseded. ``lookups``
    may be shared by the calls within one transaction."""
    lookups = lookups or Lookups(session)
    # Through the anchor's index alone, the status filtered here: with "status = 'proposed'" in the
    # query SQLite walks every open proposal by the status index.
    open_own = next((proposal for proposal in session.execute(
        select(Proposal).where(Proposal.anchor_id == member_id)).scalars() if proposal.status == "proposed"), None)
    consortium = engine.propose(member_id, **lookups.options())
    if consortium is None:
        return None
    if open_own is not None:
        if consortium["need_coverage"] < open_own.need_coverage + SUPERSEDE_GAIN:
            return None
        close_proposals(session, reason="superseded", only=open_own, lookups=lookups)
    return _create_proposal(session, consortium, lookups)


def propose(session: Session, engine: Engine, data: dict) -> dict:
    """An organizer asks for a consortium around a member or a topic."""
    lookups = Lookups(session)
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
    return _create_proposal(session, consortium, lookups)


def close_proposals(session: Session, *, reason: str, involving: str | None = None, erase: str | None = None,
                    only: Proposal | None = None, lookups: Lookups | None = None) -> int:
    """Close every open proposal the member ``involving`` is invited to (or just ``only``)."""
    if only is not None:
        candidates = [only]
    else:
        ids = select(ProposalMember.proposal_id).where(ProposalMember.member_id == involving)
        # The status filtered here, as in propose_around: the member's few proposals, found by its index.
        candidates = [proposal for proposal in session.execute(
            select(Proposal).where(Proposal.id.in_(ids)).order_by(Proposal.created_at, Proposal.id)).scalars()
            if proposal.status == "proposed"]
    for proposal in candidates:
        proposal.status, proposal.closed_reason, proposal.updated_at = "closed", reason, envelope.utcnow()
        session.flush()
        if lookups is not None:
            lookups.closed([m.member_id for m in proposal.members])
        _announce(session, "project.closed", proposal.id, {"project": project_data(proposal, erase=erase)})
    return len(candidates)


def _load_proposal(session: Session, proposal_id: str, *, for_update: bool = False) -> Proposal:
    query = select(Proposal).where(Proposal.id == proposal_id)
    proposal = session.execute(query.with_for_update() if for_update else query).scalar()
    if proposal is None:
        raise NotFound(f"no proposal {proposal_id}")
    return proposal


def get_proposal(session: Session, principal: Principal, proposal_id: str) -> dict:
    proposal = _load_proposal(session, proposal_id)
    if not domain.can_see_proposal(principal, [m.member_id for m in proposal.members]):
        raise Forbidden("you may see proposals you are invited to only")
    return project_data(proposal)


def proposals_of(session: Session, principal: Principal, member_id: str, status: str | None = None) -> dict:
    if not domain.can_see_member(principal, member_id):
        raise Forbidden("you may see your own proposals only")
    ids = select(ProposalMember.proposal_id).where(ProposalMember.member_id == member_id)
    query = select(Proposal).where(Proposal.id.in_(ids)).order_by(Proposal.created_at.desc(), Proposal.id)
    if status:
        query = query.where(Proposal.status == status)
    return {"member_id": member_id, "items": [project_data(p) for p in session.execute(query).scalars().all()]}


def list_proposals(session: Session, query: dict) -> dict:
    conditions = []
    if query.get("status"):
        conditions.append(Proposal.status == query["status"])
    if query.get("member_id"):
        conditions.append(Proposal.id.in_(select(ProposalMember.proposal_id)
                                          .where(ProposalMember.member_id == query["member_id"])))
    total = session.execute(select(func.count()).select_from(Proposal).where(*conditions)).scalar_one()
    page, per_page = query["page"], query["per_page"]
    rows = session.execute(select(Proposal).where(*conditions).order_by(Proposal.created_at.desc(), Proposal.id)
                           .offset((page - 1) * per_page).limit(per_page)).scalars().all()
    return {"items": [project_data(p) for p in rows], "page": page, "per_page": per_page, "total": total}


def respond(session: Session, principal: Principal, proposal_id: str, data: dict) -> dict:
    """An invited member accepts or declines. All accept: formed. One declines: closed, and the
    decliner is not proposed together with the others again."""
    member_id = data.get("member_id")
    if principal.is_admin:
        if not member_id:
            raise Unprocessable("validation failed", fields={"member_id": ["an admin names the member it answers for"]})
    elif principal.role == "member":
        if member_id and member_id != principal.member_id:
            raise Forbidden("a member answers for itself only")
        member_id = principal.member_id
    else:
        raise Forbidden("only invited members (or an admin) answer proposals")
    proposal = _load_proposal(session, proposal_id, for_update=True)
    invited = {m.member_id: m for m in proposal.members}
    if member_id not in invited:
        if principal.is_admin:
            raise Unprocessable("validation failed", fields={"member_id": ["not invited to this proposal"]})
        raise Forbidden("you are not invited to this proposal")
    wanted = domain.RESPONSES[data["response"]]
    invitee = invited[member_id]
    if invitee.response == wanted:
        return project_data(proposal)  # the same answer again: nothing changes
    if proposal.status != "proposed":
        raise Conflict(f"the proposal is {proposal.status} already", proposal_status=proposal.status)
    if invitee.response != "pending":
        raise Conflict(f"{member_id} answered {invitee.response} already")
    now = envelope.utcnow()
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
        _announce(session, decision.event, proposal.id, {"project": result})
    return result


# --- rebuilding from members-service --------------------------------------------------------------------

def rebuild_read_model(session: Session, engine: Engine, pages) -> dict:
    """Fill the read model from members-service pages of profiles (newer versions win) and forget
    members it no longer has. Call ``load_engine`` and ``refresh_all`` afterwards."""
    serialise(session)
    seen, stored = set(), 0
    for profiles in pages:
        for profile in profiles:
            seen.add(profile["id"])
            row = session.get(MemberProfile, profile["id"])
            if row is not None and row.deleted and row.version >= profile["version"]:
                continue
            if store_profile(session, engine, profile):
                stored += 1
    gone = session.execute(select(MemberProfile.id).where(MemberProfile.deleted.is_(False))).scalars().all()
    forgotten = 0
    for member_id in gone:
        if member_id not in seen:
            row = session.get(MemberProfile, member_id)
            forget_member(session, engine, member_id, row.version + 1)
            forgotten += 1
    return {"fetched": len(seen), "stored": stored, "forgotten": forgotten}
