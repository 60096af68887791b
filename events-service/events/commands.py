"""The events service layer: each function is one use case on a session.
State changes and the events announcing them go into the same transaction
(outbox). Whatever decides about seats first locks the event's row, so two
requests for the last seat are decided one after the other (on SQLite every
transaction already starts with BEGIN IMMEDIATE)."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from marshmallow import ValidationError
from sqlalchemy import and_, case, func, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from events import domain
from events.models import Event, EventTag, Member, Registration
from events.schemas import READ_ONLY_FIELDS, EventSchema, RegistrationSchema
from verbund import envelope, outbox, personal
from verbund.auth import Principal
from verbund.catalogue import source_of
from verbund.errors import Conflict, Forbidden, NotFound, PreconditionFailed, Unprocessable

SOURCE = source_of("events")
ACTIVE = ("confirmed", "waitlisted")
MAX_FEED_EVENTS = 1000


def _publish(session: Session, type: str, subject: str, data: dict) -> None:
    outbox.add(session, envelope.new_event(type, SOURCE, subject=subject, data=data))


# --- validation -----------------------------------------------------------------------------------

def validate_event(data: dict, now: datetime, *, check_future: tuple[str, ...] | None = None) -> dict:
    """The event's fields with times in UTC, or a ValidationError naming every bad field."""
    loaded = EventSchema().load(data)
    errors = {}
    for name in ("starts_at", "ends_at", "registration_deadline"):
        if loaded[name] is not None:
            try:
                loaded[name] = domain.to_utc(loaded[name], loaded["timezone"])
            except domain.InvalidTime as exc:
                errors[name] = [str(exc)]
    if not errors:
        errors = domain.event_problems(loaded, now, check_future=(
            ("starts_at", "registration_deadline") if check_future is None else check_future))
    if errors:
        raise ValidationError(errors)
    return loaded


# --- loading --------------------------------------------------------------------------------------

def _load_event(session: Session, event_id: str, *, lock: bool = False) -> Event:
    query = select(Event).where(Event.id == event_id)
    if lock:
        # populate_existing: after waiting for the lock, work on the row as it is now.
        query = query.with_for_update().execution_options(populate_existing=True)
    event = session.execute(query).scalar()
    if event is None:
        raise NotFound(f"no event {event_id}")
    return event


def _active(session: Session, event_id: str) -> list[Registration]:
    """The event's confirmed and waitlisted registrations, in arrival order."""
    return list(session.execute(
        select(Registration).where(Registration.event_id == event_id, Registration.status.in_(ACTIVE))
        .order_by(Registration.arrival).execution_options(populate_existing=True)).scalars())


def _registered(session: Session, event_id: str) -> list:
    """(member_id, seats, status) of the event's active registrations, in arrival order; no ORM objects (fast)."""
    return session.execute(select(Registration.member_id, Registration.seats, Registration.status)
                           .where(Registration.event_id == event_id, Registration.status.in_(ACTIVE))
                           .order_by(Registration.arrival)).all()


def _confirmed_seats(session: Session, event_id: str) -> int:
    return session.execute(select(func.coalesce(func.sum(Registration.seats), 0)).where(
        Registration.event_id == event_id, Registration.status == "confirmed")).scalar_one()


def _waiting(session: Session, event_id: str) -> list:
    """(id, seats, passed) of the event's waitlist, in arrival order."""
    return session.execute(select(Registration.id, Registration.seats, Registration.passed)
                           .where(Registration.event_id == event_id, Registration.status == "waitlisted")
                           .order_by(Registration.arrival)).all()


def _positions(session: Session, event_id: str) -> dict[str, int]:
    return domain.waitlist_positions([row.id for row in _waiting(session, event_id)])


def _counts(session: Session, event_ids: list[str]) -> dict[str, dict]:
    """Confirmed seats and waiting requests per event, in one query."""
    confirmed = func.sum(case((Registration.status == "confirmed", Registration.seats), else_=0))
    waiting = func.sum(case((Registration.status == "waitlisted", 1), else_=0))
    rows = session.execute(select(Registration.event_id, confirmed, waiting)
                           .where(Registration.event_id.in_(event_ids), Registration.status.in_(ACTIVE))
                           .group_by(Registration.event_id)).all()
    return {event_id: {"confirmed": int(seats or 0), "waiting": int(count or 0)} for event_id, seats, count in rows}


