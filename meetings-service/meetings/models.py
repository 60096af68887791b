"""meetings-service tables: a read model of joint events, their confirmed registrants and the
members' sectors (from ``event.*``, ``registration.*`` and ``member.*``), the organizers' set-up of a
matchmaking day (sessions, breaks, slots), its participants, meeting requests with their slot and table,
and what came of each meeting.

Double bookings are impossible by construction: ``bookings`` holds one row per participant and slot
(unique on event, slot, member) and ``meetings`` is unique on (event, slot, table); a race that slips past
the checks ends in an IntegrityError the service answers with 409."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from verbund.database import UTCDateTime
from verbund.envelope import isoformat


def iso(moment: datetime | None) -> str | None:
    return isoformat(moment) if moment is not None else None


class Base(DeclarativeBase):
    pass


# --- read model ------------------------------------------------------------------------------------

class JointEvent(Base):
    """A joint event as event.* last told it (only a newer version replaces it)."""
    __tablename__ = "joint_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10))  # scheduled or cancelled
    organizers: Mapped[list] = mapped_column(JSON)
    venue: Mapped[str | None] = mapped_column(String(400))


class Registrant(Base):
    """A member's registration for a joint event, from registration.* (the newest version wins)."""
    __tablename__ = "registrants"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    registration_id: Mapped[str] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))  # confirmed, waitlisted or cancelled


class Member(Base):
    """A member's sector (for "who may request whom") and organisation name (the partner's name in
    meetings and agendas; an organisation's name is no personal data, a contact person's would be, and is
    not kept), from member.*; a deleted member stays as a tombstone without them so a late event cannot
    bring it back."""
    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    sector: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(300))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- set-up ------------------------------------------------------------------------------------------

class Setup(Base):
    """The organizers' set-up of one event's matchmaking day (see ``meetings.schemas.SetupSchema``)."""
    __tablename__ = "setups"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    slot_minutes: Mapped[int] = mapped_column(Integer)
    tables: Mapped[int | None] = mapped_column(Integer)  # None: meeting-point mode
    max_per_session: Mapped[int] = mapped_column(Integer)
    max_open_requests: Mapped[int] = mapped_column(Integer)
    request_expiry_minutes: Mapped[int] = mapped_column(Integer)
    who_may_request: Mapped[str] = mapped_column(String(20))  # all or by_sector
    sector_pairs: Mapped[list] = mapped_column(JSON)  # [[a, b], ...] when by_sector
    request_mode: Mapped[str] = mapped_column(String(20))  # approval or automatic
    scheduling_mode: Mapped[str] = mapped_column(String(20))  # participants or organizer
    sessions: Mapped[list] = mapped_column(JSON)  # [{starts_at, ends_at}] ISO UTC, in order
    breaks: Mapped[list] = mapped_column(JSON)
    published: Mapped[str] = mapped_column(String(12), default="none")  # none, preliminary or final
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Slot(Base):
    """A time slot of an event's matchmaking day, numbered from 0 in time order."""
    __tablename__ = "slots"

    event_id: Mapped[str] = mapped_column(ForeignKey("setups.event_id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    session: Mapped[int] = mapped_column(Integer)  # index of its session
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Participant(Base):
    """A confirmed registrant who opted in to meetings at an event."""
    __tablename__ = "participants"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    active: Mapped[bool] = mapped_column(Boolean)  # False once opted out
    available: Mapped[list | None] = mapped_column(JSON)  # slot numbers; None: every slot
    meeting_point: Mapped[str | None] = mapped_column(String(200))  # in meeting-point mode
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- meetings ----------------------------------------------------------------------------------------

OPEN = ("pending", "accepted")
HOLDS_TABLE = "status = 'accepted' AND slot IS NOT NULL AND table_no IS NOT NULL"


class Meeting(Base):
    """A meeting request and, once accepted, the meeting: its slot, table, lock and attendance.

    ``pair_low``/``pair_high`` are the two member ids in order, so that one open request per pair
    (whoever asked) is a unique index."""
    __tablename__ = "meetings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    requester_id: Mapped[str] = mapped_column(String(36), index=True)
    recipient_id: Mapped[str] = mapped_column(String(36), index=True)
    pair_low: Mapped[str] = mapped_column(String(36))
    pair_high: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(10))  # pending, accepted, declined, cancelled, expired
    message: Mapped[str | None] = mapped_column(Text)  # personal: erased with its writer
    reason: Mapped[str | None] = mapped_column(Text)  # why declined or cancelled
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    slot: Mapped[int | None] = mapped_column(Integer)
    table_no: Mapped[int | None] = mapped_column(Integer)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    placed_by: Mapped[str | None] = mapped_column(String(12))  # participants or organizer
    # why the last "schedule all" left it out (scheduler's no_common_slot, limit, capacity, locked_conflict), or
    # outside_event: a set-up change took its slot away after the event moved
    unplaced_reason: Mapped[str | None] = mapped_column(String(20))
    requester_attended: Mapped[bool | None] = mapped_column(Boolean)
    recipient_attended: Mapped[bool | None] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)  # also the iCalendar SEQUENCE
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("uq_meetings_open_pair", "event_id", "pair_low", "pair_high", unique=True,
              sqlite_where=text("status IN ('pending', 'accepted')"),
              postgresql_where=text("status IN ('pending', 'accepted')")),
        # A table holds one meeting per slot.
        Index("uq_meetings_slot_table", "event_id", "slot", "table_no", unique=True,
              sqlite_where=text(HOLDS_TABLE), postgresql_where=text(HOLDS_TABLE)),
    )

    def other(self, member_id: str) -> str:
        return self.recipient_id if member_id == self.requester_id else self.requester_id


class Booking(Base):
    """A participant's slot taken by a meeting: one per (event, slot, member), so nobody is booked twice."""
    __tablename__ = "bookings"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    meeting_id: Mapped[str] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)


class Outcome(Base):
    """One side's word on what came of a meeting (the fixed scale of ``domain.OUTCOMES``)."""
    __tablename__ = "outcomes"

    meeting_id: Mapped[str] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(24))
    led_to_project: Mapped[bool] = mapped_column(Boolean)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime)
