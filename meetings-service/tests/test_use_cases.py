"""The meetings use cases on a migrated SQLite file with a recording publisher and a fixed clock (no broker):
the read model, set-up, participation, requests with expiry and caps, accept with slot and table, decline,
cancel, reschedule, attendance and outcomes, the roll-up and the agenda. Each asserts the events it emits."""
import uuid

import pytest
from icalendar import Calendar
from marshmallow import ValidationError

from meetings import agenda, queries, services
from meetings.schemas import (
    AcceptSchema,
    OutcomeSchema,
    ParticipationSchema,
    ReasonSchema,
    RequestSchema,
    SetupSchema,
    SlotSchema,
)
from verbund import envelope
from verbund.auth import Principal
from verbund.errors import Conflict, Forbidden, Unprocessable
from verbund.testing import FixedClock, member_registered, use_case_store

from .conftest import DAY, joint_event, registration, setup_body

ORGANIZER = Principal("auto", "organizer", association="automotive-cluster")
LOGISTICS = Principal("log", "organizer", association="logistics-network")


@pytest.fixture
def clock():
    return FixedClock()  # 2026-06-01 08:00 UTC, months before the fair


@pytest.fixture
def store(tmp_path, clock):
    with use_case_store("meetings", tmp_path, clock=clock) as store:
        yield store


def published(store, type=None):
    recorder = store.relay.publisher
    return recorder.types() if type is None else recorder.of_type(type)


def member(id_):
    return Principal(f"member:{id_}", "member", member_id=id_)


def feed(store, event):
    assert store.handle(event, services.on_platform_event)


def run(store, use_case, *args):
    with store.unit_of_work() as uow:
        return use_case(uow, *args)


@pytest.fixture
def day(store):
    """A fair with its set-up and three opted-in participants (automotive, IT, logistics)."""
    event = joint_event()
    feed(store, event)
    event_id = event["data"]["event"]["id"]
    run(store, services.set_up, ORGANIZER, event_id, SetupSchema().load(setup_body()))
    ids = []
    for sector in ("automotive", "it", "logistics"):
        profile = member_registered(sector=sector)["data"]["profile"]
        feed(store, member_registered(id=profile["id"], sector=sector, name=NAMES[sector]))
        feed(store, registration(event, profile["id"]))
        run(store, services.opt_in, member(profile["id"]), event_id, ParticipationSchema().load({}))
        ids.append(profile["id"])
    return event, event_id, ids


NAMES = {"automotive": "Erzgebirge Guss GmbH", "it": "Datenwerk Süd AG", "logistics": "Elbe Logistik GmbH"}


def test_the_set_up_cuts_sessions_into_slots_around_the_break(store, day):
    _, event_id, _ = day
    with store.unit_of_work() as uow:
        setup = queries.get_setup(uow.session, event_id)
    # 09:00–12:00 with a break 10:30–11:00: 5 slots; 13:30–16:00: 5 slots.
    assert [s["starts_local"][11:16] for s in setup["slots"]] == [
        "09:00", "09:30", "10:00", "11:00", "11:30", "13:30", "14:00", "14:30", "15:00", "15:30"]
    assert {s["session"] for s in setup["slots"][5:]} == {1}


@pytest.mark.parametrize("overrides, field", [
    ({"sessions": [{"starts_at": "2026-09-15T09:00:00", "ends_at": "2026-09-15T12:00:00"},
                   {"starts_at": "2026-09-15T11:00:00", "ends_at": "2026-09-15T13:00:00"}]}, "sessions"),
    ({"sessions": [{"starts_at": "2026-09-15T09:00:00", "ends_at": "2026-09-15T09:20:00"}], "breaks": []},
     "slot_minutes"),
    ({"sessions": [{"starts_at": "2026-09-15T06:00:00", "ends_at": "2026-09-15T08:00:00"}], "breaks": []},
     "sessions"),
    ({"breaks": [{"starts_at": "2026-09-15T12:30:00", "ends_at": "2026-09-15T13:00:00"}]}, "breaks"),
])
def test_a_set_up_that_does_not_fit_gets_field_errors(store, overrides, field):
    event = joint_event()
    feed(store, event)
    with pytest.raises(ValidationError) as caught:
        run(store, services.set_up, ORGANIZER, event["data"]["event"]["id"],
            SetupSchema().load(setup_body(**overrides)))
    assert field in caught.value.messages