def view(session: Session, event: Event, now: datetime | None = None, counts: dict | None = None) -> dict:
    """The event as the API shows it: the snapshot, local times and how full it is."""
    now = now or envelope.utcnow()
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


# --- seats ----------------------------------------------------------------------------------------

def _settle(session: Session, event: Event, now: datetime, newcomer: Registration | None = None) -> list[Registration]:
    """Give free seats to waiting requests by the waitlist rule; the caller holds the event's lock.

    Returns the registrations that became confirmed. Once an event has begun
    (or was cancelled) nobody moves up any more.
    """
    if event.status == "cancelled" or event.starts_at <= now:
        return []
    free = event.capacity - _confirmed_seats(session, event.id)
    waiting = _waiting(session, event.id)
    if free <= 0 or not waiting:
        return []
    allocation = domain.allocate(free, [domain.Request(row.id, row.seats, row.passed) for row in waiting])
    for registration_id, passed in allocation.passed.items():
        session.get(Registration, registration_id).passed = passed
    confirmed = []
    for registration_id in allocation.confirmed:
        registration = session.get(Registration, registration_id)
        registration.status = "confirmed"
        registration.confirmed_at = registration.updated_at = now
        if registration is not newcomer:  # a newcomer's first status is its version 1
            registration.version += 1
        confirmed.append(registration)
    return confirmed


def _cancel_registration(registration: Registration, reason: str, now: datetime) -> None:
    registration.status = "cancelled"
    registration.reason = reason
    registration.version += 1
    registration.cancelled_at = registration.updated_at = now


def _announce(session: Session, event: Event, changes: list[tuple[str, Registration]], now: datetime) -> None:
    """Publish registration.* events, each with the registration as it now is and the event."""
    if not changes:
        return
    session.flush()
    positions = _positions(session, event.id) if any(r.status == "waitlisted" for _, r in changes) else {}
    snapshot = event.snapshot(now)
    for type, registration in changes:
        _publish(session, type, registration.id, {"registration": registration.snapshot(positions.get(registration.id)),
                                                  "event": snapshot})


# --- events ---------------------------------------------------------------------------------------

def schedule(session: Session, principal: Principal, data: dict, now: datetime | None = None) -> dict:
    now = now or envelope.utcnow()
    fields = validate_event(data, now)
    if not domain.can_manage(principal, fields["organizers"]):
        raise Forbidden("organizers schedule events their own association organizes: list it among the organizers")
    event = Event(id=str(uuid.uuid4()), version=1, status="scheduled", arrivals=0, created_at=now, updated_at=now)
    event.set_fields(fields)
    session.add(event)
    session.flush()
    _publish(session, "event.scheduled", event.id, {"event": event.snapshot(now)})
    return view(session, event, now)


def get(session: Session, event_id: str) -> dict:
    return view(session, _load_event(session, event_id))


