"""The read side of meetings-service: set-ups, participants, requests, agendas and the organizers'
roll-up. Each query takes a session (and ``now`` where expiry matters) and changes nothing."""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meetings import domain
from meetings.models import Booking, JointEvent, Meeting, Member, Outcome, Participant, Setup, Slot, iso
from verbund.auth import Principal
from verbund.errors import Forbidden, NotFound

# --- loading ---------------------------------------------------------------------------------------------

def load_setup(session: Session, event_id: str, *, lock: bool = False) -> Setup:
    """The set-up of the event's meetings; ``lock`` serialises the commands of one event. 404 if none."""
    query = select(Setup).where(Setup.event_id == event_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    setup = session.execute(query).scalar()
    if setup is None:
        raise NotFound("the organizers have not set up meetings for this event")
    return setup


def load_meeting(session: Session, event_id: str, meeting_id: str, *, lock: bool = False) -> Meeting:
    query = select(Meeting).where(Meeting.id == meeting_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    meeting = session.execute(query).scalar()
    if meeting is None or meeting.event_id != event_id:
        raise NotFound(f"no meeting {meeting_id} at this event")
    return meeting


def slots(session: Session, event_id: str) -> list[Slot]:
    return list(session.execute(select(Slot).where(Slot.event_id == event_id).order_by(Slot.number)).scalars())


def slot_numbers(session: Session, event_id: str) -> list[int]:
    return list(session.execute(select(Slot.number).where(Slot.event_id == event_id)).scalars())


def slot_times(session: Session, event_id: str, number: int | None) -> tuple[datetime | None, datetime | None]:
    if number is None:
        return None, None
    slot = session.get(Slot, (event_id, number))
    return (slot.starts_at, slot.ends_at) if slot is not None else (None, None)


def calendar_of(session: Session, event_id: str, exclude_meeting: str | None = None) -> domain.Calendar:
    """Who is available and booked when at the event (``exclude_meeting``'s own booking left out, for a move)."""
    session_of = dict(session.execute(select(Slot.number, Slot.session).where(Slot.event_id == event_id)).all())
    available = dict(session.execute(select(Participant.member_id, Participant.available)
                                     .where(Participant.event_id == event_id)).all())
    booked: dict[int, set[str]] = {}
    per_session: Counter = Counter()
    for slot, member_id, meeting_id in session.execute(
            select(Booking.slot, Booking.member_id, Booking.meeting_id).where(Booking.event_id == event_id)):
        if meeting_id == exclude_meeting:
            continue
        booked.setdefault(slot, set()).add(member_id)
        per_session[(member_id, session_of.get(slot))] += 1
    tables: dict[int, set[int]] = {}
    for slot, table, meeting_id in session.execute(select(Meeting.slot, Meeting.table_no, Meeting.id).where(
            Meeting.event_id == event_id, Meeting.status == "accepted", Meeting.table_no.is_not(None))):
        if meeting_id != exclude_meeting:
            tables.setdefault(slot, set()).add(table)
    return domain.Calendar({m: (set(a) if a is not None else None) for m, a in available.items()},
                           booked, tables, session_of, dict(per_session))


def outside_slots(session: Session, event: JointEvent) -> set[int]:
    """The numbers of the event's slots that lie outside its current time (after the event moved)."""
    rows = session.execute(select(Slot.number, Slot.starts_at, Slot.ends_at).where(Slot.event_id == event.id))
    return {number for number, start, end in rows if domain.outside_event(start, end, event.starts_at, event.ends_at)}


def outside_sessions(setup: Setup, event: JointEvent) -> list[int]:
    """The indexes (from 0, in time order) of the set-up's time blocks that lie outside the event's current time."""
    return [index for index, block in enumerate(setup.sessions)
            if domain.outside_event(_utc(block["starts_at"]), _utc(block["ends_at"]), event.starts_at, event.ends_at)]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- views -----------------------------------------------------------------------------------------------

def setup_view(session: Session, setup: Setup, event: JointEvent) -> dict:
    """The set-up as the API shows it, with its slots in UTC and in the event's zone; time blocks and slots
    carry ``outside_event`` (true once the event moved so that they lie outside its time)."""
    tz = domain.zone(event.timezone)
    outside = set(outside_sessions(setup, event))
    return {
        "event_id": setup.event_id, "version": setup.version, "event_title": event.title,
        "timezone": event.timezone,
        "sessions": [{**block, "outside_event": index in outside} for index, block in enumerate(setup.sessions)],
        "breaks": setup.breaks,
        "slot_minutes": setup.slot_minutes, "mode": "tables" if setup.tables is not None else "meeting_points",
        "tables": setup.tables, "max_per_session": setup.max_per_session,
        "max_open_requests": setup.max_open_requests, "request_expiry_minutes": setup.request_expiry_minutes,
        "who_may_request": setup.who_may_request, "sector_pairs": setup.sector_pairs,
        "request_mode": setup.request_mode, "scheduling_mode": setup.scheduling_mode,
        "published": setup.published, "published_at": iso(setup.published_at),
        "slots": [{"number": s.number, "session": s.session, "starts_at": iso(s.starts_at), "ends_at": iso(s.ends_at),
                   "starts_local": s.starts_at.astimezone(tz).isoformat(),
                   "ends_local": s.ends_at.astimezone(tz).isoformat(),
                   "outside_event": domain.outside_event(s.starts_at, s.ends_at, event.starts_at, event.ends_at)}
                  for s in slots(session, setup.event_id)],
    }


def participant_view(participant: Participant) -> dict:
    return {"event_id": participant.event_id, "member_id": participant.member_id,
            "status": "active" if participant.active else "opted_out", "available": participant.available,
            "meeting_point": participant.meeting_point}


def placement_visible(meeting: Meeting, setup: Setup) -> bool:
    """Participants see a slot they picked themselves at once, one the organizers placed once published."""
    return meeting.slot is not None and (meeting.placed_by == "participants" or setup.published != "none")


def member_name(session: Session, member_id: str) -> str | None:
    """The organisation's name as member.* last gave it; None when not known (yet) or erased."""
    member = session.get(Member, member_id)
    return member.name if member is not None else None


def meeting_view(session: Session, meeting: Meeting, viewer: str | None, setup: Setup, now: datetime,
                 *, staff: bool = False) -> dict:
    """A meeting as one of its members (``viewer``) or staff sees it. The message and the reason are for the
    two members only; slot and table only once visible to participants (staff always see them). The two
    sides' organisation names: ``other_name`` for a member, ``requester_name``/``recipient_name`` for staff
    (None when not known or erased). Staff also see ``placed_by`` and ``unplaced_reason`` (why the last
    "schedule all" left it out: ``no_common_slot``, ``limit``, ``capacity``, ``locked_conflict``,
    ``outside_event``). ``outside_event``: an accepted meeting whose visible slot lies outside the event's
    current time (the event moved): to be rescheduled, its old time no longer holds."""
    visible = staff or placement_visible(meeting, setup)
    start, end = slot_times(session, meeting.event_id, meeting.slot) if visible else (None, None)
    event = session.get(JointEvent, meeting.event_id)
    outside = (meeting.status == "accepted" and start is not None and event is not None
               and domain.outside_event(start, end, event.starts_at, event.ends_at))
    mine = viewer in (meeting.requester_id, meeting.recipient_id)
    view = {
        "id": meeting.id, "event_id": meeting.event_id, "requester_id": meeting.requester_id,
        "recipient_id": meeting.recipient_id,
        "status": domain.effective_status(meeting.status, meeting.expires_at, now),
        "expires_at": iso(meeting.expires_at), "slot": meeting.slot if visible else None,
        "starts_at": iso(start), "ends_at": iso(end), "table": meeting.table_no if visible else None,
        "locked": meeting.locked, "version": meeting.version, "created_at": iso(meeting.created_at),
        "updated_at": iso(meeting.updated_at),
        "attendance": {"requester": meeting.requester_attended, "recipient": meeting.recipient_attended},
        "outside_event": outside,
    }
    if mine:
        view["message"], view["reason"] = meeting.message, meeting.reason
        view["role"] = "requester" if viewer == meeting.requester_id else "recipient"
        view["other_id"] = meeting.other(viewer)
        view["other_name"] = member_name(session, view["other_id"])
    if staff:
        view["placed_by"] = meeting.placed_by
        view["unplaced_reason"] = meeting.unplaced_reason
        view["requester_name"] = member_name(session, meeting.requester_id)
        view["recipient_name"] = member_name(session, meeting.recipient_id)
    return view


# --- lists -----------------------------------------------------------------------------------------------

def get_setup(session: Session, event_id: str) -> dict:
    setup = load_setup(session, event_id)
    return setup_view(session, setup, session.get(JointEvent, event_id))


def participants(session: Session, event_id: str) -> list[str]:
    """Member ids of the event's active participants, in id order."""
    return list(session.execute(select(Participant.member_id).where(
        Participant.event_id == event_id, Participant.active.is_(True)).order_by(Participant.member_id)).scalars())


def member_meetings(session: Session, principal: Principal, event_id: str, member_id: str, now: datetime) -> dict:
    """A member's requests and meetings at the event, newest first: sent and received, with their status
    (expired ones as expired). 403 for another member."""
    if not principal.is_member(member_id) and not principal.is_admin:
        raise Forbidden("you see your own requests only")
    setup = load_setup(session, event_id)
    rows = session.execute(select(Meeting).where(
        Meeting.event_id == event_id, (Meeting.requester_id == member_id) | (Meeting.recipient_id == member_id))
        .order_by(Meeting.created_at.desc(), Meeting.id)).scalars()
    participant = session.get(Participant, (event_id, member_id))
    return {"event_id": event_id, "member_id": member_id,
            "participant": participant_view(participant) if participant else None,
            "items": [meeting_view(session, m, member_id, setup, now) for m in rows]}


def all_meetings(session: Session, principal: Principal, event_id: str, now: datetime) -> dict:
    """Every meeting of the event for its organizers (no message texts)."""
    event = session.get(JointEvent, event_id)
    setup = load_setup(session, event_id)
    if not domain.can_organize(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) see all its meetings")
    rows = session.execute(select(Meeting).where(Meeting.event_id == event_id)
                           .order_by(Meeting.slot.nulls_last(), Meeting.table_no, Meeting.id)).scalars()
    return {"event_id": event_id, "published": setup.published,
            "items": [meeting_view(session, m, None, setup, now, staff=True) for m in rows]}


def free_slots(session: Session, principal: Principal, event_id: str, meeting_id: str, now: datetime) -> dict:
    """The slots in which both sides of a meeting are free (available, not booked elsewhere, below the most
    meetings per session) and a table is left: what accepting or moving the meeting can pick. The meeting's
    own booking counts as free (a move may stay). ``free_tables`` is the number of tables still free in the
    slot (None in meeting-point mode). 403 for anyone but the two members and the event's organizers;
    404 no such meeting."""
    setup = load_setup(session, event_id)
    meeting = load_meeting(session, event_id, meeting_id)
    if principal.member_id not in (meeting.requester_id, meeting.recipient_id) and not domain.can_organize(
            principal, session.get(JointEvent, event_id).organizers):
        raise Forbidden("only the two members (and the event's organizers) see their free times")
    calendar = calendar_of(session, event_id, exclude_meeting=meeting.id)
    both = set(domain.mutually_free(meeting.requester_id, meeting.recipient_id, sorted(calendar.session_of),
                                    calendar, setup.max_per_session))
    items = []
    for slot in slots(session, event_id):
        if slot.number not in both:
            continue
        tables = None
        if setup.tables is not None:
            tables = setup.tables - len(calendar.tables_used.get(slot.number, set()))
            if tables <= 0:
                continue
        items.append({"number": slot.number, "session": slot.session, "starts_at": iso(slot.starts_at),
                      "ends_at": iso(slot.ends_at), "free_tables": tables})
    return {"event_id": event_id, "meeting_id": meeting.id,
            "status": domain.effective_status(meeting.status, meeting.expires_at, now), "slots": items}


def agenda(session: Session, event_id: str, member_id: str, now: datetime) -> dict:
    """A participant's agenda: its accepted meetings with a visible slot, in time order, and the ones that
    were cancelled after being scheduled (so a calendar can drop them). A meeting whose slot lies outside
    the event's time after the event moved is ``outside_event`` and TENTATIVE (to be rescheduled, not
    confirmed at the old time); one the organizers took out of a published schedule because its time block
    left the event (``unplaced_reason`` ``outside_event``) stays listed without a time, ``outside_event``
    too, until it is placed again (calendars skip items without a time)."""
    setup = load_setup(session, event_id)
    event = session.get(JointEvent, event_id)
    rows = session.execute(select(Meeting).where(
        Meeting.event_id == event_id, (Meeting.requester_id == member_id) | (Meeting.recipient_id == member_id),
        Meeting.status.in_(("accepted", "cancelled", "declined")))).scalars()
    items = []
    for meeting in rows:
        taken_out = (meeting.slot is None and meeting.status == "accepted" and setup.published != "none"
                     and meeting.unplaced_reason == "outside_event")
        if not taken_out and not placement_visible(meeting, setup):
            continue
        view = meeting_view(session, meeting, member_id, setup, now)
        view["outside_event"] = view["outside_event"] or taken_out
        view["calendar_status"] = domain.calendar_status(meeting.status, True, setup.published,
                                                         outside=view["outside_event"])
        view["meeting_point"] = None
        if setup.tables is None:
            host = session.get(Participant, (event_id, meeting.recipient_id))
            view["meeting_point"] = host.meeting_point if host else None
        items.append(view)
    items.sort(key=lambda item: (item["starts_at"] or "", item["id"]))
    return {"event": {"id": event.id, "title": event.title, "timezone": event.timezone, "venue": event.venue},
            "member_id": member_id, "published": setup.published, "items": items}


def rollup(session: Session, principal: Principal, event_id: str, now: datetime) -> dict:
    """The organizers' figures of an event: requests / accepted / scheduled / held / no-show / disputed
    (``domain.attendance_verdict``: each scheduled meeting in one of them at most), table occupancy, and the
    outcomes as reported (per meeting, the better of the two sides' answers)."""
    event = session.get(JointEvent, event_id)
    setup = load_setup(session, event_id)
    if not domain.can_organize(principal, event.organizers):
        raise Forbidden("only organizers of this event's associations (or admins) see its figures")
    return _figures(session, event, setup, now)


def _figures(session: Session, event: JointEvent, setup: Setup, now: datetime) -> dict:
    event_id = event.id
    meetings = list(session.execute(select(Meeting).where(Meeting.event_id == event_id)).scalars())
    statuses = Counter(domain.effective_status(m.status, m.expires_at, now) for m in meetings)
    accepted = [m for m in meetings if m.status == "accepted"]
    scheduled = [m for m in accepted if m.slot is not None]
    attendance = Counter(domain.attendance_verdict(m.requester_attended, m.recipient_attended) for m in scheduled)
    slot_count = session.execute(select(func.count()).select_from(Slot).where(Slot.event_id == event_id)).scalar_one()
    capacity = slot_count * setup.tables if setup.tables else None
    at_tables = sum(1 for m in scheduled if m.table_no is not None)
    best: dict[str, tuple[int, bool]] = {}
    for outcome in session.execute(select(Outcome).join(Meeting, Meeting.id == Outcome.meeting_id)
                                   .where(Meeting.event_id == event_id)).scalars():
        rank = domain.OUTCOMES.index(outcome.outcome)
        previous = best.get(outcome.meeting_id, (-1, False))
        best[outcome.meeting_id] = (max(previous[0], rank), previous[1] or outcome.led_to_project)
    outcomes = Counter(domain.OUTCOMES[rank] for rank, _ in best.values())
    return {
        "event_id": event_id, "title": event.title, "published": setup.published,
        "requests": len(meetings), "pending": statuses["pending"], "expired": statuses["expired"],
        "declined": statuses["declined"], "cancelled": statuses["cancelled"], "accepted": len(accepted),
        "scheduled": len(scheduled), **{verdict: attendance[verdict] for verdict in domain.ATTENDANCE},
        "participants": len(participants(session, event_id)),
        "tables": {"tables": setup.tables, "slots": slot_count, "capacity": capacity, "occupied": at_tables,
                   "occupancy": round(at_tables / capacity, 4) if capacity else None},
        "outcomes": {name: outcomes[name] for name in domain.OUTCOMES},
        "outcomes_reported": len(best),
        "led_to_project": sum(1 for _, project in best.values() if project),
        # cooperation cases as the EEN counts them: negotiation started or agreement reached
        "cooperation_cases": outcomes["negotiation"] + outcomes["agreement"], "agreements": outcomes["agreement"],
    }


ASSOCIATION_FIGURES = ("requests", "accepted", "scheduled", "held", "no_show", "disputed", "outcomes_reported",
                       "cooperation_cases", "agreements", "led_to_project")


def association_rollup(session: Session, principal: Principal, association: str | None, now: datetime) -> dict:
    """The figures of every matchmaking day (an event with a set-up) that ``association`` organizes, or of
    the whole cooperation (``association`` None): ``{association, events: [{event_id, title, starts_at,
    status, requests, accepted, scheduled, held, no_show, disputed, outcomes_reported, cooperation_cases, agreements,
    led_to_project, outcomes: {...}}], totals: {the same figures summed, outcomes}}``, events by start.
    A meeting counts once however many associations organize its event. Cooperation cases: meetings whose
    better answer is negotiation started or agreement reached (the EEN's definition). 403: an organizer
    asks for another association or the cooperation (admins see all)."""
    if not principal.is_admin and (principal.role != "organizer" or association != principal.association):
        raise Forbidden("organizers see the figures of their own association; admins those of the cooperation")
    rows = session.execute(select(JointEvent, Setup).join(Setup, Setup.event_id == JointEvent.id)
                           .order_by(JointEvent.starts_at, JointEvent.id)).all()
    events = []
    for event, setup in rows:
        if association is not None and association not in event.organizers:
            continue
        figures = _figures(session, event, setup, now)
        events.append({"event_id": event.id, "title": event.title, "starts_at": iso(event.starts_at),
                       "status": event.status, **{name: figures[name] for name in ASSOCIATION_FIGURES},
                       "outcomes": figures["outcomes"]})
    totals = {name: sum(e[name] for e in events) for name in ASSOCIATION_FIGURES}
    totals["outcomes"] = {name: sum(e["outcomes"][name] for e in events) for name in domain.OUTCOMES}
    return {"association": association, "events": events, "totals": totals}


ASSOCIATION_COLUMNS = ("event_id", "title", "starts_at", "status", *ASSOCIATION_FIGURES, *domain.OUTCOMES)
# OWASP "CSV Injection", as events-service's attendee export: an event title starting with one of these
# ("=HYPERLINK(…)") would run as a formula in a spreadsheet; a leading apostrophe keeps it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value):
    """A CSV cell a spreadsheet shows as text: a str starting like a formula gets a leading ``'``; numbers
    and None stay as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def association_rows(data: dict) -> list[list]:
    """The association roll-up as CSV rows in ``ASSOCIATION_COLUMNS`` order: one per event, then the totals."""
    rows = [[csv_text(e[c]) if c in e else e["outcomes"][c] for c in ASSOCIATION_COLUMNS] for e in data["events"]]
    totals = data["totals"]
    rows.append(["total", "", "", "", *(totals[c] for c in ASSOCIATION_FIGURES),
                 *(totals["outcomes"][c] for c in domain.OUTCOMES)])
    return rows


ROLLUP_COLUMNS = ("event_id", "title", "published", "participants", "requests", "pending", "expired", "declined",
                  "cancelled", "accepted", "scheduled", "held", "no_show", "disputed", "tables", "slots",
                  "table_capacity",
                  "tables_occupied", "occupancy", *domain.OUTCOMES, "outcomes_reported", "led_to_project",
                  "cooperation_cases", "agreements")


def rollup_row(figures: dict) -> list:
    """The roll-up as one CSV row in ``ROLLUP_COLUMNS`` order."""
    flat = {**figures, **figures["outcomes"], "tables": figures["tables"]["tables"],
            "slots": figures["tables"]["slots"], "table_capacity": figures["tables"]["capacity"],
            "tables_occupied": figures["tables"]["occupied"], "occupancy": figures["tables"]["occupancy"]}
    return ["" if flat[name] is None else csv_text(flat[name]) for name in ROLLUP_COLUMNS]
