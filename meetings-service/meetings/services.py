"""The use cases of meetings-service: one function per command and one for the consumed events, each
on a unit of work (``uow.session`` for state, ``uow.emit`` for the events it announces, committed
together through the outbox; ``uow.now()`` for the time). Input arrives validated by
``meetings.schemas``; the rules are in ``meetings.domain``.

Booking a slot writes one ``bookings`` row per participant and sets the meeting's (slot, table): the
unique keys (event, slot, member) and (event, slot, table) refuse a double booking that raced past the
checks, as an IntegrityError that the entrypoints answer with 409."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from marshmallow import ValidationError
from sqlalchemy import delete, func, select, update

from meetings import domain, scheduler
from meetings.models import (
    OPEN,
    Booking,
    JointEvent,
    Meeting,
    Member,
    Outcome,
    Participant,
    Registrant,
    Setup,
    Slot,
    iso,
)
from meetings.queries import (
    calendar_of,
    load_meeting,
    load_setup,
    meeting_view,
    outside_sessions,
    outside_slots,
    participant_view,
    setup_view,
    slot_numbers,
    slot_times,
)
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import Conflict, Forbidden, NotFound, Unprocessable

# --- the read model: event.*, registration.*, member.* -----------------------------------------------

def on_platform_event(uow: UnitOfWork, event: dict) -> None:
    """Keep the read model current: joint events (event.*), who is registered (registration.*), members'
    sectors (member.registered/updated) — each only from a newer version than held; event.cancelled,
    a cancelled registration and member.deleted also cancel the open meetings they end.
    member.* also carries the organisation's name, kept for the partner's name in meetings and agendas."""
    kind = event["type"]
    if kind.startswith("event."):
        _on_joint_event(uow, event)
    elif kind.startswith("registration."):
        _on_registration(uow, event["data"]["registration"])
    elif kind == "member.deleted":
        _on_member_deleted(uow, event["data"])
    elif kind in ("member.registered", "member.updated"):
        profile = event["data"]["profile"]
        member = uow.session.get(Member, profile["id"], with_for_update=True)
        if member is None:
            uow.session.add(Member(id=profile["id"], version=profile["version"], sector=profile.get("sector"),
                                   name=_name(profile)))
        elif member.deleted_at is None and member.version < profile["version"]:
            member.version, member.sector, member.name = profile["version"], profile.get("sector"), _name(profile)


def _name(profile: dict) -> str | None:
    return (profile.get("name") or "")[:300] or None


def _venue(snapshot: dict) -> str | None:
    venue = snapshot.get("venue") or {}
    text = ", ".join(part for part in (venue.get("name"), venue.get("address"), venue.get("city")) if part)
    return text[:400] or None


def _on_joint_event(uow: UnitOfWork, event: dict) -> None:
    snapshot = event["data"]["event"]
    row = uow.session.get(JointEvent, snapshot["id"], with_for_update=True)
    if row is not None and row.version >= snapshot["version"]:
        return  # an older or the same version: already known
    if row is None:
        row = JointEvent(id=snapshot["id"])
        uow.session.add(row)
        outside_before = set()
    else:
        outside_before = outside_slots(uow.session, row)
    row.version, row.title, row.timezone = snapshot["version"], snapshot["title"], snapshot["timezone"]
    row.starts_at = datetime.fromisoformat(snapshot["starts_at"].replace("Z", "+00:00"))
    row.ends_at = datetime.fromisoformat(snapshot["ends_at"].replace("Z", "+00:00"))
    row.status = "cancelled" if snapshot["status"] == "cancelled" else "scheduled"
    row.organizers, row.venue = list(snapshot["organizers"]), _venue(snapshot)
    uow.session.flush()
    if row.status == "cancelled":
        for meeting in _open_meetings(uow, row.id):
            _end(uow, meeting, "cancelled", "event_cancelled", cause="event_cancelled")
    else:
        _note_moved_meetings(uow, row, outside_before)


def _note_moved_meetings(uow: UnitOfWork, event: JointEvent, outside_before: set[int]) -> None:
    """The event's times changed: meetings whose slot now lies outside the event (or inside again) are
    neither dropped nor moved; they keep their slot and show as ``outside_event`` (a conflict for the
    organizers, "to be rescheduled" in agendas). Their version rises so that calendars take up the new
    state (TENTATIVE instead of CONFIRMED)."""
    changed = outside_before ^ outside_slots(uow.session, event)
    if not changed:
        return
    for meeting in uow.session.execute(select(Meeting).where(
            Meeting.event_id == event.id, Meeting.status == "accepted", Meeting.slot.in_(changed))
            .order_by(Meeting.id).with_for_update()).scalars():
        _touch(meeting, uow.now())


def _on_registration(uow: UnitOfWork, registration: dict) -> None:
    key = (registration["event_id"], registration["member_id"])
    row = uow.session.get(Registrant, key, with_for_update=True)
    if row is not None and row.version >= registration["version"]:
        return
    if row is None:
        row = Registrant(event_id=key[0], member_id=key[1])
        uow.session.add(row)
    row.registration_id, row.version, row.status = registration["id"], registration["version"], registration["status"]
    uow.session.flush()
    if row.status != "confirmed":
        _leave(uow, key[0], key[1], "registration_cancelled")


def _on_member_deleted(uow: UnitOfWork, data: dict) -> None:
    """member.deleted: cancel the member's open meetings, erase what it wrote (messages, reasons), its name
    and its participation, and keep a tombstone (id, version) so that late events cannot bring it back."""
    session, member_id = uow.session, data["id"]
    member = session.get(Member, member_id, with_for_update=True)
    if member is not None and member.deleted_at is not None:
        return
    if member is None:
        member = Member(id=member_id)
        session.add(member)
    member.version, member.sector, member.name, member.deleted_at = data["version"], None, None, uow.now()
    event_ids = session.execute(select(Participant.event_id).where(Participant.member_id == member_id)).scalars().all()
    for event_id in event_ids:
        _leave(uow, event_id, member_id, "member_deleted")
    session.execute(update(Meeting).where(Meeting.requester_id == member_id).values(message=None))
    session.execute(update(Meeting).where((Meeting.requester_id == member_id) | (Meeting.recipient_id == member_id))
                    .values(reason=None))
    session.execute(delete(Participant).where(Participant.member_id == member_id))
    session.execute(delete(Registrant).where(Registrant.member_id == member_id))


def _leave(uow: UnitOfWork, event_id: str, member_id: str, reason: str) -> None:
    """A participant leaves an event's meetings (opted out, registration ended, member deleted): its open
    meetings there are cancelled."""
    participant = uow.session.get(Participant, (event_id, member_id), with_for_update=True)
    if participant is not None:
        participant.active = False
        participant.updated_at = uow.now()
    for meeting in _open_meetings(uow, event_id, member_id):
        _end(uow, meeting, "cancelled", reason, by=member_id, cause="member_left")


def _open_meetings(uow: UnitOfWork, event_id: str, member_id: str | None = None) -> list[Meeting]:
    query = select(Meeting).where(Meeting.event_id == event_id, Meeting.status.in_(OPEN))
    if member_id is not None:
        query = query.where((Meeting.requester_id == member_id) | (Meeting.recipient_id == member_id))
    return list(uow.session.execute(query.order_by(Meeting.id).with_for_update()).scalars())


# --- events of meetings --------------------------------------------------------------------------------

def _emit(uow: UnitOfWork, type: str, meeting: Meeting, **extra) -> None:
    """``meeting.*`` with the meeting's ids, status, slot times and table: no names, e-mails or message text."""
    uow.session.flush()
    start, end = slot_times(uow.session, meeting.event_id, meeting.slot)
    uow.emit(type, meeting.id, {"meeting": {
        "id": meeting.id, "event_id": meeting.event_id, "requester_id": meeting.requester_id,
        "recipient_id": meeting.recipient_id, "status": meeting.status, "slot": meeting.slot,
        "starts_at": iso(start), "ends_at": iso(end), "table": meeting.table_no, "version": meeting.version,
        "updated_at": iso(meeting.updated_at)}, **extra})