def update(session: Session, principal: Principal, event_id: str, patch: dict, expected_version: int | None = None,
           now: datetime | None = None) -> dict:
    """Change an event (JSON merge of top-level fields); promotes the waitlist when seats were added."""
    now = now or envelope.utcnow()
    event = _load_event(session, event_id, lock=True)
    if not domain.can_manage(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) may change it")
    if expected_version is not None and expected_version != event.version:
        raise PreconditionFailed(f"event is at version {event.version}, not {expected_version}", version=event.version)
    if event.status == "cancelled":
        raise Conflict("the event was cancelled; it cannot change any more")
    if event.is_over(now):
        raise Conflict("the event is over; it cannot change any more")
    snapshot = event.snapshot(now)
    for name in READ_ONLY_FIELDS:
        if name in patch and patch[name] != snapshot.get(name):
            raise Unprocessable("validation failed", fields={name: ["read-only"]})
    before = event.fields()
    merged = {name: snapshot[name] for name in domain.EVENT_FIELDS}
    merged.update({name: value for name, value in patch.items() if name not in READ_ONLY_FIELDS})
    loaded = validate_event(merged, now, check_future=())
    changed = domain.changed_fields(before, loaded)
    # Only a time that moves must lie ahead: an old deadline may have passed.
    moved = tuple(name for name in ("starts_at", "registration_deadline") if name in changed)
    if moved and (errors := domain.event_problems(loaded, now, check_future=moved)):
        raise ValidationError(errors)
    if not changed:
        return view(session, event, now)  # nothing changed: no new version, no event
    if principal.role == "organizer" and principal.association not in loaded["organizers"]:
        raise Unprocessable("validation failed",
                            fields={"organizers": ["your own association must stay among the organizers"]})
    registered = _registered(session, event.id)
    problem = domain.capacity_problem(loaded["capacity"], sum(r.seats for r in registered if r.status == "confirmed"),
                                      max((r.seats for r in registered), default=0))
    if problem:
        raise Unprocessable(problem, fields={"capacity": [problem]})
    event.set_fields(loaded)
    event.version += 1
    event.updated_at = now
    session.flush()
    _publish(session, "event.updated", event.id, {"event": event.snapshot(now), "changed": changed,
                                                  "registered_member_ids": [r.member_id for r in registered]})
    promoted = _settle(session, event, now)
    _announce(session, event, [("registration.promoted", r) for r in promoted], now)
    return view(session, event, now)


def cancel(session: Session, principal: Principal, event_id: str, reason: str | None,
           now: datetime | None = None) -> dict:
    """Cancel an event and every registration for it."""
    now = now or envelope.utcnow()
    event = _load_event(session, event_id, lock=True)
    if not domain.can_manage(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) may cancel it")
    if event.status == "cancelled":
        raise Conflict("the event was already cancelled")
    if event.is_over(now):
        raise Conflict("the event is over; it cannot be cancelled")
    active = _active(session, event.id)
    event.status = "cancelled"
    event.cancel_reason = reason
    event.version += 1
    event.cancelled_at = event.updated_at = now
    session.flush()
    _publish(session, "event.cancelled", event.id, {"event": event.snapshot(now), "reason": reason,
                                                    "registered_member_ids": [r.member_id for r in active]})
    for registration in active:
        _cancel_registration(registration, "event_cancelled", now)
    _announce(session, event, [("registration.cancelled", r) for r in active], now)
    return view(session, event, now)


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


def search(session: Session, query: dict, now: datetime | None = None) -> dict:
    """Events matching every filter, a page at a time, soonest first."""
    now = now or envelope.utcnow()
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


def feed(session: Session, query: dict, now: datetime | None = None) -> list[dict]:
    """Snapshots of the events not yet over, cancelled ones included (so calendars drop them)."""
    now = now or envelope.utcnow()
    events = session.execute(select(Event).where(Event.ends_at > now, *_conditions(query))
                             .order_by(Event.starts_at, Event.id).limit(MAX_FEED_EVENTS)).scalars().all()
    return [event.snapshot(now) for event in events]


def calendar_event(session: Session, event_id: str) -> dict:
    return _load_event(session, event_id).snapshot()


# --- registrations --------------------------------------------------------------------------------

def _registration_view(registration: Registration, position: int | None, *, personal: bool = True) -> dict:
    body = registration.snapshot(position)
    if personal:
        body["attendees"] = registration.attendees or []
    return body


def _lock_member(session: Session, member_id: str) -> Member | None:
    # Locked before the event (everywhere: no deadlock), so that a concurrent
    # member.deleted waits for this registration, then cancels it too.
    return session.execute(select(Member).where(Member.id == member_id).with_for_update(read=True)
                           .execution_options(populate_existing=True)).scalar()


