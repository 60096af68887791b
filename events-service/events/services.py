"""The use cases of events-service: one function per command and one for the consumed
``member.*`` events, each on a unit of work (``uow.session`` for state, ``uow.emit`` for
the events it announces, both committed together through the outbox; ``uow.now()`` for
the time). Input arrives validated by the schemas in ``events.schemas``; the rules are in
``events.domain``. Whatever decides about seats first locks the event's row, so two
requests for the last seat are decided one after the other (on SQLite every transaction
already starts with BEGIN IMMEDIATE)."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy import update as sql_update

from events import domain
from events.models import Event, Member, Registration
from events.queries import load_event, load_registration, positions, registration_view, view, waiting
from events.schemas import READ_ONLY_FIELDS, EventSchema
from verbund import personal
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import Conflict, Forbidden, PreconditionFailed, Unprocessable

TIMES = ("starts_at", "ends_at", "registration_deadline")


def _in_utc(fields: dict, now: datetime, check_future: tuple[str, ...]) -> dict:
    """``fields`` (a loaded EventSchema) with its times in UTC (wall-clock times read in the event's
    zone), or a ValidationError naming every bad field (``domain.event_problems``)."""
    fields = dict(fields)
    errors = {}
    for name in TIMES:
        if fields[name] is not None:
            try:
                fields[name] = domain.to_utc(fields[name], fields["timezone"])
            except domain.InvalidTime as exc:
                errors[name] = [str(exc)]
    if not errors:
        errors = domain.event_problems(fields, now, check_future=check_future)
    if errors:
        raise ValidationError(errors)
    return fields


# --- seats ----------------------------------------------------------------------------------------

def _settle(uow: UnitOfWork, event: Event, newcomer: Registration | None = None) -> list[Registration]:
    """Give free seats to waiting requests by the waitlist rule; the caller holds the event's lock.

    Returns the registrations that became confirmed. Once an event has begun
    (or was cancelled) nobody moves up any more.
    """
    session, now = uow.session, uow.now()
    if event.status == "cancelled" or event.starts_at <= now:
        return []
    free = event.capacity - _confirmed_seats(uow, event.id)
    queue = waiting(session, event.id)
    if free <= 0 or not queue:
        return []
    allocation = domain.allocate(free, [domain.Request(row.id, row.seats, row.passed) for row in queue])
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


def _confirmed_seats(uow: UnitOfWork, event_id: str) -> int:
    return uow.session.execute(select(func.coalesce(func.sum(Registration.seats), 0)).where(
        Registration.event_id == event_id, Registration.status == "confirmed")).scalar_one()


def _registered(uow: UnitOfWork, event_id: str) -> list:
    """(member_id, seats, status) of the event's active registrations, in arrival order; no ORM objects (fast)."""
    return uow.session.execute(select(Registration.member_id, Registration.seats, Registration.status)
                               .where(Registration.event_id == event_id, Registration.status.in_(domain.ACTIVE))
                               .order_by(Registration.arrival)).all()


def _active(uow: UnitOfWork, event_id: str) -> list[Registration]:
    """The event's confirmed and waitlisted registrations, in arrival order."""
    return list(uow.session.execute(
        select(Registration).where(Registration.event_id == event_id, Registration.status.in_(domain.ACTIVE))
        .order_by(Registration.arrival).execution_options(populate_existing=True)).scalars())


def _end(registration: Registration, reason: str, now: datetime) -> None:
    registration.status = "cancelled"
    registration.reason = reason
    registration.version += 1
    registration.cancelled_at = registration.updated_at = now


def _emit_registrations(uow: UnitOfWork, event: Event, changes: list[tuple[str, Registration]]) -> None:
    """Emit registration.* events, each with the registration as it now is and the event's snapshot."""
    if not changes:
        return
    uow.session.flush()
    places = positions(uow.session, event.id) if any(r.status == "waitlisted" for _, r in changes) else {}
    snapshot = event.snapshot(uow.now())
    for type, registration in changes:
        uow.emit(type, registration.id, {"registration": registration.snapshot(places.get(registration.id)),
                                         "event": snapshot})


def _promoted(registrations: list[Registration]) -> list[tuple[str, Registration]]:
    return [("registration.promoted", r) for r in registrations]


# --- events ---------------------------------------------------------------------------------------

