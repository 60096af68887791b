"""The events use cases on SQLite and PostgreSQL (migrated by Alembic), with their
events going through the outbox to the real broker. Input is loaded by the schemas
first, as the HTTP entrypoints do."""
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import pytest
from marshmallow import ValidationError
from sqlalchemy import func, select

from events import queries, services
from events.models import Event, Member, Registration
from events.schemas import EventSchema, RegistrationSchema
from verbund import envelope, outbox, personal
from verbund.auth import Principal
from verbund.errors import Conflict, Forbidden, NotFound, PreconditionFailed, Unprocessable
from verbund.testing import outbox_events

pytestmark = pytest.mark.integration

ADMIN = Principal("admin", "admin")
IT_ORGANIZER = Principal("it", "organizer", association="it-cluster")
AUTOMOTIVE_ORGANIZER = Principal("auto", "organizer", association="automotive-cluster")


def member(profile):
    return Principal(f"member:{profile['id']}", "member", member_id=profile["id"])


def count(store, model, *conditions):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*conditions)).scalar()


@contextmanager
def unit_of_work(store, now=None):
    """A unit of work on ``store``, at ``now`` when given (the store's clock otherwise)."""
    clock = store.clock
    if now is not None:
        store.clock = lambda: now
    try:
        with store.unit_of_work() as uow:
            yield uow
    finally:
        store.clock = clock


def schedule(store, data, principal=IT_ORGANIZER):
    with store.unit_of_work() as uow:
        return services.schedule(uow, principal, EventSchema().load(data))


def register(store, event, profile, seats=1, principal=None, now=None):
    """``profile`` registers itself, or ``principal`` (staff) registers it."""
    data = {"seats": seats, **({"member_id": profile["id"]} if principal else {})}
    with unit_of_work(store, now) as uow:
        return services.register(uow, principal or member(profile), event["id"], RegistrationSchema().load(data))


def test_scheduling_stores_utc_and_announces_the_event(store, event_input, event_tap):
    tap = event_tap("event.*")
    created = schedule(store, event_input())
    assert created["version"] == 1 and created["status"] == "scheduled" and created["timezone"] == "Europe/Berlin"
    assert created["topics"] == ["ai", "digital-logistics"]  # the label became the topic id
    day = envelope.utcnow() + timedelta(days=30)
    offset = 2 if day.astimezone(ZoneInfo("Europe/Berlin")).dst() else 1
    assert created["starts_at"].endswith(f"T{9 - offset:02d}:00:00Z")  # 09:00 in Berlin, stored in UTC
    assert created["starts_local"].endswith(f"T09:00:00+0{offset}:00")
    [event] = tap.wait("event.scheduled", subject=created["id"])
    assert event["source"] == "/verbund/events"
    assert event["data"]["event"] == {key: created[key] for key in event["data"]["event"]}
    assert outbox.pending_count(store.engine) == 0