def register(session: Session, principal: Principal, event_id: str, data: dict,
             now: datetime | None = None) -> dict:
    """A member asks for seats: confirmed while they are free, else waitlisted."""
    now = now or envelope.utcnow()
    body = RegistrationSchema().load(data)
    if principal.role == "member":
        if body["member_id"] not in (None, principal.member_id):
            raise Forbidden("a member registers itself only")
        member_id = principal.member_id
    else:
        member_id = body["member_id"]
        if not member_id:
            raise ValidationError({"member_id": ["say which member to register"]})
    member = _lock_member(session, member_id)
    event = _load_event(session, event_id, lock=True)
    if principal.role != "member" and not domain.can_manage(principal, event.organizers):
        raise Forbidden("organizers register members for their own association's events only")
    closed = domain.registration_closed(event.status, event.starts_at, event.ends_at, event.registration_deadline,
                                        now)
    if closed:
        raise Conflict(f"registration is closed: {closed}")
    if member is None or member.deleted_at is not None:
        why = "was deleted" if member is not None else "is not known here (yet); a new member may retry in a moment"
        raise Unprocessable(f"member {member_id} {why}", fields={"member_id": [f"member {why}"]})
    problem = domain.seats_problem(body["seats"], event.capacity)
    if problem:
        raise Unprocessable(problem, fields={"seats": [problem]})
    existing = session.execute(select(Registration).where(
        Registration.event_id == event.id, Registration.member_id == member_id,
        Registration.status.in_(ACTIVE))).scalar()
    if existing is not None:
        raise Conflict(f"this member is already registered ({existing.status})", registration_id=existing.id)
    event.arrivals += 1
    registration = Registration(id=str(uuid.uuid4()), event_id=event.id, member_id=member_id, seats=body["seats"],
                                status="waitlisted", arrival=event.arrivals, passed=0, version=1,
                                attendees=body["attendees"] or None, created_at=now, updated_at=now)
    session.add(registration)
    session.flush()
    confirmed = _settle(session, event, now, newcomer=registration)
    first = "registration.confirmed" if registration in confirmed else "registration.waitlisted"
    _announce(session, event, [(first, registration)] +
              [("registration.promoted", r) for r in confirmed if r is not registration], now)
    return _registration_view(registration, _positions(session, event.id).get(registration.id))


def _load_registration(session: Session, event: Event, registration_id: str) -> Registration:
    registration = session.get(Registration, registration_id, populate_existing=True)
    if registration is None or registration.event_id != event.id:
        raise NotFound(f"no registration {registration_id} for event {event.id}")
    return registration


def get_registration(session: Session, principal: Principal, event_id: str, registration_id: str) -> dict:
    event = _load_event(session, event_id)
    registration = _load_registration(session, event, registration_id)
    if not domain.can_see_registration(principal, registration.member_id, event.organizers):
        raise Forbidden("you may see your own registrations only")
    return _registration_view(registration, _positions(session, event.id).get(registration.id))


def cancel_registration(session: Session, principal: Principal, event_id: str, registration_id: str,
                        now: datetime | None = None) -> dict:
    """A member (or an organizer of the event) cancels; the waitlist moves up."""
    now = now or envelope.utcnow()
    event = _load_event(session, event_id, lock=True)
    registration = _load_registration(session, event, registration_id)
    if not domain.can_see_registration(principal, registration.member_id, event.organizers):
        raise Forbidden("you may cancel your own registrations only")
    if registration.status == "cancelled":
        raise Conflict("this registration was already cancelled")
    if event.starts_at <= now:
        raise Conflict("the event has already begun; registrations stay as they are")
    _cancel_registration(registration, "member" if principal.is_member(registration.member_id) else "organizer",
                         now)
    promoted = _settle(session, event, now)
    _announce(session, event, [("registration.cancelled", registration)] +
              [("registration.promoted", r) for r in promoted], now)
    return _registration_view(registration, None)


def list_registrations(session: Session, principal: Principal, event_id: str) -> dict:
    event = _load_event(session, event_id)
    if not domain.can_manage(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) see its registrations")
    registrations = session.execute(select(Registration, Member.name).outerjoin(
        Member, Member.id == Registration.member_id).where(Registration.event_id == event.id)
        .order_by(Registration.arrival)).all()
    positions = _positions(session, event.id)
    return {"event": view(session, event), "items": [
        {**_registration_view(registration, positions.get(registration.id)), "member_name": name}
        for registration, name in registrations]}