def schedule(uow: UnitOfWork, principal: Principal, fields: dict) -> dict:
    """Schedule a joint event from a loaded ``EventSchema`` (times may lack an offset: the event's
    zone). Emits ``event.scheduled``; answers the event's view at version 1. ValidationError (422)
    for times that do not fit (``domain.event_problems``), Forbidden (403) unless ``domain.can_manage``."""
    now = uow.now()
    fields = _in_utc(fields, now, ("starts_at", "registration_deadline"))
    if not domain.can_manage(principal, fields["organizers"]):
        raise Forbidden("organizers schedule events their own association organizes: list it among the organizers")
    event = Event(id=str(uuid.uuid4()), version=1, status="scheduled", arrivals=0, created_at=now, updated_at=now)
    event.set_fields(fields)
    uow.session.add(event)
    uow.session.flush()
    uow.emit("event.scheduled", event.id, {"event": event.snapshot(now)})
    return view(uow.session, event, now)


def update(uow: UnitOfWork, principal: Principal, event_id: str, patch: dict,
           expected_version: int | None = None) -> dict:
    """Change an event by a JSON merge patch of top-level fields (RFC 7396; ``patch`` as sent,
    validated here once merged with the stored event); promotes the waitlist when seats were added.

    Emits ``event.updated`` (and ``registration.promoted``) only when something changed. Errors:
    403 not staff of the event, 412 ``expected_version`` stale, 409 cancelled or over, 422 field
    errors, read-only fields, the capacity below what is confirmed, an organizer removing itself.
    """
    session, now = uow.session, uow.now()
    event = load_event(session, event_id, lock=True)
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
    loaded = _in_utc(EventSchema().load(merged), now, ())
    changed = domain.changed_fields(before, loaded)
    # Only a time that moves must lie ahead: an old deadline may have passed.
    moved = tuple(name for name in ("starts_at", "registration_deadline") if name in changed)
    if moved and (errors := domain.event_problems(loaded, now, check_future=moved)):
        raise ValidationError(errors)
    if not changed:
        return view(session, event, now)  # nothing changed: no new version, no event
    if not domain.keeps_own_association(principal, loaded["organizers"]):
        raise Unprocessable("validation failed",
                            fields={"organizers": ["your own association must stay among the organizers"]})
    registered = _registered(uow, event.id)
    problem = domain.capacity_problem(loaded["capacity"], sum(r.seats for r in registered if r.status == "confirmed"),
                                      max((r.seats for r in registered), default=0))
    if problem:
        raise Unprocessable(problem, fields={"capacity": [problem]})
    event.set_fields(loaded)
    event.version += 1
    event.updated_at = now
    session.flush()
    uow.emit("event.updated", event.id, {"event": event.snapshot(now), "changed": changed,
                                         "registered_member_ids": [r.member_id for r in registered]})
    _emit_registrations(uow, event, _promoted(_settle(uow, event)))
    return view(session, event, now)


def cancel(uow: UnitOfWork, principal: Principal, event_id: str, reason: str | None) -> dict:
    """Cancel an event and every registration for it: ``event.cancelled``, then one
    ``registration.cancelled`` (reason ``event_cancelled``) per active registration.
    403 not staff of the event, 409 already cancelled or over, 404."""
    session, now = uow.session, uow.now()
    event = load_event(session, event_id, lock=True)
    if not domain.can_manage(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) may cancel it")
    if event.status == "cancelled":
        raise Conflict("the event was already cancelled")
    if event.is_over(now):
        raise Conflict("the event is over; it cannot be cancelled")
    active = _active(uow, event.id)
    event.status = "cancelled"
    event.cancel_reason = reason
    event.version += 1
    event.cancelled_at = event.updated_at = now
    session.flush()
    uow.emit("event.cancelled", event.id, {"event": event.snapshot(now), "reason": reason,
                                           "registered_member_ids": [r.member_id for r in active]})
    for registration in active:
        _end(registration, "event_cancelled", now)
    _emit_registrations(uow, event, [("registration.cancelled", r) for r in active])
    return view(session, event, now)


# --- registrations --------------------------------------------------------------------------------

def _lock_member(uow: UnitOfWork, member_id: str) -> Member | None:
    # Locked before the event (everywhere: no deadlock), so that a concurrent
    # member.deleted waits for this registration, then cancels it too.
    return uow.session.execute(select(Member).where(Member.id == member_id).with_for_update(read=True)
                               .execution_options(populate_existing=True)).scalar()


