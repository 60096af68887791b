"""The meetings HTTP API of a real meetings-service process, on SQLite and PostgreSQL, with event.*,
registration.* and member.* fed in through the real broker and its own meeting.* events observed there;
and concurrent accepts that must never double-book a participant or a table."""
import copy
import threading
import uuid
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from meetings.models import Booking, JointEvent, Meeting, Participant, Registrant
from verbund import envelope
from verbund.broker import Publisher
from verbund.database import make_engine
from verbund.testing import bearer, member_registered, wait_for

from .conftest import joint_event, registration, setup_body

pytestmark = pytest.mark.integration

ORGANIZER = bearer("organizer", association="automotive-cluster")
WAIT = 30  # seconds: the machine is shared


def member_headers(member_id):
    return bearer("member", member_id=member_id, subject=f"member:{member_id}")


@pytest.fixture(scope="module")
def platform(meetings_api, amqp_uri):
    """Publishes events as events- and members-service would and waits until the read model has them."""
    publisher = Publisher(amqp_uri)
    engine = make_engine(meetings_api.database_url)

    def count(query):
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()

    class Platform:
        url = meetings_api.url

        def publish(self, event):
            publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])

        def fair(self, **overrides):
            day = (envelope.utcnow() + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
            event = joint_event(day=day, **overrides)
            self.publish(event)
            event_id = event["data"]["event"]["id"]
            wait_for(lambda: count(select(func.count()).select_from(JointEvent).where(JointEvent.id == event_id)),
                     timeout=WAIT, message="the event in the read model")
            return event, event_id, day.date().isoformat()

        def participants(self, event, n, sector="automotive"):
            ids = []
            for _ in range(n):
                profile = member_registered(sector=sector)["data"]["profile"]
                self.publish(member_registered(id=profile["id"], sector=sector))
                self.publish(registration(event, profile["id"]))
                ids.append(profile["id"])
            event_id = event["data"]["event"]["id"]
            wait_for(lambda: count(select(func.count()).select_from(Registrant).where(
                Registrant.event_id == event_id, Registrant.member_id.in_(ids))) == n, timeout=WAIT,
                message="the registrations in the read model")
            for member_id in ids:
                response = requests.put(f"{self.url}/events/{event_id}/meetings/participation", json={},
                                        headers=member_headers(member_id), timeout=10)
                assert response.status_code == 200, response.text
            return ids

        def count(self, query):
            return count(query)

    yield Platform()
    publisher.close()
    engine.dispose()


def set_up(platform, event_id, date, **overrides):
    response = requests.put(f"{platform.url}/events/{event_id}/meetings/setup", json=setup_body(date, **overrides),
                            headers=ORGANIZER, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def ask(platform, event_id, a, b, expected=201):
    response = requests.post(f"{platform.url}/events/{event_id}/meetings", json={"recipient_id": b, "message": "Hallo"},
                             headers=member_headers(a), timeout=10)
    assert response.status_code == expected, response.text
    return response.json()


def test_a_matchmaking_day_from_set_up_to_agenda(platform, event_tap):
    tap = event_tap("meeting.*")
    event, event_id, date = platform.fair()
    setup = set_up(platform, event_id, date)
    assert len(setup["slots"]) == 10 and setup["slots"][0]["starts_local"].endswith("T09:00:00+02:00") \
        or setup["slots"][0]["starts_local"].endswith("T09:00:00+01:00")
    a, b = platform.participants(event, 2)
    asked = ask(platform, event_id, a, b)
    [requested] = tap.wait("meeting.requested", subject=asked["id"], timeout=WAIT)
    assert set(requested["data"]["meeting"]) >= {"requester_id", "recipient_id"}
    assert "Hallo" not in envelope.dumps(requested).decode()  # the message never leaves the service
    response = requests.post(f"{platform.url}/events/{event_id}/meetings/{asked['id']}/accept", json={"slot": 2},
                             headers=member_headers(b), timeout=10)
    assert response.status_code == 200, response.text
    assert (response.json()["slot"], response.json()["table"]) == (2, 1)
    tap.wait("meeting.scheduled", subject=asked["id"], timeout=WAIT)
    agenda = requests.get(f"{platform.url}/events/{event_id}/members/{a}/agenda", headers=member_headers(a),
                          timeout=10).json()
    assert [item["table"] for item in agenda["items"]] == [1]
    ics = requests.get(f"{platform.url}/events/{event_id}/members/{a}/agenda.ics", headers=member_headers(a),
                       timeout=10)
    assert ics.status_code == 200 and f"meeting-{asked['id']}" in ics.text
    assert requests.get(f"{platform.url}/events/{event_id}/members/{a}/agenda", headers=member_headers(b),
                        timeout=10).status_code == 403
    report = requests.get(f"{platform.url}/events/{event_id}/meetings/report.csv", headers=ORGANIZER, timeout=10)
    assert report.status_code == 200 and report.text.lstrip("\ufeff").startswith("event_id,")


@pytest.mark.parametrize("overrides, field", [
    ({"tables": 0}, "tables"), ({"slot_minutes": 5}, "slot_minutes"),
    ({"sessions": [{"starts_at": "T09:00:00", "ends_at": "T12:00:00"},
                   {"starts_at": "T11:00:00", "ends_at": "T13:00:00"}], "breaks": []}, "sessions"),
    ({"sessions": [{"starts_at": "T09:00:00", "ends_at": "T09:20:00"}], "breaks": []}, "slot_minutes"),
    ({"sessions": [{"starts_at": "T05:00:00", "ends_at": "T07:00:00"}], "breaks": []}, "sessions"),
])
def test_bad_set_ups_get_field_errors(platform, overrides, field):
    _, event_id, date = platform.fair()
    overrides = copy.deepcopy(overrides)  # the parameters are shared by the SQLite and PostgreSQL runs
    if "sessions" in overrides:
        overrides["sessions"] = [{k: f"{date}{v}" for k, v in s.items()} for s in overrides["sessions"]]
    response = requests.put(f"{platform.url}/events/{event_id}/meetings/setup", json=setup_body(date, **overrides),
                            headers=ORGANIZER, timeout=10)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]


def test_bad_requests_get_plain_answers(platform):
    event, event_id, date = platform.fair()
    set_up(platform, event_id, date)
    a, b = platform.participants(event, 2)
    assert "yourself" in ask(platform, event_id, a, a, expected=422)["error"]
    assert "does not take part" in ask(platform, event_id, a, str(uuid.uuid4()), expected=422)["error"]
    ask(platform, event_id, a, b)
    assert "already an open request" in ask(platform, event_id, b, a, expected=409)["error"]


def test_free_slots_are_the_times_both_have_free_with_a_table_left(platform):
    event, event_id, date = platform.fair()
    set_up(platform, event_id, date, tables=1)
    a, b, c, d = platform.participants(event, 4)
    response = requests.put(f"{platform.url}/events/{event_id}/meetings/participation",
                            json={"available": list(range(1, 10))}, headers=member_headers(b), timeout=10)
    assert response.status_code == 200, response.text  # b is busy in the first slot
    asked = ask(platform, event_id, a, b)
    other = ask(platform, event_id, c, d)
    response = requests.post(f"{platform.url}/events/{event_id}/meetings/{other['id']}/accept", json={"slot": 1},
                             headers=member_headers(d), timeout=10)
    assert response.status_code == 200, response.text  # c–d take the only table in slot 1

    def free(headers, meeting=asked):
        return requests.get(f"{platform.url}/events/{event_id}/meetings/{meeting['id']}/free-slots",
                            headers=headers, timeout=10)

    answer = free(member_headers(b))
    assert answer.status_code == 200, answer.text
    assert [s["number"] for s in answer.json()["slots"]] == list(range(2, 10))
    assert {s["free_tables"] for s in answer.json()["slots"]} == {1}
    assert answer.json()["slots"][0]["starts_at"] and answer.json()["status"] == "pending"
    assert free(ORGANIZER).json() == answer.json()  # the organizers see the same
    assert free(member_headers(c)).status_code == 403
    assert free(member_headers(a), {"id": str(uuid.uuid4())}).status_code == 404
    # an accepted meeting's own slot counts as free for a move
    response = requests.post(f"{platform.url}/events/{event_id}/meetings/{asked['id']}/accept", json={"slot": 2},
                             headers=member_headers(b), timeout=10)
    assert response.status_code == 200, response.text
    assert [s["number"] for s in free(member_headers(a)).json()["slots"]] == list(range(2, 10))
    assert [s["number"] for s in free(member_headers(c), other).json()["slots"]][:2] == [0, 1]


def race(calls):
    """Run the calls at the same moment from threads; their responses in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def accept_call(platform, event_id, meeting, member_id, slot):
    return lambda: requests.post(f"{platform.url}/events/{event_id}/meetings/{meeting['id']}/accept",
                                 json={"slot": slot}, headers=member_headers(member_id), timeout=30)


def test_concurrent_accepts_never_double_book_a_participant(platform):
    event, event_id, date = platform.fair()
    set_up(platform, event_id, date, tables=20)
    host, *guests = platform.participants(event, 6)
    asked = [ask(platform, event_id, guest, host) for guest in guests]
    responses = race([accept_call(platform, event_id, m, host, 0) for m in asked])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 4, [r.text for r in responses]
    assert all("pick another" in r.json()["error"] or "not free" in r.json()["error"]
               for r in responses if r.status_code == 409)
    assert platform.count(select(func.count()).select_from(Booking).where(
        Booking.event_id == event_id, Booking.member_id == host, Booking.slot == 0)) == 1
    assert platform.count(select(func.count()).select_from(Meeting).where(
        Meeting.event_id == event_id, Meeting.status == "accepted")) == 1  # the losers are still pending


def test_concurrent_accepts_never_double_book_a_table(platform):
    event, event_id, date = platform.fair()
    set_up(platform, event_id, date, tables=1)
    people = platform.participants(event, 10)
    pairs = list(zip(people[::2], people[1::2], strict=True))
    asked = [ask(platform, event_id, a, b) for a, b in pairs]
    responses = race([accept_call(platform, event_id, m, b, 0) for m, (_, b) in zip(asked, pairs, strict=True)])
    assert sorted(r.status_code for r in responses) == [200] + [409] * 4, [r.text for r in responses]
    assert platform.count(select(func.count()).select_from(Meeting).where(
        Meeting.event_id == event_id, Meeting.slot == 0, Meeting.status == "accepted")) == 1
    assert platform.count(select(func.count()).select_from(Participant).where(Participant.event_id == event_id)) == 10