def member_registrations(session: Session, principal: Principal, member_id: str) -> dict:
    """A member's registrations with their events (organizers see those of their association's events)."""
    if not (principal.is_admin or principal.role == "organizer" or principal.is_member(member_id)):
        raise Forbidden("you may see your own registrations only")
    rows = session.execute(select(Registration, Event).join(Event, Event.id == Registration.event_id)
                           .where(Registration.member_id == member_id)
                           .order_by(Event.starts_at, Registration.arrival)).all()
    items = []
    for registration, event in rows:
        if principal.role == "organizer" and principal.association not in event.organizers:
            continue
        position = _positions(session, event.id).get(registration.id)
        items.append({**_registration_view(registration, position),
                      "event": {"id": event.id, "title": event.title, "starts_at": envelope.isoformat(event.starts_at),
                                "status": event.snapshot()["status"]}})
    return {"member_id": member_id, "items": items}


def attendees(session: Session, principal: Principal, event_id: str) -> tuple[dict, list[dict]]:
    """The event and its attendee list (confirmed first, then the waitlist in order) for the export."""
    event = _load_event(session, event_id)
    if not domain.can_manage(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) may export its attendees")
    tz = domain.zone(event.timezone)
    rows = session.execute(select(Registration, Member).outerjoin(Member, Member.id == Registration.member_id)
                           .where(Registration.event_id == event.id, Registration.status.in_(ACTIVE))
                           .order_by(Registration.arrival)).all()
    positions = domain.waitlist_positions([r.id for r, _ in rows if r.status == "waitlisted"])
    lines = []
    for registration, member in sorted(rows, key=lambda row: row[0].status != "confirmed"):
        lines.append({
            "status": registration.status,
            "waitlist_position": positions.get(registration.id),
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
    return event.snapshot(), lines


# --- the member read model ------------------------------------------------------------------------

def apply_member_event(session: Session, event: dict, keys: Callable[[str], bytes | None] | None = None) -> None:
    """Keep the member read model current; ``member.deleted`` also ends the member's registrations.

    ``keys(member_id)`` gives the member's key for the contact person that member.* v2 carries
    encrypted (verbund.personal), or None once the member is erased: then no contact is stored.
    """
    if event["type"] == "member.deleted":
        personal.forget(keys, event["data"]["id"])
        member_deleted(session, event["data"])
        return
    profile = personal.member_profile(event, keys)
    member = session.execute(select(Member).where(Member.id == profile["id"]).with_for_update()).scalar()
    if member is None:
        member = Member(id=profile["id"])
        member.set_profile(profile)
        session.add(member)
    elif member.deleted_at is None and member.version < profile["version"]:
        member.set_profile(profile)
    # else: an older version than we hold, or a member already deleted: ignored


def member_deleted(session: Session, data: dict, now: datetime | None = None) -> None:
    """Cancel the member's registrations for events still ahead (freeing seats,
    promoting the waitlist) and erase its personal data."""
    now = now or envelope.utcnow()
    member = session.execute(select(Member).where(Member.id == data["id"]).with_for_update()).scalar()
    if member is not None and member.deleted_at is not None:
        return
    if member is None:
        member = Member(id=data["id"])
        session.add(member)
    member.erase(max(member.version or 0, data["version"]), now)
    session.flush()
    event_ids = session.execute(
        select(Registration.event_id).join(Event, Event.id == Registration.event_id)
        .where(Registration.member_id == member.id, Registration.status.in_(ACTIVE), Event.ends_at > now)
        .distinct().order_by(Registration.event_id)).scalars().all()
    for event_id in event_ids:  # in id order: concurrent handlers lock events in the same order
        event = _load_event(session, event_id, lock=True)
        mine = session.execute(select(Registration).where(
            Registration.event_id == event.id, Registration.member_id == member.id, Registration.status.in_(ACTIVE))
            .execution_options(populate_existing=True)).scalars().all()
        for registration in mine:
            _cancel_registration(registration, "member_deleted", now)
        promoted = _settle(session, event, now)
        _announce(session, event, [("registration.cancelled", r) for r in mine] +
                  [("registration.promoted", r) for r in promoted], now)
    session.execute(sql_update(Registration).where(Registration.member_id == member.id).values(attendees=None)
                    .execution_options(synchronize_session="fetch"))