def _touch(meeting: Meeting, now: datetime) -> None:
    meeting.version += 1
    meeting.updated_at = now


def _unbook(uow: UnitOfWork, meeting: Meeting) -> None:
    uow.session.execute(delete(Booking).where(Booking.meeting_id == meeting.id))


def _book(uow: UnitOfWork, meeting: Meeting, slot: int, table: int | None, placed_by: str) -> None:
    """Put ``meeting`` into ``slot`` at ``table``: flushes, so a double booking raises IntegrityError here."""
    _unbook(uow, meeting)
    uow.session.flush()
    meeting.slot, meeting.table_no, meeting.placed_by = slot, table, placed_by
    meeting.unplaced_reason = None
    for member_id in (meeting.requester_id, meeting.recipient_id):
        uow.session.add(Booking(event_id=meeting.event_id, slot=slot, member_id=member_id, meeting_id=meeting.id))
    uow.session.flush()


def _end(uow: UnitOfWork, meeting: Meeting, status: str, reason: str | None, by: str | None = None,
         cause: str | None = None) -> None:
    """End a meeting; ``by``: the member whose step ended it (None: the organizers or the event),
    so that notifications tell the other side rather than the one who acted. A cancellation also
    says whether the meeting had been agreed (``was_accepted``: a withdrawn or lapsed request is not a
    cancelled meeting) and its ``cause``: member_cancelled, member_left, organizers, event_cancelled."""
    was_accepted = meeting.status == "accepted"
    was_visible = was_accepted and meeting.slot is not None
    meeting.status, meeting.reason = status, reason
    _unbook(uow, meeting)
    _touch(meeting, uow.now())
    extra = {"cancelled_by": by, "was_accepted": was_accepted, "cause": cause} if status == "cancelled" else {}
    _emit(uow, "meeting.declined" if status == "declined" else "meeting.cancelled", meeting,
          was_scheduled=was_visible, **extra)


# --- set-up --------------------------------------------------------------------------------------------