@pytest.mark.parametrize("overrides, field", [({"tables": 0}, "tables"), ({"slot_minutes": 10}, "slot_minutes"),
                                             ({"slot_minutes": 90}, "slot_minutes"),
                                             ({"request_expiry_minutes": 5}, "request_expiry_minutes"),
                                             ({"request_expiry_minutes": 20000}, "request_expiry_minutes"),
                                             ({"who_may_request": "by_sector"}, "sector_pairs")])
def test_the_schema_refuses_impossible_numbers(overrides, field):
    with pytest.raises(ValidationError) as caught:
        SetupSchema().load(setup_body(**overrides))
    assert field in caught.value.messages


def test_only_organizers_of_the_event_set_it_up(store):
    event = joint_event()
    feed(store, event)
    with pytest.raises(Forbidden):
        run(store, services.set_up, LOGISTICS, event["data"]["event"]["id"], SetupSchema().load(setup_body()))


def test_only_confirmed_registrants_opt_in(store, day):
    event, event_id, _ = day
    stranger = str(uuid.uuid4())
    with pytest.raises(Forbidden):
        run(store, services.opt_in, member(stranger), event_id, ParticipationSchema().load({}))
    feed(store, registration(event, stranger, status="waitlisted", type="registration.waitlisted"))
    with pytest.raises(Forbidden):
        run(store, services.opt_in, member(stranger), event_id, ParticipationSchema().load({}))


def ask(store, event_id, a, b, message="Gern über Batterielogistik sprechen"):
    return run(store, services.request, member(a), event_id, RequestSchema().load({"recipient_id": b,
                                                                                   "message": message}))


def test_request_accept_with_a_slot_books_both_and_a_table(store, day):
    _, event_id, (a, b, c) = day
    asked = ask(store, event_id, a, b)
    assert asked["status"] == "pending" and asked["message"]
    accepted = run(store, services.accept, member(b), event_id, asked["id"], AcceptSchema().load({"slot": 0}))
    assert (accepted["status"], accepted["slot"], accepted["table"]) == ("accepted", 0, 1)
    assert published(store) == ["meeting.requested", "meeting.accepted", "meeting.scheduled"]
    data = published(store, "meeting.scheduled")[0]["data"]["meeting"]
    assert data["table"] == 1 and "message" not in data  # least personal data on the wire
    # a is booked in slot 0 now: a meeting of a with c cannot take it, b–c gets table 2 there.
    second = ask(store, event_id, c, a)
    with pytest.raises(Conflict):
        run(store, services.accept, member(a), event_id, second["id"], AcceptSchema().load({"slot": 0}))


def test_bad_requests_are_refused_in_plain_words(store, day):
    event, event_id, (a, b, c) = day
    with pytest.raises(Unprocessable, match="yourself"):
        ask(store, event_id, a, a)
    outsider = str(uuid.uuid4())
    with pytest.raises(Unprocessable, match="does not take part"):
        ask(store, event_id, a, outsider)
    ask(store, event_id, a, b)
    with pytest.raises(Conflict, match="already an open request"):
        ask(store, event_id, b, a)


def test_an_expired_request_cannot_be_accepted_and_shows_as_expired(store, day, clock):
    _, event_id, (a, b, _) = day
    asked = ask(store, event_id, a, b)
    clock.advance(minutes=61)
    with pytest.raises(Conflict, match="expired"):
        run(store, services.accept, member(b), event_id, asked["id"], AcceptSchema().load({}))
    with store.unit_of_work() as uow:
        mine = queries.member_meetings(uow.session, member(a), event_id, a, uow.now())
    assert mine["items"][0]["status"] == "expired"
    assert ask(store, event_id, a, b)["status"] == "pending"  # the pair is free again


def test_open_requests_are_capped(store):
    event = joint_event()
    feed(store, event)
    event_id = event["data"]["event"]["id"]
    run(store, services.set_up, ORGANIZER, event_id, SetupSchema().load(setup_body(max_open_requests=1)))
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for id_ in ids:
        feed(store, registration(event, id_))
        run(store, services.opt_in, member(id_), event_id, ParticipationSchema().load({}))
    ask(store, event_id, ids[0], ids[1])
    with pytest.raises(Conflict, match="open requests"):
        ask(store, event_id, ids[0], ids[2])


