"""events-service tables: joint events with their tags, registrations, and a
read model of the members (what the attendee export and the existence check
need), kept up to date from ``member.*`` events."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from events import domain
from verbund.database import UTCDateTime
from verbund.envelope import isoformat


def _iso(moment: datetime | None) -> str | None:
    return isoformat(moment) if moment is not None else None


class Base(DeclarativeBase):
    pass


class EventTag(Base):
    """An organizing association, target sector or topic of an event, as rows so lists can filter on them."""
    __tablename__ = "event_tags"

    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    facet: Mapped[str] = mapped_column(String(20), primary_key=True)  # organizer, sector or topic
    value: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


FACETS = {"organizers": "organizer", "target_sectors": "sector", "topics": "topic"}


class Event(Base):
    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    timezone: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    registration_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    venue_name: Mapped[str | None] = mapped_column(String(200))
    venue_address: Mapped[str | None] = mapped_column(String(300))
    venue_city: Mapped[str | None] = mapped_column(String(100))
    online_url: Mapped[str | None] = mapped_column(String(500))
    capacity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), index=True)  # scheduled or cancelled
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # Counts registrations as they arrive: their place in the queue.
    arrivals: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tags: Mapped[list[EventTag]] = relationship(cascade="all, delete-orphan",
                                                order_by=(EventTag.facet, EventTag.position), lazy="selectin")

    def _tags(self, facet: str) -> list[str]:
        return [tag.value for tag in self.tags if tag.facet == facet]

    @property
    def organizers(self) -> list[str]:
        return self._tags("organizer")

    def fields(self) -> dict:
        """The organizer-set fields with times as aware UTC datetimes (what validation works on)."""
        venue = None
        if self.venue_name:
            venue = {"name": self.venue_name, "address": self.venue_address, "city": self.venue_city}
        return {
            "title": self.title, "description": self.description, "kind": self.kind,
            **{name: self._tags(facet) for name, facet in FACETS.items()},
            "starts_at": self.starts_at, "ends_at": self.ends_at, "timezone": self.timezone,
            "venue": venue, "online_url": self.online_url, "capacity": self.capacity,
            "registration_deadline": self.registration_deadline,
        }

    def set_fields(self, data: dict) -> None:
        for name in ("title", "description", "kind", "timezone", "starts_at", "ends_at", "online_url", "capacity",
                     "registration_deadline"):
            setattr(self, name, data[name])
        venue = data.get("venue") or {}
        self.venue_name, self.venue_address, self.venue_city = venue.get("name"), venue.get("address"), \
            venue.get("city")
        self.tags = [EventTag(facet=facet, value=value, position=i)
                     for name, facet in FACETS.items() for i, value in enumerate(data[name])]

    def is_over(self, now: datetime) -> bool:
        return self.ends_at <= now

    def snapshot(self, now: datetime) -> dict:
        """The event as events carry it (joint-event.v1) and the API shows it; ``now`` (the unit of
        work's clock) decides whether a scheduled event shows as completed."""
        fields = self.fields()
        return {
            "id": self.id,
            "version": self.version,
            **fields,
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "registration_deadline": _iso(self.registration_deadline),
            "status": domain.effective_status(self.status, self.ends_at, now),
            "cancel_reason": self.cancel_reason,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


class Registration(Base):
    __tablename__ = "registrations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[str] = mapped_column(String(36), index=True)
    seats: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))  # confirmed, waitlisted or cancelled
    arrival: Mapped[int] = mapped_column(Integer)  # place in the event's queue
    passed: Mapped[int] = mapped_column(Integer, default=0)  # how often later requests got seats first
    version: Mapped[int] = mapped_column(Integer)
    attendees: Mapped[list | None] = mapped_column(JSON)  # names of the people coming; personal data
    reason: Mapped[str | None] = mapped_column(String(20))  # why it was cancelled
    # For reason "moved": the event the registration moved to (its new registration is there).
    moved_to: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # No double registration, even when two requests race past the check.
        Index("uq_registrations_active_member", "event_id", "member_id", unique=True,
              sqlite_where=text("status != 'cancelled'"), postgresql_where=text("status != 'cancelled'")),
        Index("ix_registrations_event_status_arrival", "event_id", "status", "arrival"),
    )

    def snapshot(self, waitlist_position: int | None = None) -> dict:
        """The registration as registration.* events carry it (no personal data)."""
        return {
            "id": self.id,
            "event_id": self.event_id,
            "member_id": self.member_id,
            "seats": self.seats,
            "status": self.status,
            "waitlist_position": waitlist_position if self.status == "waitlisted" else None,
            "version": self.version,
            "reason": self.reason,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            # Only where there is one: every other registration event stays as it was.
            **({"moved_to": self.moved_to} if self.moved_to else {}),
        }


class Member(Base):
    """Read model of a member, from member.* events. A deleted member stays as a
    tombstone (id and version), so a late, older event cannot bring it back."""
    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(200))
    sector: Mapped[str | None] = mapped_column(String(20))
    associations: Mapped[list | None] = mapped_column(JSON)
    contact_name: Mapped[str | None] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    contact_language: Mapped[str | None] = mapped_column(String(2))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def set_profile(self, profile: dict) -> None:
        self.version = profile["version"]
        self.name = profile["name"]
        self.sector = profile["sector"]
        self.associations = list(profile["associations"])
        contact = profile["contact"]
        self.contact_name, self.contact_email, self.contact_language = contact["name"], contact["email"], \
            contact["language"]

    def erase(self, version: int, when: datetime) -> None:
        self.version = version
        self.name = self.sector = self.associations = None
        self.contact_name = self.contact_email = self.contact_language = None
        self.deleted_at = when