def _event(uow: UnitOfWork, event_id: str, *, lock: bool = False) -> JointEvent:
    event = uow.session.get(JointEvent, event_id, with_for_update=lock)
    if event is None:
        raise NotFound(f"no joint event {event_id} is known here (a new event may take a moment to arrive)")
    return event


def _periods(items: list[dict], timezone: str, field: str) -> list[tuple[datetime, datetime]]:
    try:
        return [(domain.to_utc(p["starts_at"], timezone), domain.to_utc(p["ends_at"], timezone)) for p in items]
    except domain.InvalidTime as exc:
        raise ValidationError({field: [str(exc)]}) from None


def set_up(uow: UnitOfWork, principal: Principal, event_id: str, body: dict) -> dict:
    """Create or replace the set-up of an event's matchmaking day (``body``: a loaded SetupSchema; times
    without an offset in the event's zone) and cut its slots. 403 unless an organizer of the event's
    associations or an admin; 404 event unknown; 409 the event is cancelled or over, or a slot inside the
    event that a meeting holds would vanish (slots at the same time keep their meetings under their new
    numbers; meetings in slots outside the moved event lose their time, ``_slot_moves``); 422 field errors
    (``domain.setup_problems``)."""
    now = uow.now()
    event = _event(uow, event_id, lock=True)
    if not domain.can_organize(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) set up its meetings")
    if event.status == "cancelled" or event.ends_at <= now:
        raise Conflict("the event is cancelled or over; its meetings cannot be set up any more")
    sessions = sorted(_periods(body["sessions"], event.timezone, "sessions"))
    breaks = sorted(_periods(body["breaks"], event.timezone, "breaks"))
    errors = domain.setup_problems(sessions, breaks, body["slot_minutes"], event.starts_at, event.ends_at)
    if errors:
        raise ValidationError(errors)
    slots = domain.cut_slots(sessions, breaks, body["slot_minutes"])
    setup = uow.session.get(Setup, event_id, with_for_update=True)
    moves: dict[str, int | None] | None = None  # set when the slots change under an existing set-up
    if setup is not None:
        held = uow.session.execute(select(func.count()).select_from(Booking)
                                   .where(Booking.event_id == event_id)).scalar_one()
        old = {s.number: s for s in uow.session.execute(
            select(Slot).where(Slot.event_id == event_id).order_by(Slot.number)).scalars()}
        if [(s.starts_at, s.ends_at) for s in old.values()] != [(s.starts_at, s.ends_at) for s in slots]:
            moves = _slot_moves(uow, event, old, slots)
    if setup is None:
        setup = Setup(event_id=event_id, version=0, published="none", created_at=now)
        uow.session.add(setup)
    else:
        too_few = body["tables"] is not None and uow.session.execute(
            select(func.count()).select_from(Meeting).where(Meeting.event_id == event_id, Meeting.status == "accepted",
                                                           Meeting.table_no > body["tables"])).scalar_one()
        if too_few or (body["tables"] is None and held):
            raise Conflict("meetings are booked at tables that would no longer exist")
    setup.version += 1
    setup.updated_at = now
    setup.sessions = [{"starts_at": iso(s), "ends_at": iso(e)} for s, e in sessions]
    setup.breaks = [{"starts_at": iso(s), "ends_at": iso(e)} for s, e in breaks]
    for name in ("slot_minutes", "tables", "max_per_session", "max_open_requests", "request_expiry_minutes",
                 "who_may_request", "request_mode", "scheduling_mode"):
        setattr(setup, name, body[name])
    setup.sector_pairs = [list(pair) for pair in body["sector_pairs"]]
    uow.session.flush()
    if moves is not None:
        _renumber(uow, event_id, old, slots, moves)
    uow.session.execute(delete(Slot).where(Slot.event_id == event_id))
    uow.session.add_all([Slot(event_id=event_id, number=s.number, session=s.session, starts_at=s.starts_at,
                              ends_at=s.ends_at) for s in slots])
    uow.session.flush()
    if moves is not None:
        _rebook(uow, moves)
    return setup_view(uow.session, setup, event)


def _slot_moves(uow: UnitOfWork, event: JointEvent, old: dict[int, Slot],
                slots: list[domain.SlotTime]) -> dict[str, int | None]:
    """Where each accepted meeting with a slot goes when the slots change: to the new number of a slot at
    the same time, or None (it loses its time) when its slot lies outside the event after the event moved.
    409 for a meeting whose slot inside the event would vanish: moving or cancelling it is the organizers'
    decision, not a side effect of the set-up."""
    number_at = {(s.starts_at, s.ends_at): s.number for s in slots}
    moves: dict[str, int | None] = {}
    for meeting in uow.session.execute(select(Meeting).where(
            Meeting.event_id == event.id, Meeting.status == "accepted", Meeting.slot.is_not(None))
            .order_by(Meeting.id).with_for_update()).scalars():
        slot = old.get(meeting.slot)
        same = number_at.get((slot.starts_at, slot.ends_at)) if slot is not None else None
        if same is not None:
            moves[meeting.id] = same
        elif slot is None or domain.outside_event(slot.starts_at, slot.ends_at, event.starts_at, event.ends_at):
            moves[meeting.id] = None
        else:
            raise Conflict("meetings already hold slots; the time blocks and slot length cannot change now "
                           "(move or cancel those meetings first)")
    return moves