def test_sector_rule_lets_only_the_chosen_pairs_meet(store):
    event = joint_event()
    feed(store, event)
    event_id = event["data"]["event"]["id"]
    run(store, services.set_up, ORGANIZER, event_id, SetupSchema().load(setup_body(
        who_may_request="by_sector", sector_pairs=[["automotive", "it"]])))
    ids = {}
    for sector in ("automotive", "it", "logistics"):
        profile = member_registered(sector=sector)["data"]["profile"]
        feed(store, member_registered(id=profile["id"], sector=sector))
        feed(store, registration(event, profile["id"]))
        run(store, services.opt_in, member(profile["id"]), event_id, ParticipationSchema().load({}))
        ids[sector] = profile["id"]
    ask(store, event_id, ids["it"], ids["automotive"])
    with pytest.raises(Unprocessable, match="sectors"):
        ask(store, event_id, ids["it"], ids["logistics"])


def test_decline_cancel_and_reschedule(store, day):
    _, event_id, (a, b, c) = day
    first = ask(store, event_id, a, b)
    declined = run(store, services.decline, member(b), event_id, first["id"],
                   ReasonSchema().load({"reason": "kein Bedarf"}))
    assert declined["status"] == "declined"
    second = ask(store, event_id, a, c)
    run(store, services.accept, member(c), event_id, second["id"], AcceptSchema().load({"slot": 1}))
    moved = run(store, services.reschedule, member(a), event_id, second["id"], SlotSchema().load({"slot": 2}))
    assert moved["slot"] == 2 and moved["version"] == 3
    cancelled = run(store, services.cancel, member(c), event_id, second["id"], ReasonSchema().load({}))
    assert cancelled["status"] == "cancelled"
    assert published(store)[-1] == "meeting.cancelled"
    data = published(store, "meeting.cancelled")[0]["data"]
    assert data["was_scheduled"] is True and data["was_accepted"] is True
    assert data["cause"] == "member_cancelled" and data["cancelled_by"] == c


def test_a_withdrawn_request_is_told_apart_from_a_cancelled_meeting(store, day):
    _, event_id, (a, b, c) = day
    pending = ask(store, event_id, a, b)
    run(store, services.cancel, member(a), event_id, pending["id"], ReasonSchema().load({}))
    withdrawn = published(store, "meeting.cancelled")[-1]["data"]
    assert withdrawn["was_accepted"] is False and withdrawn["was_scheduled"] is False
    assert (withdrawn["cause"], withdrawn["cancelled_by"]) == ("member_cancelled", a)
    staff_cancelled = ask(store, event_id, a, c)
    run(store, services.accept, member(c), event_id, staff_cancelled["id"], AcceptSchema().load({}))
    run(store, services.cancel, ORGANIZER, event_id, staff_cancelled["id"], ReasonSchema().load({}))
    by_staff = published(store, "meeting.cancelled")[-1]["data"]
    assert (by_staff["was_accepted"], by_staff["cause"], by_staff["cancelled_by"]) == (True, "organizers", None)
    lapsing = ask(store, event_id, b, c)
    run(store, services.opt_out, member(b), event_id)
    lapsed = published(store, "meeting.cancelled")[-1]["data"]
    assert lapsed["meeting"]["id"] == lapsing["id"]
    assert (lapsed["was_accepted"], lapsed["cause"], lapsed["cancelled_by"]) == (False, "member_left", b)


def test_a_cancelled_registration_and_a_deleted_member_cancel_open_meetings(store, day):
    event, event_id, (a, b, c) = day
    asked = ask(store, event_id, a, b)
    feed(store, registration(event, b, status="cancelled", version=2, type="registration.cancelled"))
    with store.unit_of_work() as uow:
        assert queries.member_meetings(uow.session, member(a), event_id, a, uow.now())["items"][0]["status"] \
            == "cancelled"
    ask(store, event_id, c, a)
    feed(store, envelope.new_event("member.deleted", "/verbund/members", a,
                                   {"id": a, "version": 2, "deleted_at": "2026-06-01T08:00:00Z"}))
    assert published(store, "meeting.cancelled")[-1]["data"]["meeting"]["requester_id"] == c
    assert published(store, "meeting.cancelled")[-1]["data"]["cause"] == "member_left"
    with store.unit_of_work() as uow:
        assert a not in queries.participants(uow.session, event_id)
    assert asked["id"]


