"""notifications-service tables.

recipients and their topics are the read model built from ``member.*``
events; preferences and webhook endpoints are what members set here;
source_events keeps each consumed event once, so that 100k inbox entries
of one announcement are small rows pointing at it; notifications are the
inbox entries; deliveries are the e-mail and webhook work items, one per
recipient (or endpoint), source event and channel; delivery_attempts is the
log of every try.

Fan-out writes notifications and deliveries with INSERT ... SELECT, so the
tables are plain Core-friendly rows without ORM relationships.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Recipient(Base):
    """What notifications need to know of a member; a tombstone after erasure."""
    __tablename__ = "recipients"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    name: Mapped[str | None] = mapped_column(String(200))
    contact_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    language: Mapped[str | None] = mapped_column(String(2))
    consent_email: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    sector: Mapped[str | None] = mapped_column(String(20), index=True)
    associations: Mapped[str | None] = mapped_column(String(200))  # comma-separated
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RecipientTopic(Base):
    __tablename__ = "recipient_topics"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100), primary_key=True)

    # Targeting looks members up by topic.
    __table_args__ = (Index("ix_recipient_topics_topic_member", "topic", "member_id"),)


class Preference(Base):
    """A member's choices; no row means the defaults (e-mail and webhook on, immediately, all topics)."""
    __tablename__ = "preferences"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    webhook: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    frequency: Mapped[str] = mapped_column(String(12), nullable=False, default="immediately")
    language: Mapped[str | None] = mapped_column(String(2))
    # True when the member narrowed announcements to the topics in preference_topics.
    topics_filter: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PreferenceKind(Base):
    """A member's choice for one kind of notification, overriding the policy (``domain.POLICY``):
    ``immediately``, ``digest`` or ``inbox`` (no e-mail)."""
    __tablename__ = "preference_kinds"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    mode: Mapped[str] = mapped_column(String(12), nullable=False)


class Mailbox(Base):
    """Per member, what limits its e-mail: the immediate mails of its current budget day
    (``domain.budget_day``) and when its last digest went. No row: nothing sent yet."""
    __tablename__ = "mailboxes"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    budget_day: Mapped[str | None] = mapped_column(String(10))  # ISO date in the digest time zone
    budget_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_digest_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PreferenceTopic(Base):
    __tablename__ = "preference_topics"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100), primary_key=True)


class SourceEvent(Base):
    """A consumed event that produced notifications or webhook deliveries, kept once for rendering them."""
    __tablename__ = "source_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    body: Mapped[str] = mapped_column(Text, nullable=False)  # the whole CloudEvent as JSON
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Notification(Base):
    """An inbox entry: one per member and source event."""
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(36), nullable=False)
    source_event_id: Mapped[str] = mapped_column(String(36), nullable=False)
    source_type: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("source_event_id", "member_id", name="uq_notifications_event_member"),
        Index("ix_notifications_member_created", "member_id", "created_at"),
    )


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # A member's endpoint gets that member's notifications; an integrator's gets
    # the platform events matching event_types.
    owner_role: Mapped[str] = mapped_column(String(12), nullable=False)
    owner_subject: Mapped[str] = mapped_column(String(200), nullable=False)
    member_id: Mapped[str | None] = mapped_column(String(36), index=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    secret: Mapped[str] = mapped_column(String(100), nullable=False)
    event_types: Mapped[str | None] = mapped_column(Text)  # JSON list of patterns, integrators only
    description: Mapped[str | None] = mapped_column(String(500))
    allow_private: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Delivery(Base):
    """One e-mail or webhook to send: per channel, target and source event at most one."""
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)  # email | webhook
    target: Mapped[str] = mapped_column(String(36), nullable=False)  # member id (email) or endpoint id
    source_event_id: Mapped[str] = mapped_column(String(36), nullable=False)
    source_type: Mapped[str] = mapped_column(String(100), nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)  # the source event's
    member_id: Mapped[str | None] = mapped_column(String(36))  # None: an integrator's delivery
    notification_id: Mapped[int | None] = mapped_column(Integer)
    # pending -> sending -> delivered | failed; held: waits for the member's digest; cancelled
    # (with merged_into: a later message about the same thing says it, see ``topic``)
    status: Mapped[str] = mapped_column(String(10), nullable=False)
    # What the message is about, for coalescing (``domain.topic_of``): "event:<id>", "project:<id>",
    # "suggestions". Unsent e-mails of one member and topic become one message.
    topic: Mapped[str | None] = mapped_column(String(80))
    merged_into: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Few indexes: a big announcement writes 100k rows at once. A member's deliveries are found by
    # (channel, target): its e-mails by its id, its webhooks by its endpoints' ids.
    __table_args__ = (
        UniqueConstraint("channel", "target", "source_event_id", name="uq_deliveries_channel_target_event"),
        Index("ix_deliveries_due", "channel", "status", "next_attempt_at"),
        Index("ix_deliveries_target_topic", "target", "topic"),
        Index("ix_deliveries_integrator_subject", "subject", postgresql_where=text("member_id IS NULL"),
              sqlite_where=text("member_id IS NULL")),
    )


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(10), nullable=False)  # delivered | retry | failed
    error: Mapped[str | None] = mapped_column(Text)


class CalendarEntry(Base):
    """A revision of a joint event's calendar entry (the ``.ics`` its mails carry) for a member:
    one per member and source event that told the member of it, whether its mail went out at
    once, waits for a digest or was not allowed (the inbox entry alone). The member's newest row
    of an event (the highest sequence) is what it holds; the event's later updates and its
    cancellation go to every member whose newest row is not CANCELLED (RFC 5546: same UID,
    higher SEQUENCE). Erased with the member."""
    __tablename__ = "calendar_entries"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source_event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False)  # the joint event (the UID)
    event_version: Mapped[int] = mapped_column(Integer, nullable=False)  # the joint event's version it shows
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False)  # CONFIRMED | TENTATIVE | CANCELLED
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_calendar_entries_event_member", "event_id", "member_id", "sequence"),)


class JointEventSeen(Base):
    """A read model of the joint events (``event.*``) as far as meeting mails need them: the title,
    the event's time zone (meeting times are shown in it), its end (the survey is timed from it) and
    its status. Older versions than the one held are ignored."""
    __tablename__ = "meeting_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    kind: Mapped[str | None] = mapped_column(String(20))
    timezone: Mapped[str | None] = mapped_column(String(60))
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str | None] = mapped_column(String(20))
    surveyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the survey went out


class MeetingSeen(Base):
    """A read model of 1:1 meetings (``meeting.*``): what reminders, the daily summary of open requests
    and the survey need. ``reminded_for``: the start the last reminder was for. Erased with either member."""
    __tablename__ = "meetings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    requester_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    recipient_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    slot: Mapped[int | None] = mapped_column(Integer)
    table_no: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
