"""The read side of events-service: events, registrations, the calendar feed and
the attendee rows of the export. Each query takes a unit of work (its ``session``
and its clock ``now()``, which decides whether an event is completed) and changes nothing."""
from __future__ import annotations

from datetime import datetime

from marshmallow import ValidationError
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from events import domain
from events.models import Event, EventTag, Member, Registration
from verbund import envelope
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import Forbidden, NotFound

# --- loading (shared with the use cases in events.services) -------------------------------------

def load_event(session: Session, event_id: str, *, lock: bool = False) -> Event:
    """The event ``event_id``; ``lock`` takes its row lock (SELECT … FOR UPDATE). NotFound (404) if none."""
    query = select(Event).where(Event.id == event_id)
    if lock:
        # populate_existing: after waiting for the lock, work on the row as it is now.
        query = query.with_for_update().execution_options(populate_existing=True)
    event = session.execute(query).scalar()
    if event is None:
        raise NotFound(f"no event {event_id}")
    return event


def load_registration(session: Session, event: Event, registration_id: str) -> Registration:
    """The registration ``registration_id`` of ``event``; NotFound (404) if none, or one of another event."""
    registration = session.get(Registration, registration_id, populate_existing=True)
    if registration is None or registration.event_id != event.id:
        raise NotFound(f"no registration {registration_id} for event {event.id}")
    return registration


def waiting(session: Session, event_id: str) -> list:
    """(id, seats, passed) of the event's waitlist, in arrival order."""
    return session.execute(select(Registration.id, Registration.seats, Registration.passed)
                           .where(Registration.event_id == event_id, Registration.status == "waitlisted")
                           .order_by(Registration.arrival)).all()


def positions(session: Session, event_id: str) -> dict[str, int]:
    """{registration id: waitlist position from 1} of the event's waitlist."""
    return domain.waitlist_positions([row.id for row in waiting(session, event_id)])


def _counts(session: Session, event_ids: list[str]) -> dict[str, dict]:
    """Confirmed seats and waiting requests per event, in one query."""
    confirmed = func.sum(case((Registration.status == "confirmed", Registration.seats), else_=0))
    waits = func.sum(case((Registration.status == "waitlisted", 1), else_=0))
    rows = session.execute(select(Registration.event_id, confirmed, waits)
                           .where(Registration.event_id.in_(event_ids), Registration.status.in_(domain.ACTIVE))
                           .group_by(Registration.event_id)).all()
    return {event_id: {"confirmed": int(seats or 0), "waiting": int(count or 0)} for event_id, seats, count in rows}


# --- views ------------------------------------------------------------------------------------------

def view(session: Session, event: Event, now: datetime, counts: dict | None = None) -> dict:
    """The event as the API shows it (``event-view``): the joint-event.v1 snapshot at ``now``,
    ``starts_local``/``ends_local`` in its zone and how full it is (seats_confirmed, seats_free, waitlisted)."""
    if counts is None:
        counts = _counts(session, [event.id]).get(event.id)
    counts = counts or {"confirmed": 0, "waiting": 0}
    tz = domain.zone(event.timezone)
    return {**event.snapshot(now),
            "starts_local": event.starts_at.astimezone(tz).isoformat(),
            "ends_local": event.ends_at.astimezone(tz).isoformat(),
            "seats_confirmed": counts["confirmed"],
            "seats_free": max(event.capacity - counts["confirmed"], 0),
            "waitlisted": counts["waiting"]}


def registration_view(registration: Registration, position: int | None, *, personal: bool = True) -> dict:
    """The registration as the API shows it: its snapshot and, with ``personal``, the attendee names."""
    body = registration.snapshot(position)
    if personal:
        body["attendees"] = registration.attendees or []
    return body


# --- events -----------------------------------------------------------------------------------------

def get(uow: UnitOfWork, event_id: str) -> dict:
    """One event's view; NotFound (404)."""
    return view(uow.session, load_event(uow.session, event_id), uow.now())


def calendar_event(uow: UnitOfWork, event_id: str) -> dict:
    """One event's snapshot for its .ics file; NotFound (404)."""
    return load_event(uow.session, event_id).snapshot(uow.now())


def _tag_filter(facet: str, value: str):
    return select(EventTag.value).where(EventTag.event_id == Event.id, EventTag.facet == facet,
                                        EventTag.value == value).exists()


def _conditions(query: dict) -> list:
    conditions = []
    if query.get("kind"):
        conditions.append(Event.kind == query["kind"])
    for param, facet in (("sector", "sector"), ("association", "organizer"), ("topic", "topic")):
        if query.get(param):
            conditions.append(_tag_filter(facet, query[param]))
    return conditions


def search(uow: UnitOfWork, query: dict) -> dict:
    """Events matching every filter of a loaded ``ListQuerySchema``, a page at a time, soonest first:
    ``{items: [event-view], page, per_page, total}``. A ValidationError (422) for a time that does
    not exist in Berlin (filters without an offset mean Berlin time)."""
    session, now = uow.session, uow.now()
    conditions = _conditions(query)
    status = query.get("status")
    if status == "cancelled":
        conditions.append(Event.status == "cancelled")
    elif status == "scheduled":
        conditions.append(and_(Event.status == "scheduled", Event.ends_at > now))
    elif status == "completed":
        conditions.append(and_(Event.status == "scheduled", Event.ends_at <= now))
    for param, compare in (("starts_after", Event.starts_at.__ge__), ("starts_before", Event.starts_at.__lt__)):
        if query.get(param):
            try:  # a time without an offset means Berlin time
                conditions.append(compare(domain.to_utc(query[param], domain.DEFAULT_TIMEZONE)))
            except domain.InvalidTime as exc:
                raise ValidationError({param: [str(exc)]}) from None
    total = session.execute(select(func.count()).select_from(Event).where(*conditions)).scalar_one()
    page, per_page = query.get("page", 1), query.get("per_page", 50)
    events = session.execute(select(Event).where(*conditions).order_by(Event.starts_at, Event.id)
                             .offset((page - 1) * per_page).limit(per_page)).scalars().all()
    counts = _counts(session, [event.id for event in events])
    return {"items": [view(session, event, now, counts.get(event.id)) for event in events], "page": page,
            "per_page": per_page, "total": total}