def test_attendance_outcomes_and_the_roll_up(store, day, clock):
    _, event_id, (a, b, c) = day
    asked = ask(store, event_id, a, b)
    run(store, services.accept, member(b), event_id, asked["id"], AcceptSchema().load({"slot": 0}))
    with pytest.raises(Conflict, match="afterwards"):
        run(store, services.report_outcome, member(a), event_id, asked["id"],
            OutcomeSchema().load({"outcome": "agreement"}))
    clock.moment = DAY.replace(hour=18)
    run(store, services.attendance, member(a), event_id, asked["id"], {"took_place": True})
    run(store, services.report_outcome, member(a), event_id, asked["id"],
        OutcomeSchema().load({"outcome": "negotiation", "led_to_project": True}))
    run(store, services.report_outcome, member(b), event_id, asked["id"],
        OutcomeSchema().load({"outcome": "useful_later"}))
    [reported, _] = published(store, "meeting.outcome_reported")
    assert reported["data"]["outcome"] == "negotiation" and reported["data"]["member_id"] == a
    with store.unit_of_work() as uow:
        figures = queries.rollup(uow.session, ORGANIZER, event_id, uow.now())
    assert (figures["requests"], figures["accepted"], figures["scheduled"], figures["held"]) == (1, 1, 1, 1)
    assert figures["outcomes"]["negotiation"] == 1 and figures["led_to_project"] == 1
    assert figures["tables"]["capacity"] == 20 and figures["tables"]["occupied"] == 1


def test_the_agenda_ics_keeps_one_uid_and_raises_the_sequence(store, day):
    _, event_id, (a, b, _) = day
    asked = ask(store, event_id, a, b)
    run(store, services.accept, member(b), event_id, asked["id"], AcceptSchema().load({"slot": 0}))

    def entries():
        with store.unit_of_work() as uow:
            data = queries.agenda(uow.session, event_id, a, uow.now())
        return [(str(e["uid"]), int(e["sequence"]), str(e["status"]), e.decoded("dtstart"))
                for e in Calendar.from_ical(agenda.to_ics(data)).walk("VEVENT")]

    [(uid, sequence, status, start)] = entries()
    assert status == "CONFIRMED" or status == "TENTATIVE"
    run(store, services.reschedule, member(a), event_id, asked["id"], SlotSchema().load({"slot": 3}))
    [(uid2, sequence2, _, start2)] = entries()
    assert uid2 == uid and sequence2 > sequence and start2 > start
    run(store, services.cancel, member(a), event_id, asked["id"], ReasonSchema().load({}))
    [(uid3, sequence3, status3, _)] = entries()
    assert uid3 == uid and sequence3 > sequence2 and status3 == "CANCELLED"


def test_schedule_all_places_accepted_meetings_and_participants_see_them_once_published(store, day):
    event, event_id, (a, b, c) = day
    with store.unit_of_work() as uow:  # the organizers schedule this day centrally
        uow.session.get(services.Setup, event_id).scheduling_mode = "organizer"
    ids = []
    for x, y in ((a, b), (a, c), (b, c)):
        asked = ask(store, event_id, x, y)
        run(store, services.accept, member(y), event_id, asked["id"], AcceptSchema().load({}))
        ids.append(asked["id"])
    result = run(store, services.schedule_all, ORGANIZER, event_id, {"time_limit_s": 5})
    assert result["placed"] == 3 and result["unplaced"] == []
    with store.unit_of_work() as uow:
        assert queries.agenda(uow.session, event_id, a, uow.now())["items"] == []  # not published yet
        staff_view = queries.all_meetings(uow.session, ORGANIZER, event_id, uow.now())["items"]
    assert all(item["slot"] is not None and item["table"] in (1, 2) for item in staff_view)
    assert run(store, services.conflicts, ORGANIZER, event_id)["conflicts"] == []
    scheduled_before = len(published(store, "meeting.scheduled"))
    run(store, services.publish, ORGANIZER, event_id, {"state": "preliminary"})
    assert len(published(store, "meeting.scheduled")) == scheduled_before + 3
    with store.unit_of_work() as uow:
        items = queries.agenda(uow.session, event_id, a, uow.now())["items"]
    assert len(items) == 2 and {item["calendar_status"] for item in items} == {"TENTATIVE"}
    # moving one meeting into the slot where its participant already meets: 409
    slot_of = {item["id"]: item["slot"] for item in staff_view}
    with pytest.raises(Conflict):
        run(store, services.place, ORGANIZER, event_id, ids[0], {"slot": slot_of[ids[1]], "table": None,
                                                                  "locked": True})
    free = next(n for n in range(10) if n not in slot_of.values())
    moved = run(store, services.place, ORGANIZER, event_id, ids[0], {"slot": free, "table": None, "locked": True})
    assert moved["slot"] == free and moved["locked"]
    again = run(store, services.schedule_all, ORGANIZER, event_id, {"time_limit_s": 5})
    assert again["placed"] == 3
    with store.unit_of_work() as uow:
        assert uow.session.get(services.Meeting, ids[0]).slot == free  # the locked meeting stayed