def register(uow: UnitOfWork, principal: Principal, event_id: str, body: dict) -> dict:
    """A member asks for seats (``body``: a loaded ``RegistrationSchema``, {member_id, seats,
    attendees}): confirmed whole while they are free by the waitlist rule, else waitlisted.

    Emits ``registration.confirmed`` or ``registration.waitlisted`` (and ``registration.promoted``
    for any that the rule confirms with it); answers the registration with its ``waitlist_position``.
    Errors: 403 (``domain.registrant``, staff of another association), 404 event, 409 closed or a
    second active registration, 422 unknown or deleted member, more seats than the event has.
    """
    session, now = uow.session, uow.now()
    member_id = domain.registrant(principal, body["member_id"])
    member = _lock_member(uow, member_id)
    event = load_event(session, event_id, lock=True)
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
        Registration.status.in_(domain.ACTIVE))).scalar()
    if existing is not None:
        raise Conflict(f"this member is already registered ({existing.status})", registration_id=existing.id)
    event.arrivals += 1
    registration = Registration(id=str(uuid.uuid4()), event_id=event.id, member_id=member_id, seats=body["seats"],
                                status="waitlisted", arrival=event.arrivals, passed=0, version=1,
                                attendees=body["attendees"] or None, created_at=now, updated_at=now)
    session.add(registration)
    session.flush()
    confirmed = _settle(uow, event, newcomer=registration)
    first = "registration.confirmed" if registration in confirmed else "registration.waitlisted"
    others = [r for r in confirmed if r is not registration]
    _emit_registrations(uow, event, [(first, registration)] + _promoted(others))
    return registration_view(registration, positions(session, event.id).get(registration.id))


def cancel_registration(uow: UnitOfWork, principal: Principal, event_id: str, registration_id: str) -> dict:
    """A member (or staff of the event) cancels a registration (reason ``member`` or ``organizer``);
    the waitlist moves up at once. Emits ``registration.cancelled`` and ``registration.promoted``.
    403, 404, 409 already cancelled or the event has begun."""
    session, now = uow.session, uow.now()
    event = load_event(session, event_id, lock=True)
    registration = load_registration(session, event, registration_id)
    if not domain.can_see_registration(principal, registration.member_id, event.organizers):
        raise Forbidden("you may cancel your own registrations only")
    if registration.status == "cancelled":
        raise Conflict("this registration was already cancelled")
    if event.starts_at <= now:
        raise Conflict("the event has already begun; registrations stay as they are")
    _end(registration, domain.cancellation_reason(principal, registration.member_id), now)
    _emit_registrations(uow, event, [("registration.cancelled", registration)] + _promoted(_settle(uow, event)))
    return registration_view(registration, None)


def move_registration(uow: UnitOfWork, principal: Principal, event_id: str, registration_id: str,
                      target_event_id: str) -> dict:
    """Staff move a member's registration to another event of the same organizers (the same workshop
    on another date), in one transaction: cancelled here (reason ``moved``, and the waitlist here moves
    up), then registered there with the same seats and attendee names by the usual rule (confirmed
    while seats are free, else at the end of the waitlist). Emits ``registration.cancelled`` (with
    ``moved_to``: the other event's id), then
    ``registration.confirmed`` or ``registration.waitlisted``, and ``registration.promoted`` for those
    who move up here or there. Answers ``{"cancelled": registration here, "registration": the new one
    with its waitlist_position}``. Errors: 404 an event or the registration; 403 / 409 / 422 as
    ``domain.move_problem`` says (409 also: cancelled already, this event has begun, the other is closed
    or has the member already; 422 ``to_event_id`` more seats than the other event has)."""
    session, now = uow.session, uow.now()
    source = load_event(session, event_id)
    registration = load_registration(session, source, registration_id)
    _lock_member(uow, registration.member_id)
    # Both events locked in id order, so two moves in opposite directions cannot deadlock.
    events = {eid: load_event(session, eid, lock=True) for eid in sorted({event_id, target_event_id})}
    source, target = events[event_id], events[target_event_id]
    session.refresh(registration)
    problem = domain.move_problem(principal, source.organizers, target.organizers, source.id == target.id)
    if problem:
        kind, why = problem
        raise Forbidden(why) if kind == "forbidden" else Unprocessable(why, fields={"to_event_id": [why]})
    if registration.status == "cancelled":
        raise Conflict("this registration was already cancelled")
    if source.starts_at <= now:
        raise Conflict("the event has already begun; registrations stay as they are")
    closed = domain.registration_closed(target.status, target.starts_at, target.ends_at,
                                        target.registration_deadline, now)
    if closed:
        raise Conflict(f"the other event takes no registrations: {closed}", field="to_event_id")
    seats = domain.seats_problem(registration.seats, target.capacity)
    if seats:
        raise Unprocessable(seats, fields={"to_event_id": [seats]})
    there = session.execute(select(Registration).where(
        Registration.event_id == target.id, Registration.member_id == registration.member_id,
        Registration.status.in_(domain.ACTIVE))).scalar()
    if there is not None:
        raise Conflict(f"this member is registered for the other event already ({there.status})",
                       field="to_event_id", registration_id=there.id)
    _end(registration, "moved", now)
    registration.moved_to = target.id  # notifications tells the member of one move, not two changes
    _emit_registrations(uow, source, [("registration.cancelled", registration)] + _promoted(_settle(uow, source)))
    target.arrivals += 1
    moved = Registration(id=str(uuid.uuid4()), event_id=target.id, member_id=registration.member_id,
                         seats=registration.seats, status="waitlisted", arrival=target.arrivals, passed=0, version=1,
                         attendees=registration.attendees, created_at=now, updated_at=now)
    session.add(moved)
    session.flush()
    confirmed = _settle(uow, target, newcomer=moved)
    first = "registration.confirmed" if moved in confirmed else "registration.waitlisted"
    _emit_registrations(uow, target, [(first, moved)] + _promoted([r for r in confirmed if r is not moved]))
    return {"cancelled": registration_view(registration, None),
            "registration": registration_view(moved, positions(session, target.id).get(moved.id))}