def feed(uow: UnitOfWork, query: dict) -> list[dict]:
    """Snapshots of the events not yet over (at most ``domain.MAX_FEED_EVENTS``), cancelled ones
    included so that subscribed calendars drop them; filters of a loaded ``FeedQuerySchema``."""
    now = uow.now()
    events = uow.session.execute(select(Event).where(Event.ends_at > now, *_conditions(query))
                                 .order_by(Event.starts_at, Event.id).limit(domain.MAX_FEED_EVENTS)).scalars().all()
    return [event.snapshot(now) for event in events]


# --- registrations ----------------------------------------------------------------------------------

def get_registration(uow: UnitOfWork, principal: Principal, event_id: str, registration_id: str) -> dict:
    """One registration with its waitlist position and attendees; Forbidden (403) unless the
    principal is its member or staff of the event; NotFound (404)."""
    session = uow.session
    event = load_event(session, event_id)
    registration = load_registration(session, event, registration_id)
    if not domain.can_see_registration(principal, registration.member_id, event.organizers):
        raise Forbidden("you may see your own registrations only")
    return registration_view(registration, positions(session, event.id).get(registration.id))


def list_registrations(uow: UnitOfWork, principal: Principal, event_id: str) -> dict:
    """``{event, items}``: every registration of the event (cancelled ones too) in arrival order with
    ``member_name``, and for one moved elsewhere ``moved_to_event`` ``{id, title, starts_at, timezone}``;
    staff of the event only (Forbidden, 403)."""
    session = uow.session
    event = load_event(session, event_id)
    if not domain.can_manage(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) see its registrations")
    registrations = session.execute(select(Registration, Member.name).outerjoin(
        Member, Member.id == Registration.member_id).where(Registration.event_id == event.id)
        .order_by(Registration.arrival)).all()
    places = positions(session, event.id)
    targets = {r.moved_to for r, _ in registrations if r.moved_to}
    moved_to = {e.id: {"id": e.id, "title": e.title, "starts_at": envelope.isoformat(e.starts_at),
                       "timezone": e.timezone} for e in session.execute(
        select(Event).where(Event.id.in_(targets))).scalars()} if targets else {}
    return {"event": view(session, event, uow.now()), "items": [
        {**registration_view(registration, places.get(registration.id)), "member_name": name,
         **({"moved_to_event": moved_to.get(registration.moved_to)} if registration.moved_to else {})}
        for registration, name in registrations]}


def member_registrations(uow: UnitOfWork, principal: Principal, member_id: str) -> dict:
    """``{member_id, items}``: a member's registrations with their events; organizers see those of
    their association's events only (``domain.may_see_member_registrations``, else 403)."""
    if not domain.may_see_member_registrations(principal, member_id):
        raise Forbidden("you may see your own registrations only")
    session, now = uow.session, uow.now()
    rows = session.execute(select(Registration, Event).join(Event, Event.id == Registration.event_id)
                           .where(Registration.member_id == member_id)
                           .order_by(Event.starts_at, Registration.arrival)).all()
    items = []
    for registration, event in rows:
        if principal.role == "organizer" and principal.association not in event.organizers:
            continue
        position = positions(session, event.id).get(registration.id)
        items.append({**registration_view(registration, position),
                      "event": {"id": event.id, "title": event.title, "starts_at": envelope.isoformat(event.starts_at),
                                "status": event.snapshot(now)["status"]}})
    return {"member_id": member_id, "items": items}


def attendees(uow: UnitOfWork, principal: Principal, event_id: str) -> tuple[dict, list[dict]]:
    """The event's snapshot and its attendee rows for ``events.export`` (confirmed first, then the
    waitlist in order; ``registered_at`` in the event's zone); staff of the event only (403)."""
    session = uow.session
    event = load_event(session, event_id)
    if not domain.can_manage(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) may export its attendees")
    tz = domain.zone(event.timezone)
    rows = session.execute(select(Registration, Member).outerjoin(Member, Member.id == Registration.member_id)
                           .where(Registration.event_id == event.id, Registration.status.in_(domain.ACTIVE))
                           .order_by(Registration.arrival)).all()
    places = domain.waitlist_positions([r.id for r, _ in rows if r.status == "waitlisted"])
    lines = []
    for registration, member in sorted(rows, key=lambda row: row[0].status != "confirmed"):
        lines.append({
            "status": registration.status,
            "waitlist_position": places.get(registration.id),
            "organisation": member.name if member else None,
            "sector": member.sector if member else None,
            "contact_name": member.contact_name if member else None,
            "contact_email": member.contact_email if member else None,
            "language": member.contact_language if member else None,
            "seats": registration.seats,
            "attendees": "; ".join(registration.attendees or []),
            "registered_at": registration.created_at.astimezone(tz).isoformat(timespec="seconds"),
            "member_id": registration.member_id,
            "registration_id": registration.id,
        })
    return event.snapshot(uow.now()), lines