def test_a_member_sees_the_partner_organisation_by_name_until_it_is_erased(store, day):
    _, event_id, (a, b, _) = day
    asked = ask(store, event_id, a, b)
    assert asked["other_name"] == NAMES["it"]
    run(store, services.accept, member(b), event_id, asked["id"], AcceptSchema().load({"slot": 0}))
    with store.unit_of_work() as uow:
        theirs = queries.member_meetings(uow.session, member(b), event_id, b, uow.now())["items"][0]
        mine = queries.agenda(uow.session, event_id, a, uow.now())
        staff = queries.all_meetings(uow.session, ORGANIZER, event_id, uow.now())["items"][0]
    assert theirs["other_name"] == NAMES["automotive"] and mine["items"][0]["other_name"] == NAMES["it"]
    assert (staff["requester_name"], staff["recipient_name"]) == (NAMES["automotive"], NAMES["it"])
    [entry] = Calendar.from_ical(agenda.to_ics(mine)).walk("VEVENT")
    assert NAMES["it"] in str(entry["summary"])
    # the calendar speaks the member's language: names the partner and the table, no ids or slot numbers
    german = Calendar.from_ical(agenda.to_ics(mine, "de"))
    [entry] = german.walk("VEVENT")
    description = str(entry["description"])
    assert str(german["x-wr-calname"]).startswith("Gespräche – ")
    assert f"Gespräch mit {NAMES['it']}" in description and "Meeting" not in description
    assert mine["items"][0]["id"] not in description and "slot" not in description
    if mine["items"][0]["table"]:
        assert f"Tisch {mine['items'][0]['table']}" in description
    [english] = Calendar.from_ical(agenda.to_ics(mine, "en")).walk("VEVENT")
    assert f"Meeting with {NAMES['it']}" in str(english["description"]) and "Tisch" not in str(english["description"])
    # a newer profile renames; an older one does not bring the old name back
    feed(store, member_registered(id=b, sector="it", name="Datenwerk Nord AG", version=3))
    feed(store, member_registered(id=b, sector="it", name="Datenwerk Alt AG", version=2))
    with store.unit_of_work() as uow:
        assert queries.member_name(uow.session, b) == "Datenwerk Nord AG"
    # the partner leaves: its name is erased with it, the meeting shows as cancelled without a name
    feed(store, envelope.new_event("member.deleted", "/verbund/members", b,
                                   {"id": b, "version": 4, "deleted_at": "2026-06-01T08:00:00Z"}))
    with store.unit_of_work() as uow:
        [view] = queries.member_meetings(uow.session, member(a), event_id, a, uow.now())["items"]
        assert uow.session.get(services.Member, b).name is None
    assert view["status"] == "cancelled" and view["other_name"] is None