@pytest.mark.parametrize("overrides, field", [
    ({"ends_at": "2020-01-01T08:00:00"}, "ends_at"),  # end before start
    ({"capacity": 0}, "capacity"),
    ({"capacity": -5}, "capacity"),
    ({"capacity": "12"}, "capacity"),
    ({"timezone": "Europe/Atlantis"}, "timezone"),
    ({"registration_deadline": "2099-01-01T00:00:00Z"}, "registration_deadline"),  # after the start
    ({"starts_at": "2020-01-01T09:00:00", "ends_at": "2020-01-01T10:00:00"}, "starts_at"),  # in the past
    ({"kind": "party"}, "kind"),
    ({"organizers": []}, "organizers"),
    ({"organizers": ["it-cluster", "it-cluster"]}, "organizers"),
    ({"topics": ["astrology"]}, "topics"),
    ({"venue": None}, "venue"),
    ({"online_url": "ftp://files.example"}, "online_url"),
    ({"starts_at": "next tuesday"}, "starts_at"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_events_are_refused_field_by_field_and_nothing_is_written(store, event_input, overrides, field):
    with pytest.raises(ValidationError) as raised:
        schedule(store, event_input(**overrides))
    assert field in raised.value.messages
    assert count(store, Event) == 0 and outbox_events(store) == []


def test_an_organizer_cannot_schedule_or_change_another_associations_event(store, event_input):
    with pytest.raises(Forbidden):
        schedule(store, event_input(organizers=["logistics-network"]))
    created = schedule(store, event_input(organizers=["logistics-network"]), principal=ADMIN)
    with pytest.raises(Forbidden):
        with store.unit_of_work() as uow:
            services.update(uow, AUTOMOTIVE_ORGANIZER, created["id"], {"title": "Gekapert"})
    with pytest.raises(Forbidden):
        with store.unit_of_work() as uow:
            services.cancel(uow, AUTOMOTIVE_ORGANIZER, created["id"], "nope")
    with store.unit_of_work() as uow:
        assert queries.get(uow, created["id"])["title"] == created["title"]
    assert [event["type"] for event in outbox_events(store)] == ["event.scheduled"]


def test_seats_are_confirmed_while_free_then_the_waitlist_fills_in_arrival_order(store, event_input, known_member,
                                                                                 event_tap):
    tap = event_tap("registration.*")
    event = schedule(store, event_input(capacity=2))
    first, second, third, fourth = (known_member() for _ in range(4))
    assert register(store, event, first)["status"] == "confirmed"
    assert register(store, event, second)["status"] == "confirmed"
    waiting = register(store, event, third)
    last = register(store, event, fourth)
    assert (waiting["status"], waiting["waitlist_position"]) == ("waitlisted", 1)
    assert (last["status"], last["waitlist_position"]) == ("waitlisted", 2)
    [announced] = tap.wait("registration.waitlisted", subject=last["id"])
    assert announced["data"]["registration"]["waitlist_position"] == 2
    assert announced["data"]["event"]["id"] == event["id"]
    assert len(tap.wait("registration.confirmed", count=2)) == 2
    with store.unit_of_work() as uow:
        shown = queries.get(uow, event["id"])
    assert (shown["seats_confirmed"], shown["seats_free"], shown["waitlisted"]) == (2, 0, 2)


def test_no_double_registration(store, desk, event_input, known_member):
    event = schedule(store, event_input())
    profile = known_member()
    first = register(store, event, profile)
    with pytest.raises(Conflict) as raised:
        register(store, event, profile)
    assert raised.value.details["registration_id"] == first["id"]
    assert count(store, Registration) == 1
    desk.cancel(event, first, member(profile))
    assert register(store, event, profile)["status"] == "confirmed"  # after cancelling, it may come back


def test_a_cancellation_promotes_the_first_on_the_waitlist(store, desk, event_input, known_member, event_tap):
    tap = event_tap("registration.*")
    event = schedule(store, event_input(capacity=1))
    holder, next_in_line, after = (known_member() for _ in range(3))
    seat = register(store, event, holder)
    waiting = register(store, event, next_in_line)
    register(store, event, after)
    cancelled = desk.cancel(event, seat, member(holder))
    assert cancelled["status"] == "cancelled" and cancelled["reason"] == "member"
    assert desk.status(waiting) == "confirmed"
    [promoted] = tap.wait("registration.promoted", subject=waiting["id"])
    assert promoted["data"]["registration"]["version"] == 2 and promoted["data"]["registration"]["status"] == \
        "confirmed"
    [gone] = tap.wait("registration.cancelled", subject=seat["id"])
    assert gone["data"]["registration"]["reason"] == "member"
    with pytest.raises(Conflict):
        desk.cancel(event, seat, member(holder))
    with pytest.raises(Forbidden):
        desk.cancel(event, waiting, member(holder))


def test_raising_the_capacity_promotes_as_many_as_fit_and_tells_everyone_registered(store, desk, event_input,
                                                                                     known_member):
    event = schedule(store, event_input(capacity=2))
    profiles = [known_member() for _ in range(5)]
    registrations = [register(store, event, profile, seats=2 if i == 2 else 1) for i, profile in enumerate(profiles)]
    with store.unit_of_work() as uow:
        updated = services.update(uow, IT_ORGANIZER, event["id"], {"capacity": 5}, expected_version=1)
    assert updated["version"] == 2 and updated["seats_confirmed"] == 5 and updated["waitlisted"] == 1
    assert [desk.status(r) for r in registrations] == ["confirmed", "confirmed", "confirmed", "confirmed",
                                                          "waitlisted"]
    [change] = outbox_events(store, "event.updated")
    assert change["data"]["changed"] == ["capacity"]
    assert change["data"]["registered_member_ids"] == [p["id"] for p in profiles]
    promoted = outbox_events(store, "registration.promoted")
    assert [e["subject"] for e in promoted] == [registrations[2]["id"], registrations[3]["id"]]
    assert promoted[0]["data"]["event"]["capacity"] == 5 and promoted[0]["data"]["event"]["version"] == 2


def test_lowering_the_capacity_below_the_confirmed_seats_is_refused(store, event_input, known_member):
    event = schedule(store, event_input(capacity=5))
    for profile in (known_member(), known_member()):
        register(store, event, profile, seats=2)
    with pytest.raises(Unprocessable) as raised:
        with store.unit_of_work() as uow:
            services.update(uow, IT_ORGANIZER, event["id"], {"capacity": 3})
    assert "4 seat(s) are already confirmed" in raised.value.message
    with store.unit_of_work() as uow:
        assert queries.get(uow, event["id"])["capacity"] == 5
    assert outbox_events(store, "event.updated") == []
    with store.unit_of_work() as uow:
        assert services.update(uow, IT_ORGANIZER, event["id"], {"capacity": 4})["version"] == 2


def test_an_update_says_what_changed_and_a_stale_version_changes_nothing(store, event_input):
    event = schedule(store, event_input())
    day = event["starts_local"][:10]
    with store.unit_of_work() as uow:
        updated = services.update(uow, IT_ORGANIZER, event["id"],
                                  {"starts_at": f"{day}T10:00:00", "title": event["title"]})
    assert updated["version"] == 2 and updated["starts_local"] == event["starts_local"].replace("T09", "T10")
    assert outbox_events(store, "event.updated")[0]["data"]["changed"] == ["starts_at"]
    with pytest.raises(PreconditionFailed):
        with store.unit_of_work() as uow:
            services.update(uow, IT_ORGANIZER, event["id"], {"capacity": 50}, expected_version=1)
    with pytest.raises(ValidationError):
        with store.unit_of_work() as uow:
            services.update(uow, IT_ORGANIZER, event["id"], {"ends_at": f"{day}T08:00:00"})
    with pytest.raises(Unprocessable):
        with store.unit_of_work() as uow:
            services.update(uow, IT_ORGANIZER, event["id"], {"organizers": ["automotive-cluster"]})
    with store.unit_of_work() as uow:
        same = services.update(uow, IT_ORGANIZER, event["id"], {"capacity": event["capacity"]})
    assert same["version"] == 2 and len(outbox_events(store, "event.updated")) == 1


def test_registration_is_refused_after_the_deadline_after_the_start_and_for_unknown_things(
        store, event_input, known_member):
    deadline = (envelope.utcnow() + timedelta(days=5)).isoformat()
    event = schedule(store, event_input(registration_deadline=deadline))
    profile = known_member()
    with pytest.raises(Conflict, match="registration closed at"):
        register(store, event, profile, now=envelope.utcnow() + timedelta(days=6))
    with pytest.raises(Conflict, match="begun"):
        register(store, event, profile, now=datetime.fromisoformat(event["starts_at"]) + timedelta(hours=1))
    with pytest.raises(NotFound):
        register(store, {"id": str(uuid.uuid4())}, profile)
    with pytest.raises(Unprocessable, match="not known"):
        register(store, event, {"id": str(uuid.uuid4())})
    with pytest.raises(ValidationError):
        register(store, event, profile, seats=0)
    with pytest.raises(Unprocessable, match="at most"):
        register(store, event, profile, seats=11)
    with pytest.raises(Forbidden):  # an organizer of another association
        register(store, event, profile, principal=AUTOMOTIVE_ORGANIZER)
    with pytest.raises(Forbidden):  # a member registering someone else
        with store.unit_of_work() as uow:
            services.register(uow, member(known_member()), event["id"],
                              RegistrationSchema().load({"member_id": profile["id"]}))
    assert count(store, Registration) == 0
    with store.unit_of_work() as uow:  # an organizer of the event registers the member on its behalf
        on_behalf = services.register(uow, IT_ORGANIZER, event["id"], RegistrationSchema().load(
            {"member_id": profile["id"], "seats": 2, "attendees": ["Erika Muster"]}))
    assert on_behalf["status"] == "confirmed" and on_behalf["attendees"] == ["Erika Muster"]


def test_cancelling_an_event_cancels_every_registration_and_says_who_was_registered(store, event_input,
                                                                                    known_member):
    event = schedule(store, event_input(capacity=1))
    confirmed, waiting = known_member(), known_member()
    registrations = [register(store, event, confirmed), register(store, event, waiting)]
    with store.unit_of_work() as uow:
        cancelled = services.cancel(uow, IT_ORGANIZER, event["id"], "Referent erkrankt")
    assert cancelled["status"] == "cancelled" and cancelled["version"] == 2
    [announced] = outbox_events(store, "event.cancelled")
    assert announced["data"]["reason"] == "Referent erkrankt"
    assert announced["data"]["registered_member_ids"] == [confirmed["id"], waiting["id"]]
    ended = outbox_events(store, "registration.cancelled")
    assert [e["subject"] for e in ended] == [r["id"] for r in registrations]
    assert {e["data"]["registration"]["reason"] for e in ended} == {"event_cancelled"}
    assert outbox_events(store, "registration.promoted") == []  # nobody moved up into a cancelled event
    with pytest.raises(Conflict, match="cancelled"):
        register(store, event, known_member())
    with pytest.raises(Conflict):
        with store.unit_of_work() as uow:
            services.update(uow, IT_ORGANIZER, event["id"], {"capacity": 20})


def test_groups_may_be_passed_twice_then_the_seats_are_held_for_them(store, desk, event_input, known_member):
    event = schedule(store, event_input(capacity=6))
    big, group, single1, single2, single3 = (known_member() for _ in range(5))
    seat = register(store, event, big, seats=4)  # 2 seats left
    waiting_group = register(store, event, group, seats=3)
    assert waiting_group["status"] == "waitlisted"
    first_pass = register(store, event, single1)
    assert first_pass["status"] == "confirmed"  # passes the group: 1 seat left
    assert register(store, event, single2)["status"] == "confirmed"  # passes it again: full
    desk.cancel(event, first_pass, member(single1))  # 1 seat free ...
    held = register(store, event, single3)
    assert held["status"] == "waitlisted" and held["waitlist_position"] == 2  # ... but held for the group
    desk.cancel(event, seat, member(big))  # 5 seats free: the group first, then the single
    assert desk.status(waiting_group) == "confirmed" and desk.status(held) == "confirmed"
    promoted = [e["subject"] for e in outbox_events(store, "registration.promoted")]
    assert promoted == [waiting_group["id"], held["id"]]


def test_the_member_read_model_ignores_stale_versions(store, known_member):
    from verbund.testing import member_profile

    profile = known_member()
    newer = {**profile, "version": 3, "name": "Neuer Name GmbH"}
    older = {**profile, "version": 2, "name": "Alter Name GmbH"}
    for data in (newer, older):
        store.handle(envelope.new_event("member.updated", "/verbund/members", profile["id"],
                                             {"profile": data, "changed": ["name"]}, version=1),
                          services.on_member_event)
    with store.unit_of_work() as uow:
        row = uow.session.get(Member, profile["id"])
        assert (row.version, row.name) == (3, "Neuer Name GmbH")
    assert member_profile()["contact"]["email"]  # the helper's profile carries contact data the export uses


def test_member_deleted_cancels_registrations_promotes_and_erases_personal_data(store, desk, event_input, known_member):
    event = schedule(store, event_input(capacity=1))
    leaving, next_in_line = known_member(), known_member()
    seat = register(store, event, leaving, seats=1)
    waiting = register(store, event, next_in_line)
    other_event = schedule(store, event_input(title="Meetup", capacity=5))
    with store.unit_of_work() as uow:
        named = services.register(uow, member(leaving), other_event["id"],
                                  RegistrationSchema().load({"seats": 2, "attendees": ["Erika Muster", "Max Muster"]}))
    deleted = envelope.new_event("member.deleted", "/verbund/members", leaving["id"],
                                 {"id": leaving["id"], "version": 2, "deleted_at": envelope.isoformat(
                                     envelope.utcnow())})
    assert store.handle(deleted, services.on_member_event) is True
    assert store.handle(deleted, services.on_member_event) is False  # redelivered: no second effect

    assert desk.status(seat) == "cancelled" and desk.status(named) == "cancelled"
    assert desk.status(waiting) == "confirmed"
    cancelled = outbox_events(store, "registration.cancelled")
    assert sorted(e["subject"] for e in cancelled) == sorted([seat["id"], named["id"]])
    assert {e["data"]["registration"]["reason"] for e in cancelled} == {"member_deleted"}
    assert [e["subject"] for e in outbox_events(store, "registration.promoted")] == [waiting["id"]]
    with store.unit_of_work() as uow:
        row = uow.session.get(Member, leaving["id"])
        assert row.deleted_at is not None and row.name is None and row.contact_email is None
        assert uow.session.get(Registration, named["id"]).attendees is None
    # A late, older update cannot bring the member back; it cannot register again.
    store.handle(envelope.new_event("member.updated", "/verbund/members", leaving["id"],
                                         {"profile": {**leaving, "version": 1}, "changed": ["name"]}, version=1),
                      services.on_member_event)
    with pytest.raises(Unprocessable, match="deleted"):
        register(store, event, leaving)
    with store.unit_of_work() as uow:
        assert uow.session.get(Member, leaving["id"]).name is None


def test_two_members_asking_for_the_last_seat_at_the_same_moment_get_one_seat(store, event_input, known_member):
    """Concurrent sessions on the same database: the event row lock (PostgreSQL) or
    BEGIN IMMEDIATE (SQLite) lets exactly one of them have the seat."""
    event = schedule(store, event_input(capacity=1))
    contenders = [known_member() for _ in range(6)]
    start = threading.Barrier(len(contenders))
    results, errors = {}, []

    def ask(profile):
        try:
            start.wait(timeout=30)
            results[profile["id"]] = register(store, event, profile)["status"]
        except Exception as exc:  # noqa: BLE001 — collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(profile,)) for profile in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(results.values()) == ["confirmed"] + ["waitlisted"] * 5
    assert count(store, Registration, Registration.status == "confirmed") == 1
    with store.unit_of_work() as uow:
        arrivals = uow.session.execute(select(Registration.arrival).order_by(Registration.arrival)).scalars().all()
    assert arrivals == [1, 2, 3, 4, 5, 6]  # every request has its own place in the queue


def test_the_feed_lists_upcoming_events_with_filters(store, event_input):
    workshop = schedule(store, event_input())
    fair = schedule(store, event_input(title="Messe", kind="fair", organizers=["automotive-cluster"],
                                       target_sectors=["automotive"], topics=["e-mobility"]), principal=ADMIN)
    cancelled = schedule(store, event_input(title="Abgesagt"))
    with store.unit_of_work() as uow:
        services.cancel(uow, ADMIN, cancelled["id"], None)

    def ids(**query):
        with store.unit_of_work() as uow:
            return {event["id"] for event in queries.feed(uow, query)}

    assert ids() == {workshop["id"], fair["id"], cancelled["id"]}
    assert ids(association="automotive-cluster") == {fair["id"]}
    assert ids(sector="logistics") == {workshop["id"], cancelled["id"]}
    assert ids(topic="e-mobility") == {fair["id"]}
    assert ids(kind="fair") == {fair["id"]}
    with unit_of_work(store, envelope.utcnow() + timedelta(days=32)) as uow:  # a month and a day later, all are over
        assert queries.feed(uow, {}) == []
    with store.unit_of_work() as uow:
        listed = queries.search(uow, {"status": "cancelled"})
    assert [event["id"] for event in listed["items"]] == [cancelled["id"]]


# --- member.* v2: the contact person encrypted with the member's key ---------------------------------

def test_the_read_model_decrypts_the_contact_person_with_the_members_key(store):
    from verbund.testing import member_event_v2, member_profile

    profile, key = member_profile(contact={"name": "Edda Brandt", "email": "e.brandt@firma.example",
                                           "language": "en"}), personal.new_key()
    asked = []
    store.handle(member_event_v2(profile, key),
                      partial(services.on_member_event, keys=lambda kid: asked.append(kid) or key))
    assert asked == [profile["id"]]
    with store.unit_of_work() as uow:
        row = uow.session.get(Member, profile["id"])
        assert (row.name, row.contact_name, row.contact_email, row.contact_language) == \
            (profile["name"], "Edda Brandt", "e.brandt@firma.example", "en")


def test_an_update_queued_behind_an_erasure_stores_no_contact_and_does_not_fail(store):
    """member.updated still queued when the member was erased: its key is gone, the update is
    applied without the contact person (no retry, no dead letter), member.deleted then erases it."""
    from verbund.testing import member_event_v2, member_profile

    profile, key = member_profile(), personal.new_key()
    keys = {profile["id"]: key}
    store.handle(member_event_v2(profile, key), partial(services.on_member_event, keys=keys.get))
    update = member_event_v2({**profile, "version": 2, "name": "Umbenannt GmbH"}, key, "member.updated", ["name"])
    del keys[profile["id"]]  # erased at members-service
    assert store.handle(update, partial(services.on_member_event, keys=keys.get)) is True
    with store.unit_of_work() as uow:
        row = uow.session.get(Member, profile["id"])
        assert (row.version, row.name, row.contact_name, row.contact_email) == (2, "Umbenannt GmbH", None, None)
    deleted = envelope.new_event("member.deleted", "/verbund/members", profile["id"],
                                 {"id": profile["id"], "version": 3, "deleted_at": "2026-12-01T10:00:00Z"})
    store.handle(deleted, partial(services.on_member_event, keys=keys.get))
    with store.unit_of_work() as uow:
        assert uow.session.get(Member, profile["id"]).name is None


def test_member_deleted_drops_the_cached_key(store):
    from verbund.testing import member_event_v2, member_profile

    profile, key = member_profile(), personal.new_key()
    fetched = []
    keys = personal.Keys(personal.KeyCache(ttl=300), lambda kid: fetched.append(kid) or key)
    store.handle(member_event_v2(profile, key), partial(services.on_member_event, keys=keys))
    assert keys(profile["id"]) == key and fetched == [profile["id"]]  # cached
    store.handle(envelope.new_event("member.deleted", "/verbund/members", profile["id"],
                                         {"id": profile["id"], "version": 2, "deleted_at": "2026-12-01T10:00:00Z"}),
                      partial(services.on_member_event, keys=keys))
    keys(profile["id"])
    assert fetched == [profile["id"], profile["id"]]  # not kept past the erasure