def _renumber(uow: UnitOfWork, event_id: str, old: dict[int, Slot], slots: list[domain.SlotTime],
              moves: dict[str, int | None]) -> None:
    """Before the slots are cut anew: free the booked meetings' slots (rebooked by ``_rebook``) and carry the
    participants' availability over to the slots at the same times (slots that vanish drop out of it)."""
    number_at = {(s.starts_at, s.ends_at): s.number for s in slots}
    new_number = {n: number_at.get((s.starts_at, s.ends_at)) for n, s in old.items()}
    for meeting_id in moves:
        meeting = uow.session.get(Meeting, meeting_id)
        _unbook(uow, meeting)
        meeting.slot = None  # the (event, slot, table) key must not meet a meeting's old number
    uow.session.flush()
    for participant in uow.session.execute(select(Participant).where(Participant.event_id == event_id)
                                           .with_for_update()).scalars():
        if participant.available is not None:  # None (every slot) is stored as JSON null: no SQL filter
            participant.available = sorted(new_number[n] for n in participant.available
                                           if new_number.get(n) is not None)


def _rebook(uow: UnitOfWork, moves: dict[str, int | None]) -> None:
    """After the slots are cut anew: a meeting whose slot came back keeps its time, table and who placed it;
    one whose slot left the event waits for "schedule all" without a time (``unplaced_reason``
    ``outside_event``; agendas list it as to be rescheduled)."""
    for meeting_id, slot in moves.items():
        meeting = uow.session.get(Meeting, meeting_id)
        if slot is not None:
            _book(uow, meeting, slot, meeting.table_no, meeting.placed_by)
        else:
            meeting.table_no, meeting.locked, meeting.unplaced_reason = None, False, "outside_event"
            _touch(meeting, uow.now())


# --- participants --------------------------------------------------------------------------------------

def _member_of(principal: Principal) -> str:
    if principal.role != "member":
        raise Forbidden("only members take part in meetings; sign in as the member")
    return principal.member_id


def _check_slots(uow: UnitOfWork, event_id: str, slots: list[int] | None, field: str = "available") -> None:
    if slots is None:
        return
    known = set(slot_numbers(uow.session, event_id))
    unknown = sorted(set(slots) - known)
    if unknown:
        raise ValidationError({field: [f"no such slot: {', '.join(map(str, unknown[:10]))}"]})


def opt_in(uow: UnitOfWork, principal: Principal, event_id: str, body: dict) -> dict:
    """A confirmed registrant takes part in the event's meetings, or changes its availability
    (``body``: a loaded ParticipationSchema). 403 not a member or not confirmed for the event; 404 no
    meetings at the event; 409 the event is over or cancelled; 422 unknown slot numbers."""
    member_id = _member_of(principal)
    setup = load_setup(uow.session, event_id)
    event = _event(uow, event_id)
    if event.status == "cancelled" or event.ends_at <= uow.now():
        raise Conflict("the event is cancelled or over")
    registrant = uow.session.get(Registrant, (event_id, member_id))
    if registrant is None or registrant.status != "confirmed":
        raise Forbidden("only members with a confirmed registration for this event take part in its meetings")
    _check_slots(uow, event_id, body["available"])
    participant = uow.session.get(Participant, (event_id, member_id), with_for_update=True)
    if participant is None:
        participant = Participant(event_id=event_id, member_id=member_id, created_at=uow.now())
        uow.session.add(participant)
    participant.active = True
    participant.available = sorted(set(body["available"])) if body["available"] is not None else None
    participant.meeting_point = body["meeting_point"] if setup.tables is None else None
    participant.updated_at = uow.now()
    uow.session.flush()
    return participant_view(participant)


def opt_out(uow: UnitOfWork, principal: Principal, event_id: str) -> dict:
    """A participant leaves the event's meetings: its open requests and meetings there are cancelled
    (reason ``opted_out``). 404 when it never took part."""
    member_id = _member_of(principal)
    participant = uow.session.get(Participant, (event_id, member_id))
    if participant is None:
        raise NotFound("you do not take part in meetings at this event")
    _leave(uow, event_id, member_id, "opted_out")
    return participant_view(participant)


# --- requests ------------------------------------------------------------------------------------------

def _active_participant(uow: UnitOfWork, event_id: str, member_id: str) -> Participant | None:
    participant = uow.session.get(Participant, (event_id, member_id))
    return participant if participant is not None and participant.active else None


def _expire_stale(uow: UnitOfWork, event_id: str, *member_ids: str) -> None:
    """Store ``expired`` on these members' pending requests past their expiry (they hold no pair any more)."""
    uow.session.execute(update(Meeting).where(
        Meeting.event_id == event_id, Meeting.status == "pending", Meeting.expires_at <= uow.now(),
        Meeting.requester_id.in_(member_ids) | Meeting.recipient_id.in_(member_ids)).values(status="expired"))