def test_schedule_all_keeps_why_a_meeting_was_left_out_until_it_is_placed(store, day):
    _, event_id, (a, b, c) = day
    with store.unit_of_work() as uow:
        uow.session.get(services.Setup, event_id).scheduling_mode = "organizer"
    run(store, services.opt_in, member(b), event_id, ParticipationSchema().load({"available": [0]}))
    run(store, services.opt_in, member(c), event_id, ParticipationSchema().load({"available": [1]}))
    ids = {}
    for x, y in ((a, b), (b, c), (a, c)):
        asked = ask(store, event_id, x, y)
        run(store, services.accept, member(y), event_id, asked["id"], AcceptSchema().load({}))
        ids[(x, y)] = asked["id"]

    def reasons():
        with store.unit_of_work() as uow:
            items = queries.all_meetings(uow.session, ORGANIZER, event_id, uow.now())["items"]
        return {item["id"]: item["unplaced_reason"] for item in items}

    result = run(store, services.schedule_all, ORGANIZER, event_id, {"time_limit_s": 5})
    assert result["unplaced"] == [{"meeting_id": ids[(b, c)], "reason": "no_common_slot"}]
    assert reasons() == {ids[(a, b)]: None, ids[(b, c)]: "no_common_slot", ids[(a, c)]: None}
    # c can come in slot 0 too now, but b's only slot is taken by its meeting with a
    run(store, services.opt_in, member(c), event_id, ParticipationSchema().load({"available": [0, 1]}))
    run(store, services.schedule_all, ORGANIZER, event_id, {"time_limit_s": 5})
    [(left_out, reason)] = [(k, v) for k, v in reasons().items() if v]
    assert left_out in (ids[(a, b)], ids[(b, c)]) and reason == "capacity"
    # b has time in slot 1 as well now: everything fits, the reasons are gone
    run(store, services.opt_in, member(b), event_id, ParticipationSchema().load({"available": [0, 1, 2]}))
    assert run(store, services.schedule_all, ORGANIZER, event_id, {"time_limit_s": 5})["unplaced"] == []
    assert set(reasons().values()) == {None}


def _matchmaking_day(store, organizer, organizers, n):
    event = joint_event(organizers=organizers)
    feed(store, event)
    event_id = event["data"]["event"]["id"]
    run(store, services.set_up, organizer, event_id, SetupSchema().load(setup_body()))
    ids = []
    for _ in range(n):
        profile = member_registered()["data"]["profile"]
        feed(store, member_registered(id=profile["id"]))
        feed(store, registration(event, profile["id"]))
        run(store, services.opt_in, member(profile["id"]), event_id, ParticipationSchema().load({}))
        ids.append(profile["id"])
    return event_id, ids


def test_the_association_roll_up_adds_up_every_matchmaking_day_it_organizes(store, clock):
    auto_day, p = _matchmaking_day(store, ORGANIZER, ("automotive-cluster", "it-cluster"), 5)
    log_day, q = _matchmaking_day(store, LOGISTICS, ("logistics-network",), 3)
    feed(store, joint_event(organizers=("automotive-cluster",)))  # an event without matchmaking: not counted

    def meeting(event_id, a, b, slot=None, answer="accept"):
        asked = ask(store, event_id, a, b)
        if answer == "accept":
            run(store, services.accept, member(b), event_id, asked["id"], AcceptSchema().load({"slot": slot}))
        elif answer == "decline":
            run(store, services.decline, member(b), event_id, asked["id"], ReasonSchema().load({}))
        return asked["id"]

    m1 = meeting(auto_day, p[0], p[1], 0)
    m2 = meeting(auto_day, p[0], p[2], 1)
    m3 = meeting(auto_day, p[1], p[2], 2)
    meeting(auto_day, p[3], p[4], answer=None)  # pending
    meeting(auto_day, p[3], p[0], answer="decline")
    meeting(auto_day, p[4], p[1])  # accepted, no time yet
    m7 = meeting(log_day, q[0], q[1], 0)
    meeting(log_day, q[1], q[2], answer=None)
    clock.moment = DAY.replace(hour=18)

    def said(event_id, meeting_id, who, took_place, outcome=None, project=False):
        run(store, services.attendance, member(who), event_id, meeting_id, {"took_place": took_place})
        if outcome:
            run(store, services.report_outcome, member(who), event_id, meeting_id,
                OutcomeSchema().load({"outcome": outcome, "led_to_project": project}))

    said(auto_day, m1, p[0], True, "agreement", project=True)
    said(auto_day, m1, p[1], True, "negotiation")  # the better answer counts: one agreement
    said(auto_day, m2, p[2], False)  # a no-show
    said(auto_day, m3, p[1], True)
    said(auto_day, m3, p[2], True, "useful_later")
    said(log_day, m7, q[0], True, "negotiation")
    said(log_day, m7, q[1], False)  # the two disagree: disputed, neither held nor a no-show

    def figures(principal, association):
        with store.unit_of_work() as uow:
            return queries.association_rollup(uow.session, principal, association, uow.now())

    figures_of = ("requests", "accepted", "scheduled", "held", "no_show", "disputed", "outcomes_reported",
                  "cooperation_cases", "agreements", "led_to_project")
    auto = figures(ORGANIZER, "automotive-cluster")
    assert [e["event_id"] for e in auto["events"]] == [auto_day]
    assert [auto["totals"][k] for k in figures_of] == [6, 4, 3, 2, 1, 0, 2, 1, 1, 1]
    assert auto["totals"]["outcomes"] == {"no_further_contact": 0, "useful_later": 1, "negotiation": 0,
                                          "agreement": 1}
    logistics = figures(LOGISTICS, "logistics-network")
    assert [logistics["totals"][k] for k in figures_of] == [2, 1, 1, 0, 0, 1, 1, 1, 0, 0]
    everyone = figures(Principal("admin", "admin"), None)
    assert {e["event_id"] for e in everyone["events"]} == {auto_day, log_day}
    assert [everyone["totals"][k] for k in figures_of] == [8, 5, 4, 2, 1, 1, 3, 2, 1, 1]
    rows = queries.association_rows(everyone)
    assert rows[-1][:10] == ["total", "", "", "", 8, 5, 4, 2, 1, 1] and len(rows) == 3
    assert queries.ASSOCIATION_COLUMNS[4:10] == ("requests", "accepted", "scheduled", "held", "no_show", "disputed")
    with store.unit_of_work() as uow:
        day = queries.rollup(uow.session, LOGISTICS, log_day, uow.now())
    assert (day["held"], day["no_show"], day["disputed"]) == (0, 0, 1)
    row = dict(zip(queries.ROLLUP_COLUMNS, queries.rollup_row(day), strict=True))
    assert (row["held"], row["no_show"], row["disputed"]) == (0, 0, 1)
    for principal, association in ((ORGANIZER, "logistics-network"), (ORGANIZER, None), (member(p[0]), None)):
        with pytest.raises(Forbidden):
            figures(principal, association)


