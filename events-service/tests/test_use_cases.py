"""The events use cases on a migrated SQLite file with a recording publisher and a fixed
clock: no broker, no PostgreSQL (``make unit``). Each asserts the events it emits as the
outbox relay publishes them after the commit."""
import json
import uuid
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest

from events import domain, queries, services
from events.models import Member, Registration
from events.schemas import EventSchema, RegistrationSchema
from verbund import envelope
from verbund.auth import Principal
from verbund.errors import Conflict, Forbidden, Unprocessable
from verbund.testing import FixedClock, member_registered, use_case_store

IT_ORGANIZER = Principal("it", "organizer", association="it-cluster")
AUTOMOTIVE_ORGANIZER = Principal("auto", "organizer", association="automotive-cluster")
START = datetime.fromisoformat("2026-06-01T08:00:00+00:00")  # the fixed clock's moment


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def store(tmp_path, clock):
    with use_case_store("events", tmp_path, clock=clock) as store:
        yield store


def published(store, type=None):
    recorder = store.relay.publisher
    return recorder.types() if type is None else recorder.of_type(type)


def schedule(store, principal=IT_ORGANIZER, **overrides):
    body = {"title": "IT trifft Logistik", "kind": "workshop", "organizers": ["it-cluster", "logistics-network"],
            "target_sectors": ["it", "logistics"], "starts_at": "2026-07-01T09:00:00",
            "ends_at": "2026-07-01T17:00:00", "venue": {"name": "Digital Hub", "city": "Hamburg"}, "capacity": 2,
            **overrides}
    with store.unit_of_work() as uow:
        return services.schedule(uow, principal, EventSchema().load(body))


def known_member(store):
    """A member in the read model, fed through the inbox as a member.registered event."""
    event = member_registered(name=f"Firma {uuid.uuid4().hex[:6]} GmbH")
    assert store.handle(event, services.on_member_event) is True
    profile = event["data"]["profile"]
    return profile, Principal(f"member:{profile['id']}", "member", member_id=profile["id"])


def register(store, event, principal, **body):
    with store.unit_of_work() as uow:
        return services.register(uow, principal, event["id"], RegistrationSchema().load(body))


def test_scheduling_emits_event_scheduled_from_events_at_the_clocks_time(store):
    event = schedule(store)
    assert (event["version"], event["status"], event["seats_free"]) == (1, "scheduled", 2)
    assert event["starts_at"] == "2026-07-01T07:00:00Z"  # 09:00 in Berlin (summer time), stored in UTC
    assert event["created_at"] == "2026-06-01T08:00:00Z"  # uow.now(), not the wall clock
    [announced] = published(store, "event.scheduled")
    assert announced["source"] == "/verbund/events" and announced["subject"] == event["id"]
    assert announced["time"].startswith("2026-06-01T08:00:00")
    assert announced["data"]["event"] == {key: event[key] for key in announced["data"]["event"]}


def test_a_refused_schedule_writes_and_emits_nothing(store):
    with pytest.raises(Forbidden):
        schedule(store, principal=AUTOMOTIVE_ORGANIZER)
    with store.unit_of_work() as uow:
        assert queries.search(uow, {})["total"] == 0
    assert published(store) == []


def test_registering_confirms_while_seats_are_free_then_waitlists_in_arrival_order(store):
    event = schedule(store, capacity=2)
    members = [known_member(store) for _ in range(4)]
    results = [register(store, event, principal) for _, principal in members]
    assert [r["status"] for r in results] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [r["waitlist_position"] for r in results[2:]] == [1, 2]
    assert published(store) == ["event.scheduled", "registration.confirmed", "registration.confirmed",
                                "registration.waitlisted", "registration.waitlisted"]
    last = published(store, "registration.waitlisted")[-1]
    assert last["subject"] == results[3]["id"] and last["data"]["registration"]["waitlist_position"] == 2
    with store.unit_of_work() as uow:
        shown = queries.get(uow, event["id"])
    assert (shown["seats_confirmed"], shown["seats_free"], shown["waitlisted"]) == (2, 0, 2)


def test_a_group_that_does_not_fit_waits_and_a_later_single_takes_the_free_seat(store):
    event = schedule(store, capacity=3)
    (_, big), (_, group), (_, single) = (known_member(store) for _ in range(3))
    register(store, event, big, seats=2)
    assert register(store, event, group, seats=2)["status"] == "waitlisted"
    assert register(store, event, single)["status"] == "confirmed"  # passes the group once
    with store.unit_of_work() as uow:
        [waiting] = queries.waiting(uow.session, event["id"])
    assert waiting.passed == 1 and domain.MAX_PASSES == 2


