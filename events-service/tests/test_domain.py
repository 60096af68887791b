"""The rules of events, registrations and the waitlist: plain functions, no I/O."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from events import domain
from events.domain import MAX_PASSES, Request, allocate
from verbund.auth import Principal
from verbund.errors import Forbidden

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def event(**overrides):
    base = {"starts_at": NOW + timedelta(days=10), "ends_at": NOW + timedelta(days=10, hours=6),
            "registration_deadline": None, "venue": {"name": "Messe Stuttgart"}, "online_url": None}
    return {**base, **overrides}


# --- time zones -----------------------------------------------------------------------------------

def test_wall_clock_times_are_read_in_the_events_zone_and_stored_in_utc():
    winter = domain.to_utc(datetime(2026, 1, 15, 9, 0), "Europe/Berlin")
    summer = domain.to_utc(datetime(2026, 7, 15, 9, 0), "Europe/Berlin")
    assert winter == datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    assert summer == datetime(2026, 7, 15, 7, 0, tzinfo=UTC)
    assert domain.to_utc(datetime(2026, 7, 15, 9, 0), "America/New_York") == datetime(2026, 7, 15, 13, 0, tzinfo=UTC)


def test_a_time_with_an_offset_keeps_its_instant():
    aware = datetime.fromisoformat("2026-07-15T09:00:00+05:30")
    assert domain.to_utc(aware, "Europe/Berlin") == datetime(2026, 7, 15, 3, 30, tzinfo=UTC)


def test_the_hour_skipped_in_spring_is_refused_and_the_doubled_hour_in_autumn_means_the_first():
    with pytest.raises(domain.InvalidTime, match="clocks go forward"):
        domain.to_utc(datetime(2026, 3, 29, 2, 30), "Europe/Berlin")
    assert domain.to_utc(datetime(2026, 10, 25, 2, 30), "Europe/Berlin") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("name", ["Mars/Olympus", "CET+99", "", "../etc/passwd"])
def test_an_unknown_time_zone_is_refused(name):
    with pytest.raises(domain.InvalidTime, match="unknown time zone"):
        domain.zone(name)


# --- event rules ----------------------------------------------------------------------------------

def test_a_sound_event_has_no_problems():
    assert domain.event_problems(event(registration_deadline=NOW + timedelta(days=9)), NOW,
                                 check_future=("starts_at", "registration_deadline")) == {}


@pytest.mark.parametrize("overrides, field", [
    ({"ends_at": NOW + timedelta(days=9)}, "ends_at"),  # end before start
    ({"ends_at": NOW + timedelta(days=10)}, "ends_at"),  # ends as it starts
    ({"ends_at": NOW + timedelta(days=50)}, "ends_at"),  # longer than a month
    ({"registration_deadline": NOW + timedelta(days=11)}, "registration_deadline"),  # after the start
    ({"venue": None, "online_url": None}, "venue"),
])
def test_event_problems_name_the_field(overrides, field):
    assert field in domain.event_problems(event(**overrides), NOW)


def test_times_in_the_past_are_refused_only_where_asked():
    past = event(starts_at=NOW - timedelta(days=1), ends_at=NOW + timedelta(hours=1),
                 registration_deadline=NOW - timedelta(days=2))
    assert domain.event_problems(past, NOW) == {}
    problems = domain.event_problems(past, NOW, check_future=("starts_at", "registration_deadline"))
    assert set(problems) == {"starts_at", "registration_deadline"}


def test_an_event_is_completed_once_its_end_has_passed():
    assert domain.effective_status("scheduled", NOW, NOW) == "completed"
    assert domain.effective_status("scheduled", NOW + timedelta(seconds=1), NOW) == "scheduled"
    assert domain.effective_status("cancelled", NOW - timedelta(days=1), NOW) == "cancelled"


def test_changed_fields_names_what_differs():
    before = {"title": "A", "capacity": 10, "topics": ["ai"], "venue": None}
    after = {"title": "A", "capacity": 12, "topics": ["ai", "hydrogen"], "venue": None}
    assert domain.changed_fields(before, after) == ["topics", "capacity"]


# --- who may do what ------------------------------------------------------------------------------

def test_organizers_manage_only_events_their_association_organizes():
    it = Principal("o", "organizer", association="it-cluster")
    assert domain.can_manage(it, ["automotive-cluster", "it-cluster"])
    assert not domain.can_manage(it, ["logistics-network"])
    assert domain.can_manage(Principal("a", "admin"), ["logistics-network"])
    assert not domain.can_manage(Principal("m", "member", member_id="m1"), ["it-cluster"])
    assert not domain.can_manage(Principal("i", "integrator"), ["it-cluster"])


def test_a_registration_is_seen_by_its_member_and_the_events_organizers():
    assert domain.can_see_registration(Principal("m", "member", member_id="m1"), "m1", ["it-cluster"])
    assert not domain.can_see_registration(Principal("m", "member", member_id="m2"), "m1", ["it-cluster"])
    assert domain.can_see_registration(Principal("o", "organizer", association="it-cluster"), "m1", ["it-cluster"])


def test_an_organizer_keeps_its_own_association_among_the_organizers_admins_need_not():
    it = Principal("o", "organizer", association="it-cluster")
    assert domain.keeps_own_association(it, ["it-cluster", "logistics-network"])
    assert not domain.keeps_own_association(it, ["automotive-cluster"])
    assert domain.keeps_own_association(Principal("a", "admin"), ["automotive-cluster"])


def test_a_members_registrations_are_seen_by_itself_organizers_and_admins():
    assert domain.may_see_member_registrations(Principal("m", "member", member_id="m1"), "m1")
    assert not domain.may_see_member_registrations(Principal("m", "member", member_id="m2"), "m1")
    assert domain.may_see_member_registrations(Principal("o", "organizer", association="it-cluster"), "m1")
    assert domain.may_see_member_registrations(Principal("a", "admin"), "m1")
    assert not domain.may_see_member_registrations(Principal("i", "integrator"), "m1")


def test_a_member_registers_itself_only_and_staff_name_the_member():
    member = Principal("m", "member", member_id="m1")
    assert domain.registrant(member, None) == "m1" and domain.registrant(member, "m1") == "m1"
    with pytest.raises(Forbidden):
        domain.registrant(member, "m2")
    organizer = Principal("o", "organizer", association="it-cluster")
    assert domain.registrant(organizer, "m2") == "m2"
    with pytest.raises(ValidationError) as raised:
        domain.registrant(organizer, None)
    assert "member_id" in raised.value.messages


def test_a_cancellation_is_the_members_own_or_an_organizers():
    assert domain.cancellation_reason(Principal("m", "member", member_id="m1"), "m1") == "member"
    assert domain.cancellation_reason(Principal("o", "organizer", association="it-cluster"), "m1") == "organizer"
    assert domain.cancellation_reason(Principal("a", "admin"), "m1") == "organizer"


# --- registration rules ---------------------------------------------------------------------------

def test_registration_is_open_until_the_deadline_and_never_for_cancelled_or_begun_events():
    starts, ends = NOW + timedelta(days=1), NOW + timedelta(days=1, hours=2)
    assert domain.registration_closed("scheduled", starts, ends, None, NOW) is None
    assert domain.registration_closed("scheduled", starts, ends, NOW, NOW) is None  # the deadline itself counts
    assert "closed at" in domain.registration_closed("scheduled", starts, ends, NOW - timedelta(seconds=1), NOW)
    assert "cancelled" in domain.registration_closed("cancelled", starts, ends, None, NOW)
    assert "begun" in domain.registration_closed("scheduled", NOW, ends, None, NOW)
    assert "over" in domain.registration_closed("scheduled", NOW - timedelta(hours=3), NOW, None, NOW)


def test_capacity_cannot_go_below_confirmed_seats_or_the_largest_request():
    assert domain.capacity_problem(10, 10, 3) is None
    assert "already confirmed" in domain.capacity_problem(9, 10, 3)
    assert "asks for 4 seats" in domain.capacity_problem(3, 2, 4)
    assert domain.seats_problem(3, 2) and domain.seats_problem(2, 2) is None


# --- the waitlist rule ----------------------------------------------------------------------------

def test_seats_go_in_arrival_order_while_they_last():
    result = allocate(3, [Request("a", 1), Request("b", 2), Request("c", 1)])
    assert result.confirmed == ["a", "b"] and result.passed == {}


def test_a_group_that_does_not_fit_may_be_passed_and_the_pass_is_counted():
    result = allocate(1, [Request("group", 2), Request("single", 1)])
    assert result.confirmed == ["single"]
    assert result.passed == {"group": 1}


def test_after_max_passes_the_free_seats_are_held_for_the_group():
    held = allocate(1, [Request("group", 2, passed=MAX_PASSES), Request("single", 1)])
    assert held.confirmed == [] and held.passed == {}
    # ... until enough are free: then the group goes first.
    assert allocate(2, [Request("group", 2, passed=MAX_PASSES), Request("single", 1)]).confirmed == ["group"]


def test_a_pass_counts_against_every_earlier_waiting_request():
    result = allocate(2, [Request("g3", 3), Request("g4", 4, passed=1), Request("s", 2), Request("t", 1)])
    assert result.confirmed == ["s"]
    assert result.passed == {"g3": 1, "g4": 2}


def test_nothing_moves_without_free_seats():
    assert allocate(0, [Request("a", 1)]).confirmed == []
    assert allocate(-2, [Request("a", 1)]).confirmed == []  # capacity lowered to the confirmed count


@st.composite
def scenarios(draw):
    capacity = draw(st.integers(1, 8))
    steps = draw(st.lists(st.one_of(
        st.tuples(st.just("ask"), st.integers(1, capacity)),
        st.tuples(st.just("cancel"), st.integers(0, 40)),
        st.tuples(st.just("grow"), st.integers(1, 3)),
    ), max_size=40))
    return capacity, steps


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_waitlist_never_overbooks_never_starves_and_never_leaves_the_head_waiting_with_room(scenario):
    """Replays random asks, cancellations and capacity raises through the rule, as the service does."""
    capacity, steps = scenario
    confirmed: dict[str, int] = {}
    waiting: list[Request] = []  # arrival order
    passes_seen: dict[str, int] = {}
    for number, (action, value) in enumerate(steps):
        if action == "ask":
            waiting.append(Request(f"r{number}", value))
        elif action == "cancel":
            everyone = list(confirmed) + [r.id for r in waiting]
            if everyone:
                gone = everyone[value % len(everyone)]
                confirmed.pop(gone, None)
                waiting = [r for r in waiting if r.id != gone]
        else:
            capacity += value
        free = capacity - sum(confirmed.values())
        result = allocate(free, waiting)
        for request in waiting:
            request.passed = result.passed.get(request.id, request.passed)
            passes_seen[request.id] = request.passed
        for request_id in result.confirmed:
            confirmed[request_id] = next(r.seats for r in waiting if r.id == request_id)
        waiting = [r for r in waiting if r.id not in result.confirmed]

        free = capacity - sum(confirmed.values())
        assert free >= 0, "overbooked"
        assert all(passed <= MAX_PASSES for passed in passes_seen.values()), "passed more often than the rule allows"
        if waiting:
            assert waiting[0].seats > free, "the first in line waits although its seats are free"
        for index, request in enumerate(waiting):
            if request.seats <= free:  # it fits, so something earlier must be holding the seats
                assert any(earlier.passed >= MAX_PASSES for earlier in waiting[:index])