# --- the member read model ------------------------------------------------------------------------

def on_member_event(uow: UnitOfWork, event: dict, keys: Callable[[str], bytes | None] | None = None) -> None:
    """Keep the member read model current (``member.registered``, ``member.updated``; an older
    version than the one held is ignored); ``member.deleted`` goes to ``on_member_deleted``.

    ``keys(member_id)`` gives the member's key for the contact person that member.* v2 carries
    encrypted (verbund.personal), or None once the member is erased: then no contact is stored.
    """
    if event["type"] == "member.deleted":
        personal.forget(keys, event["data"]["id"])
        on_member_deleted(uow, event)
        return
    profile = personal.member_profile(event, keys)
    member = uow.session.execute(select(Member).where(Member.id == profile["id"]).with_for_update()).scalar()
    if member is None:
        member = Member(id=profile["id"])
        member.set_profile(profile)
        uow.session.add(member)
    elif member.deleted_at is None and member.version < profile["version"]:
        member.set_profile(profile)
    # else: an older version than we hold, or a member already deleted: ignored


def on_member_events(uow: UnitOfWork, events: list[dict], keys: Callable[[str], bytes | None] | None = None
                     ) -> None:
    """``on_member_event`` for each of ``events``, in order, in one unit of work (a consumed batch);
    ``keys`` as there, best fetched before the unit of work began (``verbund.personal.Keys.prefetch``)."""
    for event in events:
        on_member_event(uow, event, keys)


def on_member_deleted(uow: UnitOfWork, event: dict) -> None:
    """``member.deleted`` ({id, version}): cancel the member's registrations for events not yet over
    (reason ``member_deleted``, seats freed, waitlist promoted, events emitted), erase its attendee
    names and read-model row, and keep a tombstone (id, version) so late events cannot bring it back."""
    session, now, data = uow.session, uow.now(), event["data"]
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
        .where(Registration.member_id == member.id, Registration.status.in_(domain.ACTIVE), Event.ends_at > now)
        .distinct().order_by(Registration.event_id)).scalars().all()
    for event_id in event_ids:  # in id order: concurrent handlers lock events in the same order
        joint_event = load_event(session, event_id, lock=True)
        mine = session.execute(select(Registration).where(
            Registration.event_id == joint_event.id, Registration.member_id == member.id,
            Registration.status.in_(domain.ACTIVE)).execution_options(populate_existing=True)).scalars().all()
        for registration in mine:
            _end(registration, "member_deleted", now)
        _emit_registrations(uow, joint_event, [("registration.cancelled", r) for r in mine] +
                            _promoted(_settle(uow, joint_event)))
    session.execute(sql_update(Registration).where(Registration.member_id == member.id).values(attendees=None)
                    .execution_options(synchronize_session="fetch"))