def test_a_cancellation_frees_the_seat_and_promotes_the_first_on_the_waitlist(store, desk, clock):
    event = schedule(store, capacity=1)
    (_, holder), (_, next_in_line) = known_member(store), known_member(store)
    seat = register(store, event, holder)
    waiting = register(store, event, next_in_line)
    clock.advance(minutes=5)
    cancelled = desk.cancel(event, seat, holder)
    assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "member")
    assert desk.status(waiting) == "confirmed"
    assert published(store)[-2:] == ["registration.cancelled", "registration.promoted"]
    [promoted] = published(store, "registration.promoted")
    assert promoted["subject"] == waiting["id"]
    assert promoted["data"]["registration"]["version"] == 2 and promoted["data"]["registration"]["status"] == \
        "confirmed"
    assert promoted["data"]["registration"]["updated_at"] == "2026-06-01T08:05:00Z"
    with pytest.raises(Conflict):
        desk.cancel(event, seat, holder)


def test_registration_closes_at_the_deadline_by_the_injected_clock(store, clock):
    event = schedule(store, registration_deadline="2026-06-10T12:00:00")
    _, principal = known_member(store)
    clock.advance(days=10)
    with pytest.raises(Conflict, match="registration closed at"):
        register(store, event, principal)
    assert "registration.confirmed" not in published(store)


def test_cancelling_an_event_cancels_every_registration_without_promotion(store):
    event = schedule(store, capacity=1)
    members = [known_member(store) for _ in range(2)]
    registrations = [register(store, event, principal) for _, principal in members]
    with store.unit_of_work() as uow:
        cancelled = services.cancel(uow, IT_ORGANIZER, event["id"], "Referent erkrankt")
    assert (cancelled["status"], cancelled["version"]) == ("cancelled", 2)
    [announced] = published(store, "event.cancelled")
    assert announced["data"]["reason"] == "Referent erkrankt"
    assert announced["data"]["registered_member_ids"] == [profile["id"] for profile, _ in members]
    ended = published(store, "registration.cancelled")
    assert [e["subject"] for e in ended] == [r["id"] for r in registrations]
    assert {e["data"]["registration"]["reason"] for e in ended} == {"event_cancelled"}
    assert published(store, "registration.promoted") == []


def test_member_deleted_cancels_promotes_erases_and_is_handled_once(store, desk, clock):
    event = schedule(store, capacity=1)
    (leaving, leaving_principal), (_, next_in_line) = known_member(store), known_member(store)
    seat = register(store, event, leaving_principal, attendees=["Erika Muster"])
    waiting = register(store, event, next_in_line)
    clock.advance(minutes=1)
    deleted = envelope.new_event("member.deleted", "/verbund/members", leaving["id"],
                                 {"id": leaving["id"], "version": 2, "deleted_at": "2026-06-01T08:01:00Z"})
    before = len(published(store))
    assert store.handle(deleted, services.on_member_event) is True
    assert store.handle(deleted, services.on_member_event) is False  # redelivered: no second effect
    assert published(store)[before:] == ["registration.cancelled", "registration.promoted"]
    [gone] = published(store, "registration.cancelled")
    assert gone["subject"] == seat["id"] and gone["data"]["registration"]["reason"] == "member_deleted"
    assert published(store, "registration.promoted")[0]["subject"] == waiting["id"]
    with store.unit_of_work() as uow:
        row = uow.session.get(Member, leaving["id"])
        assert row.deleted_at == clock() and row.name is None and row.contact_email is None
        assert uow.session.get(Registration, seat["id"]).attendees is None
    assert desk.status(waiting) == "confirmed"


def test_the_registration_lists_answer_as_the_openapi_document_says(store):
    """The committed document's response schemas fit what the queries answer (with data in them)."""
    document = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi" / "events.json").read_text())

    def answer_schema(path, method="get"):
        schema = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        return {**schema, "components": document["components"]}

    event = schedule(store, capacity=1)
    (profile, first), (_, second) = known_member(store), known_member(store)
    register(store, event, first, attendees=["Erika Muster"])
    register(store, event, second)
    with store.unit_of_work() as uow:
        listed = queries.list_registrations(uow, IT_ORGANIZER, event["id"])
        mine = queries.member_registrations(uow, first, profile["id"])
    assert [item["status"] for item in listed["items"]] == ["confirmed", "waitlisted"]
    assert mine["items"][0]["event"]["status"] == "scheduled"
    jsonschema.validate(listed, answer_schema("/events/{event_id}/registrations"))
    jsonschema.validate(mine, answer_schema("/members/{member_id}/registrations"))


