"""The rules of joint events, registrations and waitlists. No I/O, no nameko:
plain functions over plain values, so unit tests exercise them directly."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from marshmallow import ValidationError

from verbund.auth import Principal
from verbund.errors import Forbidden
from verbund.wallclock import InvalidTime, to_utc, zone  # noqa: F401 (the wall-clock rules, shared with meetings-service)

KINDS = ("fair", "workshop", "meetup", "webinar", "conference")
# "completed" is never stored: a scheduled event whose end has passed is completed.
STATUSES = ("scheduled", "cancelled", "completed")
DEFAULT_TIMEZONE = "Europe/Berlin"
MAX_DURATION = timedelta(days=31)
# Roles that may schedule and manage events (organizers only those of their association's events).
STAFF = ("admin", "organizer")
# Registration statuses that hold or wait for seats; "cancelled" is the only other one.
ACTIVE = ("confirmed", "waitlisted")
# The calendar feed lists at most this many events (calendar programs choke on huge feeds).
MAX_FEED_EVENTS = 1000

# Waitlist rule (see README): requests are served in arrival order; a later
# request may take free seats that an earlier, larger request cannot use, but
# each waiting request can be passed like that at most MAX_PASSES times. After
# that the free seats are held for it until enough are free.
MAX_PASSES = 2

# Fields of a joint event an organizer sets; event.updated names the changed ones.
EVENT_FIELDS = ("title", "description", "kind", "organizers", "target_sectors", "topics", "starts_at", "ends_at",
                "timezone", "venue", "online_url", "capacity", "registration_deadline")


def event_problems(event: dict, now: datetime, *, check_future: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Field errors of an event whose times are already in UTC; empty if it is valid.

    ``check_future`` names the times that must not lie in the past (those
    that are new or changed: an old event keeps its past deadline).
    """
    errors: dict[str, list[str]] = {}
    starts, ends, deadline = event["starts_at"], event["ends_at"], event.get("registration_deadline")
    if ends <= starts:
        errors.setdefault("ends_at", []).append("must be after starts_at")
    elif ends - starts > MAX_DURATION:
        errors.setdefault("ends_at", []).append(f"an event lasts at most {MAX_DURATION.days} days")
    if deadline is not None and deadline > starts:
        errors.setdefault("registration_deadline", []).append("must not be after starts_at")
    for name in check_future:
        if event.get(name) is not None and event[name] <= now:
            errors.setdefault(name, []).append("must lie in the future")
    if not event.get("venue") and not event.get("online_url"):
        errors.setdefault("venue", []).append("give a venue or an online_url (or both)")
    return errors


def changed_fields(before: dict, after: dict) -> list[str]:
    return [name for name in EVENT_FIELDS if before.get(name) != after.get(name)]


def effective_status(stored: str, ends_at: datetime, now: datetime) -> str:
    return "completed" if stored == "scheduled" and ends_at <= now else stored


# --- who may do what ------------------------------------------------------------------------------

def can_manage(principal: Principal, organizers: list[str]) -> bool:
    """Admins, and organizers of an association that organizes the event."""
    return principal.is_admin or (principal.role == "organizer" and principal.association in organizers)


def can_see_registration(principal: Principal, member_id: str, organizers: list[str]) -> bool:
    """The registration's member itself, and staff of the event (who may also cancel it)."""
    return principal.is_member(member_id) or can_manage(principal, organizers)


def keeps_own_association(principal: Principal, organizers: list[str]) -> bool:
    """An organizer may not remove its own association from an event's organizers (it would lose
    the event); admins may."""
    return principal.role != "organizer" or principal.association in organizers


def may_see_member_registrations(principal: Principal, member_id: str) -> bool:
    """Admins, any organizer (filtered to its association's events by the query), the member itself."""
    return principal.is_admin or principal.role == "organizer" or principal.is_member(member_id)