def moved(event: dict, version: int, starts_hour_utc: int) -> dict:
    """event.updated for ``event`` with a later start (``starts_hour_utc`` on the fair day)."""
    update = joint_event(event["data"]["event"]["id"], version=version, type="event.updated")
    update["data"]["event"]["starts_at"] = envelope.isoformat(DAY.replace(hour=starts_hour_utc))
    update["data"]["changed"] = ["starts_at"]
    return update


def test_a_moved_event_reports_meetings_outside_it_and_they_are_rescheduled(store, day):
    event, event_id, (a, b, c) = day
    early = ask(store, event_id, a, b)
    run(store, services.accept, member(b), event_id, early["id"], AcceptSchema().load({"slot": 1}))  # 09:30 Berlin
    late = ask(store, event_id, a, c)
    run(store, services.accept, member(c), event_id, late["id"], AcceptSchema().load({"slot": 6}))  # 14:00 Berlin
    run(store, services.publish, ORGANIZER, event_id, {"state": "final"})

    def agenda_of(member_id):
        with store.unit_of_work() as uow:
            data = queries.agenda(uow.session, event_id, member_id, uow.now())
        return data, {item["id"]: item for item in data["items"]}

    _, items = agenda_of(a)
    assert items[early["id"]]["calendar_status"] == "CONFIRMED" and not items[early["id"]]["outside_event"]
    sequence_before = items[early["id"]]["version"]
    assert run(store, services.conflicts, ORGANIZER, event_id)["conflicts"] == []

    # The organizer moves the start from 09:00 to 13:00 Berlin (11:00 UTC): the morning block lies outside.
    cancelled_before = len(published(store, "meeting.cancelled"))
    feed(store, moved(event, 2, 11))
    found = run(store, services.conflicts, ORGANIZER, event_id)
    assert found["conflicts"] == [{"code": "outside_event", "detail": early["id"]}]
    assert found["sessions_outside"] == [0]
    with store.unit_of_work() as uow:
        setup = queries.get_setup(uow.session, event_id)
        staff = {m["id"]: m for m in queries.all_meetings(uow.session, ORGANIZER, event_id, uow.now())["items"]}
    assert [block["outside_event"] for block in setup["sessions"]] == [True, False]
    assert [s["outside_event"] for s in setup["slots"]] == [True] * 5 + [False] * 5
    assert staff[early["id"]]["outside_event"] and staff[early["id"]]["status"] == "accepted"
    assert not staff[late["id"]]["outside_event"]
    assert len(published(store, "meeting.cancelled")) == cancelled_before  # nothing dropped silently
    data, items = agenda_of(a)
    assert items[early["id"]]["outside_event"] and items[early["id"]]["calendar_status"] == "TENTATIVE"
    assert items[early["id"]]["version"] > sequence_before  # calendars take up the change
    assert items[late["id"]]["calendar_status"] == "CONFIRMED" and not items[late["id"]]["outside_event"]
    statuses = {str(e["uid"]): str(e["status"]) for e in Calendar.from_ical(agenda.to_ics(data)).walk("VEVENT")}
    assert statuses[f"meeting-{early['id']}@events.verbund"] == "TENTATIVE"

    # The organizer drops the morning block: the meeting loses its old time but stays accepted, to be
    # rescheduled; the afternoon meeting keeps its time under the slot's new number.
    body = setup_body(sessions=[{"starts_at": "2026-09-15T13:30:00", "ends_at": "2026-09-15T16:00:00"}], breaks=[])
    run(store, services.set_up, ORGANIZER, event_id, SetupSchema().load(body))
    with store.unit_of_work() as uow:
        staff = {m["id"]: m for m in queries.all_meetings(uow.session, ORGANIZER, event_id, uow.now())["items"]}
    assert staff[early["id"]]["slot"] is None and staff[early["id"]]["unplaced_reason"] == "outside_event"
    assert staff[late["id"]]["slot"] == 1 and staff[late["id"]]["starts_at"] == "2026-09-15T12:00:00Z"
    data, items = agenda_of(a)
    assert items[early["id"]]["outside_event"] and items[early["id"]]["starts_at"] is None
    assert len(Calendar.from_ical(agenda.to_ics(data)).walk("VEVENT")) == 1  # no time, no calendar entry
    assert run(store, services.conflicts, ORGANIZER, event_id)["conflicts"] == []

    # Scheduling again places it inside the event and announces it.
    scheduled_before = len(published(store, "meeting.scheduled"))
    assert run(store, services.schedule_all, ORGANIZER, event_id, {"time_limit_s": 5})["placed"] == 2
    assert len(published(store, "meeting.scheduled")) == scheduled_before + 1
    _, items = agenda_of(a)
    assert items[early["id"]]["starts_at"] >= "2026-09-15T11:30:00Z"
    assert not items[early["id"]]["outside_event"] and items[early["id"]]["calendar_status"] == "CONFIRMED"