# --- moving a registration to another event of the same organizers ---------------------------------

def move(store, event, registration, target, principal=IT_ORGANIZER):
    with store.unit_of_work() as uow:
        return services.move_registration(uow, principal, event["id"], registration["id"], target["id"])


def test_moving_cancels_here_promotes_here_and_registers_there_by_the_capacity_rule(store, clock):
    here = schedule(store, capacity=1)
    there = schedule(store, capacity=1, starts_at="2026-07-08T09:00:00", ends_at="2026-07-08T17:00:00")
    (_, mover), (_, waiting_here), (_, holder_there) = (known_member(store) for _ in range(3))
    seat = register(store, here, mover, attendees=["Jana Keller"])
    next_in_line = register(store, here, waiting_here)
    register(store, there, holder_there)
    before = len(published(store))
    clock.advance(minutes=5)
    moved = move(store, here, seat, there)
    assert (moved["cancelled"]["status"], moved["cancelled"]["reason"]) == ("cancelled", "moved")
    # The other date is full: the member waits there, first in line; here the waitlist moved up.
    assert (moved["registration"]["status"], moved["registration"]["waitlist_position"]) == ("waitlisted", 1)
    assert moved["registration"]["event_id"] == there["id"] and moved["registration"]["attendees"] == ["Jana Keller"]
    assert published(store)[before:] == ["registration.cancelled", "registration.promoted", "registration.waitlisted"]
    assert published(store, "registration.promoted")[-1]["subject"] == next_in_line["id"]
    with store.unit_of_work() as uow:
        assert (queries.get(uow, here["id"])["seats_confirmed"], queries.get(uow, there["id"])["waitlisted"]) == (1, 1)


def test_a_move_to_an_event_with_free_seats_is_confirmed_there(store):
    here, there = schedule(store), schedule(store, starts_at="2026-07-08T09:00:00", ends_at="2026-07-08T17:00:00")
    _, member = known_member(store)
    moved = move(store, here, register(store, here, member), there)
    assert moved["registration"]["status"] == "confirmed"
    assert published(store)[-2:] == ["registration.cancelled", "registration.confirmed"]
    # The cancellation names where it moved (for one message to the member, and the organizer's page).
    [cancelled] = published(store, "registration.cancelled")
    assert cancelled["data"]["registration"]["moved_to"] == there["id"] == moved["cancelled"]["moved_to"]
    assert "moved_to" not in published(store, "registration.confirmed")[-1]["data"]["registration"]
    with store.unit_of_work() as uow:
        listed = queries.list_registrations(uow, IT_ORGANIZER, here["id"])["items"]
    assert [item.get("moved_to_event", {}).get("title") for item in listed] == [there["title"]]


def test_moves_that_are_not_allowed_change_and_emit_nothing(store, clock):
    here = schedule(store)
    automotive_only = schedule(store, principal=AUTOMOTIVE_ORGANIZER, organizers=["automotive-cluster"],
                               target_sectors=["automotive"])
    shared = schedule(store, organizers=["it-cluster", "automotive-cluster"], starts_at="2026-07-08T09:00:00",
                      ends_at="2026-07-08T17:00:00")
    (_, member), (_, other) = known_member(store), known_member(store)
    seat = register(store, here, member)
    register(store, shared, member)  # already there
    before = published(store)
    with pytest.raises(Forbidden):  # an event the IT organizer does not manage
        move(store, here, seat, automotive_only)
    with pytest.raises(Unprocessable):  # no association organizes both (even for an admin)
        move(store, here, seat, automotive_only, principal=Principal("a", "admin"))
    with pytest.raises(Unprocessable):
        move(store, here, seat, here)
    with pytest.raises(Conflict, match="registered for the other event already"):
        move(store, here, seat, shared)
    with pytest.raises(Forbidden):  # an organizer of another association
        move(store, here, register(store, here, other), shared, principal=AUTOMOTIVE_ORGANIZER)
    assert published(store) == before + ["registration.confirmed"]
    assert domain.move_problem(IT_ORGANIZER, ["it-cluster"], ["it-cluster", "logistics-network"], False) is None