def request(uow: UnitOfWork, principal: Principal, event_id: str, body: dict) -> dict:
    """A participant asks another for a meeting with a message (``body``: a loaded RequestSchema).
    Emits ``meeting.requested`` (and ``meeting.accepted`` in automatic mode, with a slot picked at once
    when participants schedule). 403 not a participant; 404 no meetings at the event; 409 an open
    request for the pair exists, or the cap on open requests is reached; 422 a request to oneself, to a
    non-participant, or across sectors the set-up does not allow."""
    now, session = uow.now(), uow.session
    requester_id = _member_of(principal)
    setup = load_setup(session, event_id, lock=True)
    event = _event(uow, event_id)
    if event.status == "cancelled" or event.ends_at <= now:
        raise Conflict("the event is cancelled or over")
    if _active_participant(uow, event_id, requester_id) is None:
        raise Forbidden("opt in to the meetings of this event first")
    recipient_id = body["recipient_id"]
    problem = domain.request_problem(requester_id, recipient_id,
                                     _active_participant(uow, event_id, recipient_id) is not None)
    if problem:
        raise Unprocessable(problem, fields={"recipient_id": [problem]})
    sectors = {m.id: m.sector for m in session.execute(
        select(Member).where(Member.id.in_([requester_id, recipient_id]))).scalars()}
    if not domain.may_request(setup.who_may_request, setup.sector_pairs, sectors.get(requester_id),
                              sectors.get(recipient_id)):
        message = "at this event meetings are arranged between the sectors the organizers chose, not this one"
        raise Unprocessable(message, fields={"recipient_id": [message]})
    _expire_stale(uow, event_id, requester_id, recipient_id)
    low, high = sorted((requester_id, recipient_id))
    existing = session.execute(select(Meeting).where(
        Meeting.event_id == event_id, Meeting.pair_low == low, Meeting.pair_high == high,
        Meeting.status.in_(OPEN))).scalar()
    if existing is not None:
        raise Conflict(f"there is already an open request between you two ({existing.status})", meeting_id=existing.id)
    open_count = session.execute(select(func.count()).select_from(Meeting).where(
        Meeting.event_id == event_id, Meeting.requester_id == requester_id, Meeting.status == "pending")).scalar_one()
    if open_count >= setup.max_open_requests:
        raise Conflict(f"you have {open_count} open requests, the most this event allows; wait for answers "
                       "or withdraw one")
    meeting = Meeting(id=str(uuid.uuid4()), event_id=event_id, requester_id=requester_id, recipient_id=recipient_id,
                      pair_low=low, pair_high=high, status="pending", message=body["message"],
                      expires_at=now + timedelta(minutes=setup.request_expiry_minutes), locked=False, version=1,
                      created_at=now, updated_at=now)
    session.add(meeting)
    _emit(uow, "meeting.requested", meeting, expires_at=iso(meeting.expires_at))
    if setup.request_mode == "automatic":
        _accept(uow, setup, meeting, None, auto_slot=setup.scheduling_mode == "participants")
    return meeting_view(session, meeting, requester_id, setup, now)


def _accept(uow: UnitOfWork, setup: Setup, meeting: Meeting, slot: int | None, *, auto_slot: bool = False) -> None:
    now = uow.now()
    if slot is None and auto_slot:
        free = _free_slots(uow, setup, meeting)
        slot = free[0] if free else None
    table = None
    if slot is not None:
        table = _table_for(uow, setup, meeting, slot)
    meeting.status, meeting.accepted_at = "accepted", now
    _touch(meeting, now)
    if slot is not None:
        _book(uow, meeting, slot, table, "participants")
    _emit(uow, "meeting.accepted", meeting)
    if slot is not None:
        _emit(uow, "meeting.scheduled", meeting)


def _free_slots(uow: UnitOfWork, setup: Setup, meeting: Meeting) -> list[int]:
    calendar = calendar_of(uow.session, setup.event_id, exclude_meeting=meeting.id)
    return domain.mutually_free(meeting.requester_id, meeting.recipient_id, sorted(calendar.session_of), calendar,
                                setup.max_per_session)


def _table_for(uow: UnitOfWork, setup: Setup, meeting: Meeting, slot: int) -> int | None:
    if slot not in _free_slots(uow, setup, meeting):
        raise Conflict(f"slot {slot} is not free for both of you (booked, unavailable or the most meetings "
                       "per time block reached); pick another", free_slots=_free_slots(uow, setup, meeting))
    calendar = calendar_of(uow.session, setup.event_id, exclude_meeting=meeting.id)
    table = domain.free_table(slot, setup.tables, calendar)
    if setup.tables is not None and table is None:
        raise Conflict(f"every table is taken in slot {slot}; pick another slot")
    return table


def _answerable(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str) -> tuple[Setup, Meeting]:
    member_id = _member_of(principal)
    # Only the meeting's row is locked (one answer per request): concurrent accepts of different requests
    # run side by side, and the unique keys of bookings and tables decide a race for a slot or a table.
    setup = load_setup(uow.session, event_id)
    meeting = load_meeting(uow.session, event_id, meeting_id, lock=True)
    if member_id != meeting.recipient_id:
        raise Forbidden("only the member asked answers a request")
    status = domain.effective_status(meeting.status, meeting.expires_at, uow.now())
    if status == "expired":
        raise Conflict(f"this request expired on {meeting.expires_at:%Y-%m-%d %H:%M} UTC; it cannot be answered any "
                       "more. Send a request of your own instead.")
    if status != "pending":
        raise Conflict(f"this request was already answered ({status})")
    return setup, meeting


