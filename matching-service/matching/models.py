"""matching-service tables: the read model of member profiles, each member's
current suggestions, the lists waiting to be announced, partner-project proposals with their members'
responses, and the pairings a member declined.

A deleted member leaves a tombstone (id, version, seq) so that a late
update of an older version is ignored and other instances learn of the
deletion; everything else about it is gone."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class MemberProfile(Base):
    __tablename__ = "member_profiles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # Rises with every change in commit order (changes are serialised), so an
    # engine catches up with what other instances wrote by reading seq > its own.
    seq: Mapped[int] = mapped_column(Integer, nullable=False, unique=True, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    profile: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SuggestionSet(Base):
    """A member's current suggestions as last announced."""
    __tablename__ = "suggestion_sets"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    suggestions: Mapped[list] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PendingAnnouncement(Base):
    """A member whose suggestion list changed because of someone else's event, to be announced
    (and, with ``propose``, proposed around) once its window has passed (``due_at``): its list as it
    is then, once, however often it changed meanwhile (``services.flush_pending``)."""
    __tablename__ = "pending_announcements"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    propose: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Proposal(Base):
    __tablename__ = "proposals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    anchor_id: Mapped[str | None] = mapped_column(String(36), index=True)
    topic: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(10), index=True)  # proposed, formed, closed
    score: Mapped[float] = mapped_column(Float)
    need_coverage: Mapped[float] = mapped_column(Float)  # share of the anchor's needs the team covers
    explanation: Mapped[list] = mapped_column(JSON)
    member_key: Mapped[str] = mapped_column(Text, index=True)  # sorted member ids: the same team is not proposed twice
    closed_reason: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    members: Mapped[list[ProposalMember]] = relationship(
        cascade="all, delete-orphan", order_by="ProposalMember.position", lazy="selectin")

    __mapper_args__ = {"version_id_col": version}


class ProposalMember(Base):
    __tablename__ = "proposal_members"

    proposal_id: Mapped[str] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    sector: Mapped[str] = mapped_column(String(20))
    response: Mapped[str] = mapped_column(String(10), default="pending")  # pending, accepted, declined
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeclinedPair(Base):
    """Two members who are not to be proposed together again (ids in sorted order)."""
    __tablename__ = "declined_pairs"

    member_a: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_b: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    declined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TextVector(Base):
    """A need or offer text's embedding, computed once: a rebuild reads it instead of embedding
    again. ``key`` is ``semantic.text_key(kind, text)`` (model, side and text); ``vector`` float16
    bytes (``vectors.encode``). Texts are what members wrote in their public profile, no personal data."""
    __tablename__ = "text_vectors"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(40), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    vector: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class TextAnalysis(Base):
    """A free-text need or offer label's lexical analysis, done once (``matching.analyses``): a
    rebuild reads it instead of analysing again. ``key`` is ``analyses.analysis_key`` (the
    vocabulary's digest and the label); ``terms`` JSON ``[[term id, weight], ...]``, ``tokens``
    JSON ``[word, ...]``. Labels are what members wrote in their public profile, no personal data."""
    __tablename__ = "text_analyses"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    terms: Mapped[str] = mapped_column(Text, nullable=False)
    tokens: Mapped[str] = mapped_column(Text, nullable=False)