def registrant(principal: Principal, requested_member_id: str | None) -> str:
    """The member a registration is for: a member registers itself only (Forbidden otherwise);
    staff must name the member (a ValidationError on ``member_id``). Whether staff may register for
    this event is ``can_manage``, checked once the event is loaded."""
    if principal.role == "member":
        if requested_member_id not in (None, principal.member_id):
            raise Forbidden("a member registers itself only")
        return principal.member_id
    if not requested_member_id:
        raise ValidationError({"member_id": ["say which member to register"]})
    return requested_member_id


def cancellation_reason(principal: Principal, member_id: str) -> str:
    """``member`` when the member cancels its own registration, else ``organizer`` (staff)."""
    return "member" if principal.is_member(member_id) else "organizer"


def move_problem(principal: Principal, source_organizers: list[str], target_organizers: list[str],
                 same_event: bool) -> tuple[str, str] | None:
    """Why staff may not move a registration from one event to another, as ``("forbidden", why)`` or
    ``("invalid", why)`` (a choice of event that cannot be), or None: a registration
    moves between events of the same organizers only (the same workshop on another date: at least
    one association organizes both), and only staff who manage both events (``can_manage``) move it.
    Whether the target still takes registrations is ``registration_closed``, its seats ``seats_problem``."""
    if not (can_manage(principal, source_organizers) and can_manage(principal, target_organizers)):
        return "forbidden", "you may move registrations only between events your association organizes"
    if same_event:
        return "invalid", "choose another event: the registration is for this one already"
    if not set(source_organizers) & set(target_organizers):
        return "invalid", "a registration moves only to an event of the same organizing association"
    return None


# --- registrations -------------------------------------------------------------------------------

def registration_closed(status: str, starts_at: datetime, ends_at: datetime, deadline: datetime | None,
                        now: datetime) -> str | None:
    """Why nobody may register now, or None while registration is open."""
    if status == "cancelled":
        return "the event was cancelled"
    if now >= ends_at:
        return "the event is over"
    if now >= starts_at:
        return "the event has already begun"
    if deadline is not None and now > deadline:
        return f"registration closed at {deadline.isoformat()}"
    return None


def seats_problem(seats: int, capacity: int) -> str | None:
    if seats > capacity:
        return f"the event has {capacity} seat(s) in all; a request can ask for at most that many"
    return None


def capacity_problem(capacity: int, confirmed_seats: int, largest_request: int) -> str | None:
    """Why the capacity may not be lowered to ``capacity``, or None."""
    if capacity < confirmed_seats:
        return (f"{confirmed_seats} seat(s) are already confirmed; the capacity cannot go below that. "
                "Cancel registrations first.")
    if capacity < largest_request:
        return f"a registration asks for {largest_request} seats; the capacity cannot go below that"
    return None


@dataclass
class Request:
    """A waiting request for seats: its id, how many seats, how often it was passed."""
    id: str
    seats: int
    passed: int = 0


@dataclass
class Allocation:
    confirmed: list[str] = field(default_factory=list)  # ids now confirmed, in arrival order
    passed: dict[str, int] = field(default_factory=dict)  # new pass counts of requests that were passed


def allocate(free_seats: int, waiting: list[Request], max_passes: int = MAX_PASSES) -> Allocation:
    """Give free seats to waiting requests (in arrival order) by the waitlist rule.

    A request gets seats if it fits and every earlier request still waiting
    may yet be passed; each of those then counts one more pass. A request
    passed ``max_passes`` times blocks everyone behind it: the seats wait for it.
    """
    result = Allocation()
    passed = {request.id: request.passed for request in waiting}
    still_waiting: list[Request] = []
    for request in waiting:
        if free_seats <= 0:
            break
        blocked = any(passed[earlier.id] >= max_passes for earlier in still_waiting)
        if request.seats <= free_seats and not blocked:
            result.confirmed.append(request.id)
            free_seats -= request.seats
            for earlier in still_waiting:
                passed[earlier.id] += 1
                result.passed[earlier.id] = passed[earlier.id]
        else:
            still_waiting.append(request)
    return result


def waitlist_positions(waiting_in_arrival_order: list[str]) -> dict[str, int]:
    return {registration_id: index for index, registration_id in enumerate(waiting_in_arrival_order, start=1)}