def accept(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str, body: dict) -> dict:
    """The member asked accepts (``body``: a loaded AcceptSchema): with ``slot`` a mutually free slot (a
    table is assigned), without one the scheduler places it. Emits ``meeting.accepted`` (and
    ``meeting.scheduled``). 403 not the member asked; 409 expired, answered, the slot not free for both,
    no table free, or the organizer schedules centrally; 422 no such slot."""
    setup, meeting = _answerable(uow, principal, event_id, meeting_id)
    if body["slot"] is not None:
        if setup.scheduling_mode != "participants":
            raise Conflict("at this event the organizers schedule the meetings; accept without a slot")
        _check_slots(uow, event_id, [body["slot"]], "slot")
    _accept(uow, setup, meeting, body["slot"])
    return meeting_view(uow.session, meeting, principal.member_id, setup, uow.now())


def decline(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str, body: dict) -> dict:
    """The member asked declines, with an optional reason (seen by the requester only, never in events).
    Emits ``meeting.declined``. 403, 404, 409 expired or already answered."""
    setup, meeting = _answerable(uow, principal, event_id, meeting_id)
    _end(uow, meeting, "declined", body["reason"])
    return meeting_view(uow.session, meeting, principal.member_id, setup, uow.now())


def cancel(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str, body: dict) -> dict:
    """Either side withdraws a pending request or cancels an accepted meeting (staff of the event may too);
    its slot and table are freed. Emits ``meeting.cancelled``. 403, 404, 409 not open."""
    setup = load_setup(uow.session, event_id, lock=True)
    meeting = load_meeting(uow.session, event_id, meeting_id, lock=True)
    mine = principal.role == "member" and principal.member_id in (meeting.requester_id, meeting.recipient_id)
    if not mine and not domain.can_organize(principal, _event(uow, event_id).organizers):
        raise Forbidden("only the two members (or the event's organizers) cancel a meeting")
    status = domain.effective_status(meeting.status, meeting.expires_at, uow.now())
    if status not in OPEN:
        raise Conflict(f"this meeting is {status}; there is nothing to cancel")
    _end(uow, meeting, "cancelled", body["reason"], by=principal.member_id if mine else None,
         cause="member_cancelled" if mine else "organizers")
    return meeting_view(uow.session, meeting, principal.member_id, setup, uow.now())


def reschedule(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str, body: dict) -> dict:
    """Either side moves an accepted meeting to another mutually free slot (a table is assigned anew) while
    participants schedule. Emits ``meeting.scheduled``. 403, 404, 409 not accepted, locked by the organizers,
    the organizer schedules, or the slot not free; 422 no such slot."""
    member_id = _member_of(principal)
    setup = load_setup(uow.session, event_id)
    meeting = load_meeting(uow.session, event_id, meeting_id, lock=True)
    if member_id not in (meeting.requester_id, meeting.recipient_id):
        raise Forbidden("only the two members move their meeting")
    if meeting.status != "accepted":
        raise Conflict(f"only an accepted meeting can move; this one is {meeting.status}")
    if setup.scheduling_mode != "participants" or meeting.locked:
        raise Conflict("the organizers schedule this meeting; ask them to move it")
    _check_slots(uow, event_id, [body["slot"]], "slot")
    table = _table_for(uow, setup, meeting, body["slot"])
    _touch(meeting, uow.now())
    _book(uow, meeting, body["slot"], table, "participants")
    _emit(uow, "meeting.scheduled", meeting)
    return meeting_view(uow.session, meeting, member_id, setup, uow.now())


# --- attendance and outcomes ----------------------------------------------------------------------------

def _held_meeting(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str) -> tuple[Setup, Meeting]:
    member_id = _member_of(principal)
    setup = load_setup(uow.session, event_id)
    meeting = load_meeting(uow.session, event_id, meeting_id, lock=True)
    if member_id not in (meeting.requester_id, meeting.recipient_id):
        raise Forbidden("only the two members report on their meeting")
    if meeting.status != "accepted" or meeting.slot is None:
        raise Conflict("only a scheduled meeting can be reported on")
    _, end = slot_times(uow.session, event_id, meeting.slot)
    if end > uow.now():
        raise Conflict(f"the meeting ends at {end:%Y-%m-%d %H:%M} UTC; report on it afterwards")
    return setup, meeting


def attendance(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str, body: dict) -> dict:
    """One side says whether the meeting took place (no-show tracking); it may correct itself.
    403, 404, 409 not scheduled or not over yet."""
    setup, meeting = _held_meeting(uow, principal, event_id, meeting_id)
    side = "requester_attended" if principal.member_id == meeting.requester_id else "recipient_attended"
    setattr(meeting, side, body["took_place"])
    meeting.updated_at = uow.now()
    return meeting_view(uow.session, meeting, principal.member_id, setup, uow.now())


