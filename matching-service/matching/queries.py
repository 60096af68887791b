"""The read side of matching: the read model for the engine, a member's stored
suggestions, proposals as the API and the project.* events show them, and the
lookups proposing makes (open invitations, declined pairings, teams proposed
before). Functions take a SQLAlchemy Session (``uow.session`` in a use case).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from matching import domain, wording
from matching.models import (
    DeclinedPair,
    MemberProfile,
    PendingAnnouncement,
    Proposal,
    ProposalMember,
    SuggestionSet,
)
from verbund import envelope
from verbund.auth import Principal
from verbund.errors import Forbidden, NotFound
from verbund.stats import COOPERATION


def read_model_empty(session: Session) -> bool:
    """True while the read model has no row at all (not even a tombstone): the service then fills it."""
    return session.execute(select(func.count()).select_from(MemberProfile)).scalar_one() == 0


def pending_due(session: Session, now: datetime) -> bool:
    """Whether some member's list waits to be announced and its time (``due_at``) has come."""
    return session.execute(select(PendingAnnouncement.member_id)
                           .where(PendingAnnouncement.due_at <= now).limit(1)).first() is not None


def live_profiles(session: Session):
    """The live profiles (dicts as kept by ``services.minimal``) in ``seq`` order, streamed."""
    rows = session.execute(select(MemberProfile.profile).where(MemberProfile.deleted.is_(False))
                           .order_by(MemberProfile.seq).execution_options(yield_per=2000)).scalars()
    yield from rows


def read_model(session: Session) -> tuple[int, list[dict]]:
    """Every live profile and the read model's seq they reflect."""
    seq = session.execute(select(func.max(MemberProfile.seq))).scalar() or 0
    return seq, list(live_profiles(session))


def suggestions_of(session: Session, principal: Principal, member_id: str) -> dict:
    """``{member_id, suggestions, updated_at}`` as stored; Forbidden for another member, NotFound for
    an unknown or deleted member."""
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
    """A proposal as the project.* events and the API show it (without a deleted member's name):
    the structured explanation with a sentence per item in German and English, and a ``summary``
    sentence per language for every invited member, the title in both languages (``title_i18n``)
    and what it is about without the word "Partnerprojekt"/"Partner project" (``about_i18n``;
    ``matching.wording``)."""
    data = {
        "id": proposal.id, "version": proposal.version, "title": proposal.title, "topic": proposal.topic,
        "status": proposal.status, "anchor_id": proposal.anchor_id, "score": proposal.score,
        "need_coverage": proposal.need_coverage,
        "members": [{"member_id": m.member_id, "sector": m.sector, "response": m.response,
                     **({} if m.member_id == erase else {"name": m.name})} for m in proposal.members],
        "explanation": proposal.explanation, "closed_reason": proposal.closed_reason,
        "created_at": envelope.isoformat(proposal.created_at), "updated_at": envelope.isoformat(proposal.updated_at),
    }
    title_i18n, about_i18n = wording.titles(data)
    return {**data, "explanation": wording.explained(data), "summary": wording.summary(data),
            "title_i18n": title_i18n, "about_i18n": about_i18n}


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
        """The members invited to domain.MAX_OPEN_INVITATIONS open proposals already."""
        missing = [m for m in dict.fromkeys(member_ids) if m not in self._open]
        if missing:
            self._open.update(dict.fromkeys(missing, 0))
            self._open.update(self.session.execute(OPEN_INVITATIONS, {"ids": missing}).tuples().all())
        return {m for m in member_ids if domain.is_busy(self._open[m])}

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


def load_proposal(session: Session, proposal_id: str, *, for_update: bool = False) -> Proposal:
    """The proposal row (locked for update if asked); NotFound if unknown."""
    query = select(Proposal).where(Proposal.id == proposal_id)
    proposal = session.execute(query.with_for_update() if for_update else query).scalar()
    if proposal is None:
        raise NotFound(f"no proposal {proposal_id}")
    return proposal


def get_proposal(session: Session, principal: Principal, proposal_id: str) -> dict:
    """One proposal for an invited member or an admin (Forbidden otherwise, NotFound if unknown)."""
    proposal = load_proposal(session, proposal_id)
    if not domain.can_see_proposal(principal, [m.member_id for m in proposal.members]):
        raise Forbidden("you may see proposals you are invited to only")
    return project_data(proposal)


def proposals_of(session: Session, principal: Principal, member_id: str, status: str | None = None) -> dict:
    """``{member_id, items}``: the proposals the member is invited to, newest first, optionally of one
    ``status``; Forbidden for another member."""
    if not domain.can_see_member(principal, member_id):
        raise Forbidden("you may see your own proposals only")
    ids = select(ProposalMember.proposal_id).where(ProposalMember.member_id == member_id)
    query = select(Proposal).where(Proposal.id.in_(ids)).order_by(Proposal.created_at.desc(), Proposal.id)
    if status:
        query = query.where(Proposal.status == status)
    return {"member_id": member_id, "items": [project_data(p) for p in session.execute(query).scalars().all()]}


def list_proposals(session: Session, query: dict) -> dict:
    """A page of every proposal (``query``: ProposalQuerySchema): ``{items, page, per_page, total}``."""
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


# --- dashboard figures ---------------------------------------------------------------------------------

def stats(session: Session, association: str | None) -> dict:
    """What matching produced for the members of one association (or all): ``{scope, suggestions:
    {total, members}, proposals: {total, proposed, formed, closed, closed_by_reason: {reason: n}}}``.
    Suggestions are the current lists (each member's latest, as shown to it); a proposal counts for an
    association when one of its team belongs to it (by the read model; ``proposed`` are the open ones,
    ``total`` every proposal ever made). Reasons: declined, superseded, consent_withdrawn,
    member_deleted."""
    in_scope = None
    if association is not None:
        in_scope = {profile["id"] for profile in live_profiles(session)
                    if association in (profile.get("associations") or [])}
    suggestions = members = 0
    for member_id, listed in session.execute(select(SuggestionSet.member_id, SuggestionSet.suggestions)).all():
        if listed and (in_scope is None or member_id in in_scope):
            suggestions, members = suggestions + len(listed), members + 1
    query = select(Proposal.id, Proposal.status, Proposal.closed_reason)
    if in_scope is not None:
        query = query.where(Proposal.id.in_(select(ProposalMember.proposal_id)
                                            .where(ProposalMember.member_id.in_(sorted(in_scope)))))
    proposals = {"total": 0, "proposed": 0, "formed": 0, "closed": 0, "closed_by_reason": {}}
    for _, status, reason in session.execute(query).all():
        proposals["total"] += 1
        proposals[status] += 1
        if status == "closed":
            key = reason or "unknown"
            proposals["closed_by_reason"][key] = proposals["closed_by_reason"].get(key, 0) + 1
    return {"scope": association or COOPERATION, "suggestions": {"total": suggestions, "members": members},
            "proposals": proposals}
