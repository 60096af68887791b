"""The rules of matchmaking days: slots cut from sessions, who may set up and request what,
expiry, free slots and tables, agendas' calendar states. No I/O, no nameko: plain functions over
plain values, so unit tests exercise them directly."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from verbund.auth import Principal
from verbund.wallclock import InvalidTime, to_utc, zone  # noqa: F401 (the wall-clock rules, shared with events-service)

STAFF = ("admin", "organizer")
SLOT_MINUTES = (15, 60)  # the shortest and longest slot an organizer may choose
EXPIRY_MINUTES = (15, 10 * 24 * 60)  # a request expires after 15 minutes to 10 days
REQUEST_MODES = ("approval", "automatic")
SCHEDULING_MODES = ("participants", "organizer")
WHO_MAY_REQUEST = ("all", "by_sector")
PUBLISH_STATES = ("preliminary", "final")
# What came of a meeting, on the fixed scale of the issue (b2match/EEN follow-up surveys use the same steps).
OUTCOMES = ("no_further_contact", "useful_later", "negotiation", "agreement")
DEFAULT_MAX_OPEN_REQUESTS = 20


# --- who may do what ---------------------------------------------------------------------------------

def can_organize(principal: Principal, organizers: list[str]) -> bool:
    """Admins, and organizers of an association that organizes the event."""
    return principal.is_admin or (principal.role == "organizer" and principal.association in organizers)


def may_request(who: str, sector_pairs: list[list[str]], requester_sector: str | None,
                recipient_sector: str | None) -> bool:
    """Whether the set-up's rule lets a participant of ``requester_sector`` ask one of ``recipient_sector``:
    ``all``, or ``by_sector``: only the listed (unordered) sector pairs."""
    if who == "all":
        return True
    pair = {requester_sector, recipient_sector}
    return any(set(allowed) == pair for allowed in sector_pairs)


# --- set-up ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlotTime:
    number: int
    session: int
    starts_at: datetime
    ends_at: datetime


def _overlap(a_start, a_end, b_start, b_end) -> bool:
    return a_start < b_end and b_start < a_end


def setup_problems(sessions: list[tuple[datetime, datetime]], breaks: list[tuple[datetime, datetime]],
                   slot_minutes: int, event_start: datetime, event_end: datetime) -> dict[str, list[str]]:
    """Field errors of a set-up whose times are in UTC (sessions in time order); empty when valid.
    Sessions must end after they start, lie within the event, not overlap, and hold at least one slot;
    breaks must lie within a session."""
    errors: dict[str, list[str]] = {}
    slot = timedelta(minutes=slot_minutes)

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    for index, (start, end) in enumerate(sessions):
        if end <= start:
            add("sessions", f"time block {index + 1} must end after it starts")
            continue
        if outside_event(start, end, event_start, event_end):
            add("sessions", f"time block {index + 1} lies outside the event's time")
        if end - start < slot:
            add("slot_minutes", f"a slot of {slot_minutes} minutes is longer than time block {index + 1}")
    ordered = sorted(sessions)
    for (a_start, a_end), (b_start, b_end) in zip(ordered, ordered[1:], strict=False):
        if _overlap(a_start, a_end, b_start, b_end):
            add("sessions", "time blocks overlap: "
                f"{a_start:%H:%M}–{a_end:%H:%M} UTC and {b_start:%H:%M}–{b_end:%H:%M} UTC")
    for index, (start, end) in enumerate(breaks):
        if end <= start:
            add("breaks", f"break {index + 1} must end after it starts")
        elif not any(s <= start and end <= e for s, e in sessions):
            add("breaks", f"break {index + 1} lies outside every time block")
    return errors


def outside_event(starts_at: datetime, ends_at: datetime, event_start: datetime, event_end: datetime) -> bool:
    """Whether a time block, slot or meeting (UTC) lies wholly or partly outside the event's time (UTC): it
    begins before the event or ends after it, as after the organizers moved the event."""
    return starts_at < event_start or ends_at > event_end


def cut_slots(sessions: list[tuple[datetime, datetime]], breaks: list[tuple[datetime, datetime]],
              slot_minutes: int) -> list[SlotTime]:
    """The slots of a valid set-up: each session (in time order) cut into ``slot_minutes`` pieces from its
    start; a piece that would overlap a break starts after the break instead; a remainder shorter than a
    slot is left out. Numbered from 0 in time order."""
    slot = timedelta(minutes=slot_minutes)
    slots: list[SlotTime] = []
    for session_index, (start, end) in enumerate(sorted(sessions)):
        moment = start
        while moment + slot <= end:
            clash = next((b for b in sorted(breaks) if _overlap(moment, moment + slot, *b)), None)
            if clash is not None:
                moment = clash[1]
                continue
            slots.append(SlotTime(len(slots), session_index, moment, moment + slot))
            moment += slot
    return slots


ATTENDANCE = ("held", "no_show", "disputed")


def attendance_verdict(requester: bool | None, recipient: bool | None) -> str | None:
    """What the figures count a scheduled meeting as, from each side's answer to "did it take place?"
    (None: not answered): ``held`` when both say yes, or one says yes and the other has not answered;
    ``no_show`` when both say no, or one says no and the other has not answered; ``disputed`` when one
    says yes and the other no (counted once, in neither of the other two); None when neither answered."""
    answers = {answer for answer in (requester, recipient) if answer is not None}
    if not answers:
        return None
    if len(answers) == 2:
        return "disputed"
    return "held" if True in answers else "no_show"


# --- requests ----------------------------------------------------------------------------------------

def effective_status(status: str, expires_at: datetime, now: datetime) -> str:
    """A pending request past its expiry shows as ``expired``; the stored status otherwise."""
    return "expired" if status == "pending" and expires_at <= now else status


def request_problem(requester: str, recipient: str, recipient_participates: bool) -> str | None:
    """Why ``requester`` may not ask ``recipient`` at all, or None."""
    if requester == recipient:
        return "you cannot request a meeting with yourself"
    if not recipient_participates:
        return "this member does not take part in meetings at this event"
    return None


@dataclass
class Calendar:
    """Who is booked when: slot -> booked member ids; slot -> tables in use; per member, meetings per session."""
    available: dict[str, set[int] | None]  # member -> slots, None: all
    booked: dict[int, set[str]]
    tables_used: dict[int, set[int]]
    session_of: dict[int, int]
    per_session: dict[tuple[str, int], int]


def mutually_free(a: str, b: str, slots: list[int], calendar: Calendar, max_per_session: int) -> list[int]:
    """The slots (in order) in which both ``a`` and ``b`` are available, not yet booked, and below the
    set-up's most meetings per session."""
    free = []
    for slot in slots:
        if any(calendar.available.get(m) is not None and slot not in calendar.available[m] for m in (a, b)):
            continue
        if calendar.booked.get(slot, set()) & {a, b}:
            continue
        session = calendar.session_of[slot]
        if any(calendar.per_session.get((m, session), 0) >= max_per_session for m in (a, b)):
            continue
        free.append(slot)
    return free


def free_table(slot: int, tables: int | None, calendar: Calendar) -> int | None:
    """The lowest-numbered table (from 1) free in ``slot``; None in meeting-point mode or when all are taken."""
    if tables is None:
        return None
    used = calendar.tables_used.get(slot, set())
    return next((table for table in range(1, tables + 1) if table not in used), None)


# --- agendas -----------------------------------------------------------------------------------------

def calendar_status(meeting_status: str, has_slot: bool, published: str, outside: bool = False) -> str:
    """The iCalendar STATUS of a meeting in an agenda (RFC 5545 3.8.1.11): CANCELLED once cancelled or
    declined after acceptance, TENTATIVE on a preliminary schedule and while its time lies ``outside`` the
    event (the event moved; it is to be rescheduled), CONFIRMED on the final one."""
    if meeting_status != "accepted" or not has_slot:
        return "CANCELLED"
    return "CONFIRMED" if published == "final" and not outside else "TENTATIVE"