def report_outcome(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str, body: dict) -> dict:
    """One side reports what came of the meeting (``domain.OUTCOMES`` and whether it led to a joint project);
    a later report replaces its earlier one. Emits ``meeting.outcome_reported``. 403, 404, 409."""
    _, meeting = _held_meeting(uow, principal, event_id, meeting_id)
    row = uow.session.get(Outcome, (meeting.id, principal.member_id), with_for_update=True)
    if row is None:
        row = Outcome(meeting_id=meeting.id, member_id=principal.member_id)
        uow.session.add(row)
    row.outcome, row.led_to_project, row.reported_at = body["outcome"], body["led_to_project"], uow.now()
    uow.session.flush()
    uow.emit("meeting.outcome_reported", meeting.id, {
        "meeting_id": meeting.id, "event_id": event_id, "member_id": principal.member_id,
        "outcome": row.outcome, "led_to_project": row.led_to_project, "reported_at": iso(row.reported_at)})
    return {"meeting_id": meeting.id, "member_id": principal.member_id, "outcome": row.outcome,
            "led_to_project": row.led_to_project, "reported_at": iso(row.reported_at)}


# --- organizer scheduling ---------------------------------------------------------------------------------

def _organizing(uow: UnitOfWork, principal: Principal, event_id: str) -> Setup:
    setup = load_setup(uow.session, event_id, lock=True)
    if not domain.can_organize(principal, _event(uow, event_id).organizers):
        raise Forbidden("only organizers of this event's associations (or admins) schedule its meetings")
    return setup


def _problem(uow: UnitOfWork, setup: Setup, *, replan: bool) -> tuple[scheduler.Problem, dict[int, Meeting]]:
    """The event's accepted meetings as a scheduler problem (ids numbered from 1). Meetings the participants
    placed and locked ones keep their slot and table; with ``replan`` the others are free to move, and so are
    meetings in slots outside the event (it moved), which ``replan`` leaves out of the problem."""
    outside = outside_slots(uow.session, _event(uow, setup.event_id)) if replan else set()
    rows = [row for row in uow.session.execute(select(Slot).where(Slot.event_id == setup.event_id)
                                               .order_by(Slot.number)).scalars() if row.number not in outside]
    position: dict[int, int] = {}
    slots = []
    for row in rows:
        index = position.get(row.session, 0)
        position[row.session] = index + 1
        slots.append(scheduler.Slot(row.number, row.session, index, row.starts_at, row.ends_at))
    meetings = list(uow.session.execute(select(Meeting).where(
        Meeting.event_id == setup.event_id, Meeting.status == "accepted").order_by(Meeting.created_at, Meeting.id)
        .with_for_update()).scalars())
    by_number = dict(enumerate(meetings, start=1))
    participants = uow.session.execute(select(Participant).where(Participant.event_id == setup.event_id)).scalars()
    availability, points = {}, None
    people = sorted({m.requester_id for m in meetings} | {m.recipient_id for m in meetings})
    for participant in participants:
        if participant.available is not None:
            availability[participant.member_id] = frozenset(participant.available)
    if setup.tables is None:  # meeting-point mode: each participant's own point, numbered for the solver
        points = {member_id: number for number, member_id in enumerate(people, start=1)}
        tables = tuple(points.values())
    else:
        tables = tuple(range(1, setup.tables + 1))
    problem_meetings = []
    for number, meeting in by_number.items():
        keep = meeting.slot is not None and meeting.slot not in outside and (
            meeting.locked or meeting.placed_by == "participants" or not replan)
        table = meeting.table_no if keep and setup.tables is not None else None
        problem_meetings.append(scheduler.Meeting(number, meeting.requester_id, meeting.recipient_id,
                                                  meeting.slot if keep else None, table))
    return scheduler.Problem(tuple(slots), tables, tuple(problem_meetings), availability, setup.max_per_session,
                             points), by_number


def schedule_all(uow: UnitOfWork, principal: Principal, event_id: str, body: dict, solve=None) -> dict:
    """"Schedule all": place every accepted meeting into a slot and a table with the scheduler (CP-SAT with
    a time limit, greedy fallback), keeping locked meetings and those the participants placed. Placements
    are visible to participants once published (``meeting.scheduled`` then). Answers {placed, unplaced:
    [{meeting_id, reason}], status, idle_gaps, seconds}; each meeting left out keeps its reason
    (``unplaced_reason`` in the organizers' view) until it is placed. 403, 404."""
    setup = _organizing(uow, principal, event_id)
    problem, by_number = _problem(uow, setup, replan=True)
    solve = solve or (lambda p: scheduler.schedule(p, time_limit_s=body["time_limit_s"], workers=2))
    result = solve(problem)
    placements = {p.meeting_id: p for p in result.placements}
    moving = [m for n, m in by_number.items() if problem.meetings[n - 1].locked_slot is None]
    before = {m.id: (m.slot, m.table_no) for m in moving}
    for meeting in moving:  # free their slots and tables first: one may move into another's old place
        _unbook(uow, meeting)
        meeting.slot = meeting.table_no = None
    uow.session.flush()
    for number, meeting in by_number.items():
        meeting.unplaced_reason = result.unplaced.get(number)
        placement = placements.get(number)
        if meeting not in moving or placement is None:
            continue
        table = placement.table if setup.tables is not None else None
        _book(uow, meeting, placement.slot_id, table, "organizer")
        if before[meeting.id] != (placement.slot_id, table):
            _touch(meeting, uow.now())
            if setup.published != "none":
                _emit(uow, "meeting.scheduled", meeting)
    return {"placed": result.placed, "status": result.status, "idle_gaps": result.idle_gaps,
            "seconds": round(result.seconds, 3), "meetings": len(by_number),
            "unplaced": [{"meeting_id": by_number[n].id, "reason": reason}
                         for n, reason in sorted(result.unplaced.items())]}