def test_a_set_up_change_may_not_take_away_a_held_slot_inside_the_event(store, day):
    _, event_id, (a, b, _) = day
    asked = ask(store, event_id, a, b)
    run(store, services.accept, member(b), event_id, asked["id"], AcceptSchema().load({"slot": 1}))
    body = setup_body(sessions=[{"starts_at": "2026-09-15T13:30:00", "ends_at": "2026-09-15T16:00:00"}], breaks=[])
    with pytest.raises(Conflict):
        run(store, services.set_up, ORGANIZER, event_id, SetupSchema().load(body))


def test_the_csv_rows_keep_an_event_title_that_looks_like_a_formula_as_text():
    """An event titled "=HYPERLINK(…)" reaches the organizers' spreadsheet as text (a leading apostrophe, OWASP
    CSV injection), as in events-service's attendee export; ids and figures stay as they are."""
    outcomes = dict.fromkeys(("no_further_contact", "useful_later", "negotiation", "agreement"), 0)
    event = {"event_id": "e-1", "title": '=HYPERLINK("https://evil.example")', "starts_at": "2027-03-15T09:00:00Z",
             "status": "scheduled", **dict.fromkeys(queries.ASSOCIATION_FIGURES, 1), "outcomes": outcomes}
    rows = queries.association_rows({"events": [event, {**event, "event_id": "e-2", "title": "-Leichtbau-"}],
                                     "totals": {**dict.fromkeys(queries.ASSOCIATION_FIGURES, 2), "outcomes": outcomes}})
    assert [row[1] for row in rows] == ['\'=HYPERLINK("https://evil.example")', "'-Leichtbau-", ""]
    assert rows[0][0] == "e-1" and rows[0][4] == 1
    assert queries.csv_text("Zuliefertag") == "Zuliefertag" and queries.csv_text(-3) == -3
