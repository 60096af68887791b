"""The rules of matchmaking days without I/O: slots, set-up problems, free slots and tables, sector rules."""
from datetime import UTC, datetime

import pytest

from meetings import domain


def at(hour, minute=0):
    return datetime(2026, 9, 15, hour, minute, tzinfo=UTC)


def test_slots_are_cut_from_each_session_and_start_again_after_a_break():
    slots = domain.cut_slots([(at(9), at(10, 50))], [(at(9, 40), at(10))], 20)
    assert [(s.starts_at.strftime("%H:%M"), s.ends_at.strftime("%H:%M")) for s in slots] == [
        ("09:00", "09:20"), ("09:20", "09:40"), ("10:00", "10:20"), ("10:20", "10:40")]  # 10:40–10:50 too short


def test_set_up_problems_name_their_fields():
    problems = domain.setup_problems([(at(9), at(12)), (at(11), at(13))], [(at(14), at(15))], 30, at(8), at(16))
    assert "overlap" in problems["sessions"][0] and "breaks" in problems
    assert "slot_minutes" in domain.setup_problems([(at(9), at(9, 20))], [], 30, at(8), at(16))
    assert "outside" in domain.setup_problems([(at(6), at(7))], [], 30, at(8), at(16))["sessions"][0]
    assert domain.setup_problems([(at(9), at(12))], [(at(10), at(10, 30))], 30, at(8), at(16)) == {}


def test_the_english_set_up_problems_say_time_block_as_the_portal_does():
    said = [text for problems in (
        domain.setup_problems([(at(9), at(12)), (at(11), at(13))], [(at(14), at(15))], 30, at(8), at(16)),
        domain.setup_problems([(at(9), at(9, 20))], [], 30, at(8), at(16)),
        domain.setup_problems([(at(6), at(7)), (at(10), at(9))], [], 30, at(8), at(16)))
        for texts in problems.values() for text in texts]
    assert len(said) == 5 and all("time block" in text and "session" not in text for text in said), said


def test_mutually_free_slots_respect_availability_bookings_and_the_session_limit():
    calendar = domain.Calendar(available={"a": {0, 1, 2, 3}, "b": None}, booked={0: {"b"}}, tables_used={},
                               session_of={0: 0, 1: 0, 2: 0, 3: 1, 4: 1}, per_session={("a", 0): 1})
    assert domain.mutually_free("a", "b", [0, 1, 2, 3, 4], calendar, max_per_session=2) == [1, 2, 3]
    assert domain.mutually_free("a", "b", [0, 1, 2, 3, 4], calendar, max_per_session=1) == [3]


def test_the_lowest_free_table_or_none():
    calendar = domain.Calendar({}, {}, {0: {1, 2}}, {0: 0}, {})
    assert domain.free_table(0, 3, calendar) == 3
    assert domain.free_table(0, 2, calendar) is None
    assert domain.free_table(0, None, calendar) is None  # meeting-point mode


def test_sector_rules_and_expiry():
    assert domain.may_request("all", [], "it", "it")
    assert domain.may_request("by_sector", [["automotive", "it"]], "it", "automotive")
    assert not domain.may_request("by_sector", [["automotive", "it"]], "it", "logistics")
    assert domain.effective_status("pending", at(9), at(9)) == "expired"
    assert domain.effective_status("accepted", at(9), at(10)) == "accepted"


def test_calendar_states_follow_publication_and_cancellation():
    assert domain.calendar_status("accepted", True, "preliminary") == "TENTATIVE"
    assert domain.calendar_status("accepted", True, "final") == "CONFIRMED"
    assert domain.calendar_status("cancelled", True, "final") == "CANCELLED"


@pytest.mark.parametrize(("requester", "recipient", "verdict"), [
    (True, True, "held"), (True, None, "held"), (None, True, "held"),
    (False, False, "no_show"), (False, None, "no_show"), (None, False, "no_show"),
    (True, False, "disputed"), (False, True, "disputed"),
    (None, None, None),
])
def test_a_meeting_counts_once_held_no_show_or_disputed_when_the_sides_disagree(requester, recipient, verdict):
    assert domain.attendance_verdict(requester, recipient) == verdict


def test_a_time_outside_the_moved_event_is_to_be_rescheduled_not_confirmed():
    event = (at(11), at(15))  # the event moved from 07:00 to 11:00 UTC
    assert domain.outside_event(at(7, 30), at(8), *event)
    assert domain.outside_event(at(14, 30), at(15, 30), *event)  # ends after the event
    assert not domain.outside_event(at(11), at(11, 30), *event)
    assert domain.calendar_status("accepted", True, "final", outside=True) == "TENTATIVE"
    assert domain.calendar_status("accepted", True, "final") == "CONFIRMED"
    assert domain.calendar_status("cancelled", True, "final", outside=True) == "CANCELLED"