def place(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str, body: dict) -> dict:
    """The organizer puts one accepted meeting into a slot (and a table: the given one or the lowest free),
    locked by default so that "schedule all" keeps it. Emits ``meeting.scheduled`` once published.
    403, 404, 409 not accepted, a participant busy or unavailable then, the table taken; 422 no such slot."""
    setup = _organizing(uow, principal, event_id)
    meeting = load_meeting(uow.session, event_id, meeting_id, lock=True)
    if meeting.status != "accepted":
        raise Conflict(f"only an accepted meeting can be placed; this one is {meeting.status}")
    _check_slots(uow, event_id, [body["slot"]], "slot")
    if body["table"] is not None and (setup.tables is None or body["table"] > setup.tables):
        raise ValidationError({"table": [f"there are {setup.tables or 0} tables"]})
    table = _table_for(uow, setup, meeting, body["slot"])
    if body["table"] is not None:
        calendar = calendar_of(uow.session, event_id, exclude_meeting=meeting.id)
        if body["table"] in calendar.tables_used.get(body["slot"], set()):
            raise Conflict(f"table {body['table']} is taken in slot {body['slot']}")
        table = body["table"]
    meeting.locked = body["locked"]
    _touch(meeting, uow.now())
    _book(uow, meeting, body["slot"], table, "organizer")
    if setup.published != "none":
        _emit(uow, "meeting.scheduled", meeting)
    return meeting_view(uow.session, meeting, None, setup, uow.now(), staff=True)


def lock(uow: UnitOfWork, principal: Principal, event_id: str, meeting_id: str, body: dict) -> dict:
    """Lock (or unlock) a meeting's slot and table against "schedule all". 403, 404."""
    setup = _organizing(uow, principal, event_id)
    meeting = load_meeting(uow.session, event_id, meeting_id, lock=True)
    meeting.locked = body["locked"]
    meeting.updated_at = uow.now()
    return meeting_view(uow.session, meeting, None, setup, uow.now(), staff=True)


def conflicts(uow: UnitOfWork, principal: Principal, event_id: str) -> dict:
    """The rule violations of the current placements (``scheduler.check``), each with the meetings it names,
    the meetings whose slot lies outside the event after it moved (code ``outside_event``, detail the
    meeting's id), the accepted meetings still without a slot, and the time blocks outside the event
    (``sessions_outside``: indexes from 0). 403, 404."""
    setup = _organizing(uow, principal, event_id)
    event = _event(uow, event_id)
    problem, by_number = _problem(uow, setup, replan=False)
    placements = [scheduler.Placement(n, m.slot, m.table_no if setup.tables is not None else
                                      (problem.meeting_points or {}).get(m.requester_id, 0))
                  for n, m in by_number.items() if m.slot is not None]
    found = []
    for code in scheduler.check(problem, placements):
        kind, _, rest = code.partition(":")
        found.append({"code": kind, "detail": rest})
    outside = outside_slots(uow.session, event)
    found.extend({"code": "outside_event", "detail": m.id} for m in by_number.values() if m.slot in outside)
    unscheduled = [m.id for m in by_number.values() if m.slot is None]
    return {"event_id": event_id, "conflicts": found, "unscheduled": unscheduled,
            "sessions_outside": outside_sessions(setup, event)}


def publish(uow: UnitOfWork, principal: Principal, event_id: str, body: dict) -> dict:
    """Publish the schedule, ``preliminary`` or ``final``: participants see the organizers' placements from
    now on; every placed meeting is announced (``meeting.scheduled``) with a new version, so that calendars
    take up the change (TENTATIVE to CONFIRMED). 403, 404, 409 a final schedule back to preliminary."""
    setup = _organizing(uow, principal, event_id)
    if setup.published == "final" and body["state"] == "preliminary":
        raise Conflict("the schedule is already final")
    setup.published, setup.published_at = body["state"], uow.now()
    placed = uow.session.execute(select(Meeting).where(
        Meeting.event_id == event_id, Meeting.status == "accepted", Meeting.slot.is_not(None))
        .order_by(Meeting.id)).scalars().all()
    for meeting in placed:
        _touch(meeting, uow.now())
        _emit(uow, "meeting.scheduled", meeting)
    return {"event_id": event_id, "published": setup.published, "published_at": iso(setup.published_at),
            "meetings": len(placed)}
