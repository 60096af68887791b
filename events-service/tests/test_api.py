"""The events HTTP API of a real events-service process, on SQLite and PostgreSQL,
with member.* events fed in and its own events observed on the real broker."""
import csv
import io
import re
import threading
import uuid
from datetime import datetime

import pytest
import requests
from icalendar import Calendar
from openpyxl import load_workbook
from sqlalchemy import select, update
from werkzeug.http import parse_options_header

from events.models import Member
from verbund import envelope
from verbund.broker import Publisher
from verbund.database import make_engine
from verbund.testing import bearer, member_registered, wait_for

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")
IT_ORGANIZER = bearer("organizer", association="it-cluster")
AUTOMOTIVE_ORGANIZER = bearer("organizer", association="automotive-cluster")
WAIT = 30  # seconds: the machine is shared


@pytest.fixture(scope="module")
def members_feed(events_api, amqp_uri):
    """Publishes member.* events to the broker as members-service would, and waits
    until the service's read model has taken them in."""
    publisher = Publisher(amqp_uri)
    engine = make_engine(events_api.database_url)

    def version_held(member_id):
        with engine.connect() as conn:
            row = conn.execute(select(Member.version, Member.deleted_at).where(Member.id == member_id)).first()
        return row

    class Feed:
        def publish(self, event):
            publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])

        def member(self, **overrides):
            tag = uuid.uuid4().hex[:6]
            overrides.setdefault("name", f"Firma {tag} GmbH")
            overrides.setdefault("contact", {"name": f"Kontakt {tag}", "email": f"kontakt-{tag}@firma.example",
                                             "language": "de"})
            event = member_registered(**overrides)
            self.publish(event)
            profile = event["data"]["profile"]
            wait_for(lambda: version_held(profile["id"]), timeout=WAIT, message="the member in the read model")
            return profile

        def delete(self, profile):
            self.publish(envelope.new_event("member.deleted", "/verbund/members", profile["id"], {
                "id": profile["id"], "version": profile["version"] + 1,
                "deleted_at": envelope.isoformat(envelope.utcnow())}))

    yield Feed()
    publisher.close()
    engine.dispose()


def member_headers(profile):
    return bearer("member", member_id=profile["id"], subject=f"member:{profile['id']}")


def schedule(api, body, headers=IT_ORGANIZER):
    response = requests.post(f"{api.url}/events", json=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def register(api, event, profile, expected=201, **body):
    response = requests.post(f"{api.url}/events/{event['id']}/registrations", json=body,
                             headers=member_headers(profile), timeout=10)
    assert response.status_code == expected, response.text
    return response.json()


def get_event(api, event):
    return requests.get(f"{api.url}/events/{event['id']}", timeout=10).json()


def test_an_organizer_schedules_an_event_everyone_can_read_and_the_platform_hears_of_it(events_api, event_input,
                                                                                       event_tap):
    tap = event_tap("event.*")
    created = schedule(events_api, event_input())
    assert created["version"] == 1 and created["seats_free"] == 10
    [event] = tap.wait("event.scheduled", subject=created["id"], timeout=WAIT)
    assert event["data"]["event"]["organizers"] == ["it-cluster", "logistics-network"]
    response = requests.get(f"{events_api.url}/events/{created['id']}", timeout=10)  # anonymous
    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    listed = requests.get(f"{events_api.url}/events", params={"association": "logistics-network",
                                                              "topic": "Künstliche Intelligenz"}, timeout=10).json()
    assert created["id"] in [item["id"] for item in listed["items"]]
    assert requests.get(f"{events_api.url}/events", params={"sector": "space"}, timeout=10).status_code == 422


@pytest.mark.parametrize("overrides, field", [
    ({"ends_at": "2020-01-01T08:00:00"}, "ends_at"),
    ({"capacity": 0}, "capacity"),
    ({"capacity": -5}, "capacity"),
    ({"timezone": "Berlin/Mitte"}, "timezone"),
    ({"timezone": "Europe/" + "x" * 300}, "timezone"),  # found by fuzzing: "file name too long", a 500
    ({"registration_deadline": "2099-12-31T23:00:00+01:00"}, "registration_deadline"),
    # Found by fuzzing: year 1 at +02:03 is before the first moment UTC can hold (it was a 500).
    ({"starts_at": "0001-01-01T01:00:00+02:03", "ends_at": "0001-01-01T01:00:01+00:00"}, "starts_at"),
    ({"ends_at": "9999-12-31T23:00:00-05:00"}, "ends_at"),
])
def test_bad_events_get_field_errors_and_leave_no_trace(events_api, event_input, overrides, field):
    title = f"Nie geplant {uuid.uuid4().hex[:8]}"
    response = requests.post(f"{events_api.url}/events", json=event_input(title=title, **overrides),
                             headers=IT_ORGANIZER, timeout=10)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]
    listed = requests.get(f"{events_api.url}/events", params={"per_page": 500}, timeout=10).json()
    assert title not in [item["title"] for item in listed["items"]]


def test_who_may_schedule_and_change_what(events_api, event_input):
    url = f"{events_api.url}/events"
    assert requests.post(url, json=event_input(), timeout=10).status_code == 401
    member = bearer("member", member_id=str(uuid.uuid4()))
    assert requests.post(url, json=event_input(), headers=member, timeout=10).status_code == 403
    assert requests.post(url, json=event_input(), headers=AUTOMOTIVE_ORGANIZER, timeout=10).status_code == 403
    assert requests.post(url, data=b"{title:", headers=IT_ORGANIZER, timeout=10).status_code == 400
    created = schedule(events_api, event_input())
    event_url = f"{url}/{created['id']}"
    foreign = requests.patch(event_url, json={"title": "Übernommen"}, headers=AUTOMOTIVE_ORGANIZER, timeout=10)
    assert foreign.status_code == 403
    assert requests.post(f"{event_url}/cancel", headers=AUTOMOTIVE_ORGANIZER, timeout=10).status_code == 403
    assert get_event(events_api, created)["title"] == created["title"]
    stale = requests.patch(event_url, json={"capacity": 12}, headers={**IT_ORGANIZER, "If-Match": '"7"'}, timeout=10)
    assert stale.status_code == 412
    changed = requests.patch(event_url, json={"capacity": 12}, headers={**IT_ORGANIZER, "If-Match": '"1"'},
                             timeout=10)
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"'
    assert requests.patch(f"{url}/{uuid.uuid4()}", json={"capacity": 3}, headers=ADMIN, timeout=10).status_code == 404


def test_registrations_waitlist_and_promotion_over_http(events_api, event_input, members_feed, event_tap):
    tap = event_tap("registration.*")
    event = schedule(events_api, event_input(capacity=1))
    first, second = members_feed.member(), members_feed.member()
    seat = register(events_api, event, first)
    waiting = register(events_api, event, second, seats=1, attendees=["Lena Hansen"])
    assert (seat["status"], waiting["status"], waiting["waitlist_position"]) == ("confirmed", "waitlisted", 1)
    assert register(events_api, event, first, expected=409)["registration_id"] == seat["id"]
    assert register(events_api, {"id": str(uuid.uuid4())}, first, expected=404)
    stranger = {"id": str(uuid.uuid4())}
    assert "member_id" in register(events_api, event, stranger, expected=422)["fields"]
    assert "seats" in register(events_api, event, first, expected=422, seats=0)["fields"]

    own = f"{events_api.url}/events/{event['id']}/registrations/{waiting['id']}"
    assert requests.get(own, headers=member_headers(first), timeout=10).status_code == 403
    assert requests.get(own, headers=member_headers(second), timeout=10).json()["attendees"] == ["Lena Hansen"]
    response = requests.delete(f"{events_api.url}/events/{event['id']}/registrations/{seat['id']}",
                               headers=member_headers(first), timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    [promoted] = tap.wait("registration.promoted", subject=waiting["id"], timeout=WAIT)
    assert promoted["data"]["registration"]["status"] == "confirmed"
    mine = requests.get(f"{events_api.url}/members/{second['id']}/registrations", headers=member_headers(second),
                        timeout=10).json()
    assert [(item["id"], item["status"]) for item in mine["items"]] == [(waiting["id"], "confirmed")]
    listed = requests.get(f"{events_api.url}/events/{event['id']}/registrations", headers=IT_ORGANIZER,
                          timeout=10).json()
    assert [item["member_name"] for item in listed["items"]] == [first["name"], second["name"]]


def test_two_members_asking_for_the_last_seat_at_the_same_moment(events_api, event_input, members_feed):
    """Threads fire registrations at the real process at once: exactly one gets the seat."""
    event = schedule(events_api, event_input(capacity=1))
    contenders = [members_feed.member() for _ in range(8)]
    start = threading.Barrier(len(contenders))
    answers = {}

    def ask(profile):
        start.wait(timeout=30)
        response = requests.post(f"{events_api.url}/events/{event['id']}/registrations", json={},
                                 headers=member_headers(profile), timeout=60)
        answers[profile["id"]] = (response.status_code, response.json().get("status"))

    threads = [threading.Thread(target=ask, args=(profile,)) for profile in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert sorted(answers.values()) == [(201, "confirmed")] + [(201, "waitlisted")] * 7
    shown = get_event(events_api, event)
    assert (shown["seats_confirmed"], shown["waitlisted"]) == (1, 7)


def parse(response) -> Calendar:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/calendar")
    return Calendar.from_ical(response.content)


def test_the_event_calendar_file_follows_the_event_without_a_token(events_api, event_input):
    event = schedule(events_api, event_input())
    url = f"{events_api.url}/events/{event['id']}/calendar.ics"
    calendar = parse(requests.get(url, timeout=10))
    [vevent] = calendar.walk("VEVENT")
    [vtimezone] = calendar.walk("VTIMEZONE")
    assert str(vtimezone["TZID"]) == "Europe/Berlin" and str(calendar["METHOD"]) == "PUBLISH"
    start = vevent.decoded("DTSTART")
    assert str(start.tzinfo) == "Europe/Berlin" and (start.hour, start.minute) == (9, 0)
    assert start.isoformat() == event["starts_local"]
    assert str(vevent["UID"]) == f"{event['id']}@events.verbund" and vevent["SEQUENCE"] == 1
    assert str(vevent["STATUS"]) == "CONFIRMED" and "Hamburg" in str(vevent["LOCATION"])

    day = event["starts_local"][:10]
    requests.patch(f"{events_api.url}/events/{event['id']}", json={"ends_at": f"{day}T18:30:00"},
                   headers=IT_ORGANIZER, timeout=10).raise_for_status()
    [changed] = parse(requests.get(url, timeout=10)).walk("VEVENT")
    assert changed["UID"] == vevent["UID"] and changed["SEQUENCE"] == 2
    assert changed.decoded("DTEND").hour == 18

    requests.post(f"{events_api.url}/events/{event['id']}/cancel", json={"reason": "Sturmwarnung"},
                  headers=IT_ORGANIZER, timeout=10).raise_for_status()
    cancelled = parse(requests.get(url, timeout=10))
    [gone] = cancelled.walk("VEVENT")
    assert str(cancelled["METHOD"]) == "CANCEL" and str(gone["STATUS"]) == "CANCELLED" and gone["SEQUENCE"] == 3
    assert gone["UID"] == vevent["UID"]


def test_the_feed_filters_upcoming_events_and_carries_no_personal_data(events_api, event_input, members_feed):
    automotive = schedule(events_api, event_input(title="Gemeinschaftsstand IAA", kind="fair",
                                                  organizers=["automotive-cluster"], target_sectors=["automotive"],
                                                  topics=["e-mobility"]), headers=AUTOMOTIVE_ORGANIZER)
    workshop = schedule(events_api, event_input(timezone="Europe/London"))
    profile = members_feed.member()
    register(events_api, workshop, profile)

    def uids(**params):
        calendar = parse(requests.get(f"{events_api.url}/calendar.ics", params=params, timeout=10))
        return calendar, {str(vevent["UID"]).split("@")[0] for vevent in calendar.walk("VEVENT")}

    calendar, everything = uids()
    assert {automotive["id"], workshop["id"]} <= everything
    assert {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")} >= {"Europe/Berlin", "Europe/London"}
    assert profile["name"].encode() not in calendar.to_ical()
    assert profile["contact"]["email"].encode() not in calendar.to_ical()
    _, only_automotive = uids(association="automotive-cluster")
    assert automotive["id"] in only_automotive and workshop["id"] not in only_automotive
    _, by_topic = uids(topic="ai")
    assert workshop["id"] in by_topic and automotive["id"] not in by_topic
    _, by_sector = uids(sector="automotive")
    assert automotive["id"] in by_sector and workshop["id"] not in by_sector
    assert requests.get(f"{events_api.url}/calendar.ics", params={"topic": "astrology"}, timeout=10).status_code == 422


def test_organizers_export_the_attendee_list_as_csv_and_excel(events_api, event_input, members_feed):
    event = schedule(events_api, event_input(capacity=2))
    confirmed = members_feed.member(contact={"name": "Erika Muster", "email": "erika@example.com", "language": "de"})
    sneaky = members_feed.member(name="=HYPERLINK(\"http://evil.example\")")
    register(events_api, event, confirmed, seats=2, attendees=["Erika Muster", "Max Muster"])
    register(events_api, event, sneaky)

    url = f"{events_api.url}/events/{event['id']}/attendees"
    assert requests.get(f"{url}.csv", timeout=10).status_code == 401
    assert requests.get(f"{url}.csv", headers=AUTOMOTIVE_ORGANIZER, timeout=10).status_code == 403
    assert requests.get(f"{url}.csv", headers=member_headers(confirmed), timeout=10).status_code == 403

    response = requests.get(f"{url}.csv", headers=IT_ORGANIZER, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))  # Excel's BOM by default
    assert [(row["status"], row["organisation"], row["seats"]) for row in rows] == [
        ("confirmed", confirmed["name"], "2"), ("waitlisted", "'" + sneaky["name"], "1")]
    assert rows[0]["contact_email"] == "erika@example.com" and rows[0]["attendees"] == "Erika Muster; Max Muster"
    assert rows[1]["waitlist_position"] == "1"

    response = requests.get(f"{url}.xlsx", headers=ADMIN, timeout=10)
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content))["Attendees"]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][:3] == ["Status", "Waitlist position", "Organisation"]
    assert values[1][:3] == ["confirmed", None, confirmed["name"]]
    assert values[2][2] == sneaky["name"]  # the name as typed, stored as text, not a formula
    assert isinstance(values[1][9], datetime) and values[1][9].tzinfo is None  # an Excel date, local time
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_exports_survive_control_characters_and_formulas_already_stored_in_the_read_model(events_api, event_input,
                                                                                         members_feed):
    event = schedule(events_api, event_input(capacity=5))
    tabbed, formula = members_feed.member(), members_feed.member()
    register(events_api, event, tabbed)
    register(events_api, event, formula)
    # These came in before input was cleaned: straight into the read model, past every validation.
    engine = make_engine(events_api.database_url)
    with engine.begin() as conn:
        conn.execute(update(Member).where(Member.id == tabbed["id"]).values(
            contact_name="Anna\x0bBerg", name="Gießerei\x01\x1fNord\x85GmbH"))
        conn.execute(update(Member).where(Member.id == formula["id"]).values(
            name='=HYPERLINK("http://evil.example","Klick")', contact_name="@SUM(A1:A9)"))
    engine.dispose()
    url = f"{events_api.url}/events/{event['id']}/attendees"

    response = requests.get(f"{url}.xlsx", headers=IT_ORGANIZER, timeout=10)
    assert response.status_code == 200, response.text
    sheet = load_workbook(io.BytesIO(response.content))["Attendees"]
    cells = {row[2].value: row for row in sheet.iter_rows(min_row=2)}
    assert cells["Gießerei Nord GmbH"][4].value == "Anna Berg"
    hyperlink = cells['=HYPERLINK("http://evil.example","Klick")']
    assert hyperlink[2].data_type == "s" and hyperlink[4].value == "@SUM(A1:A9)" and hyperlink[4].data_type == "s"
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)

    response = requests.get(f"{url}.csv", params={"dialect": "rfc4180"}, headers=IT_ORGANIZER, timeout=10)
    assert response.status_code == 200, response.text
    rows = {row["member_id"]: row for row in csv.DictReader(io.StringIO(response.content.decode("utf-8")))}
    assert (rows[tabbed["id"]]["organisation"], rows[tabbed["id"]]["contact_name"]) == ("Gießerei Nord GmbH",
                                                                                       "Anna Berg")
    assert rows[formula["id"]]["organisation"] == '\'=HYPERLINK("http://evil.example","Klick")'
    assert rows[formula["id"]]["contact_name"] == "'@SUM(A1:A9)"


def test_the_attendee_csv_opens_in_german_excel_and_in_programs(events_api, event_input, members_feed):
    event = schedule(events_api, event_input(capacity=5))
    profile = members_feed.member(name="Müller; Söhne GmbH")
    registration = register(events_api, event, profile, seats=2)
    url = f"{events_api.url}/events/{event['id']}/attendees.csv"
    german = {**IT_ORGANIZER, "Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}

    def fetch(headers, **params):
        response = requests.get(url, params=params, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.content

    for body in (fetch(german), fetch(IT_ORGANIZER, dialect="excel-de")):
        # German Excel: a BOM so it reads UTF-8, ";" as its list separator, dates it recognises.
        assert body.startswith(b"\xef\xbb\xbf")
        [row] = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
        assert row["organisation"] == "Müller; Söhne GmbH" and row["seats"] == "2"
        assert re.fullmatch(r"\d\d\.\d\d\.20\d\d \d\d:\d\d:\d\d", row["registered_at"])
        assert row["registration_id"] == registration["id"]
    for body in (fetch({**IT_ORGANIZER, "Accept-Language": "en-GB,en;q=0.8,de;q=0.5"}), fetch(IT_ORGANIZER),
                 fetch(german, dialect="excel")):
        assert body.startswith(b"\xef\xbb\xbf")
        [row] = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
        assert row["organisation"] == "Müller; Söhne GmbH"
        assert re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d", row["registered_at"])
    plain = fetch(german, dialect="rfc4180")
    assert not plain.startswith(b"\xef\xbb\xbf") and b"\r\n" in plain
    [row] = list(csv.DictReader(io.StringIO(plain.decode("utf-8"))))
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", row["registered_at"])  # ISO 8601
    wrong = requests.get(url, params={"dialect": "excel-fr"}, headers=IT_ORGANIZER, timeout=10)
    assert wrong.status_code == 422 and "dialect" in wrong.json()["fields"]


def test_the_attendee_list_speaks_the_organizers_language_when_asked_for_labels(events_api, event_input,
                                                                               members_feed):
    event = schedule(events_api, event_input(capacity=1))
    first = members_feed.member(sector="logistics")
    second = members_feed.member(sector="research", contact={"name": "Ann Lee", "email": "ann@lee.example",
                                                             "language": "en"})
    register(events_api, event, first)
    register(events_api, event, second)
    url = f"{events_api.url}/events/{event['id']}/attendees"
    german = {**IT_ORGANIZER, "Accept-Language": "de-DE,de;q=0.9"}
    body = requests.get(f"{url}.csv", params={"headers": "labels"}, headers=german, timeout=10).content
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    assert [(row["Status"], row["Organisation"], row["Plätze"]) for row in rows] == [
        ("bestätigt", first["name"], "1"), ("Warteliste", second["name"], "1")]
    assert rows[1]["Wartelistenplatz"] == "1"
    # Sector and language in words too, in the requester's language.
    assert [(row["Branche"], row["Sprache"]) for row in rows] == [("Logistik", "Deutsch"), ("Forschung", "Englisch")]
    english = requests.get(f"{url}.csv", params={"headers": "labels"}, headers=IT_ORGANIZER, timeout=10).content
    assert next(csv.reader(io.StringIO(english.decode("utf-8-sig"))))[:3] == ["Status", "Waitlist position",
                                                                              "Organisation"]
    in_english = list(csv.DictReader(io.StringIO(english.decode("utf-8-sig"))))
    assert [(row["Sector"], row["Language"]) for row in in_english] == [("Logistics", "German"),
                                                                         ("Research", "English")]
    codes = list(csv.DictReader(io.StringIO(requests.get(f"{url}.csv", headers=german, timeout=10)
                                             .content.decode("utf-8-sig")), delimiter=";"))
    assert [(row["sector"], row["language"]) for row in codes] == [("logistics", "de"), ("research", "en")]
    workbook = load_workbook(io.BytesIO(requests.get(f"{url}.xlsx", headers=german, timeout=10).content))
    assert workbook.sheetnames == ["Teilnehmende", "Veranstaltung"]
    values = [[cell.value for cell in row] for row in workbook["Teilnehmende"].iter_rows()]
    assert values[0][:4] == ["Status", "Wartelistenplatz", "Organisation", "Branche"] and values[1][0] == "bestätigt"
    assert (values[1][3], values[1][6]) == ("Logistik", "Deutsch")
    bad = requests.get(f"{url}.csv", params={"headers": "german"}, headers=german, timeout=10)
    assert bad.status_code == 422 and "headers" in bad.json()["fields"]


def test_organizers_move_a_registration_to_another_date_in_one_step(events_api, event_input, members_feed,
                                                                     event_tap):
    tap = event_tap("registration.*")
    here = schedule(events_api, event_input(capacity=1))
    there = schedule(events_api, event_input(capacity=5, starts_at=f"{here['starts_at'][:10]}T18:00:00",
                                             ends_at=f"{here['starts_at'][:10]}T20:00:00"))
    elsewhere = schedule(events_api, event_input(organizers=["automotive-cluster"], target_sectors=["automotive"]),
                         headers=AUTOMOTIVE_ORGANIZER)
    mover, waiting = members_feed.member(), members_feed.member()
    seat = register(events_api, here, mover)
    next_in_line = register(events_api, here, waiting)
    url = f"{events_api.url}/events/{here['id']}/registrations/{seat['id']}/move"
    assert requests.post(url, json={"to_event_id": there["id"]}, timeout=10).status_code == 401
    assert requests.post(url, json={"to_event_id": there["id"]}, headers=member_headers(mover),
                         timeout=10).status_code == 403
    assert requests.post(url, json={"to_event_id": elsewhere["id"]}, headers=IT_ORGANIZER,
                         timeout=10).status_code == 403
    missing = requests.post(url, json={}, headers=IT_ORGANIZER, timeout=10)
    assert missing.status_code == 422 and "to_event_id" in missing.json()["fields"]
    assert requests.post(url, json={"to_event_id": "no-such-event"}, headers=IT_ORGANIZER,
                         timeout=10).status_code == 404

    moved = requests.post(url, json={"to_event_id": there["id"]}, headers=IT_ORGANIZER, timeout=10)
    assert moved.status_code == 200, moved.text
    assert moved.json()["cancelled"]["reason"] == "moved" and moved.json()["registration"]["status"] == "confirmed"
    [cancelled] = tap.wait("registration.cancelled", subject=seat["id"], timeout=WAIT)
    assert cancelled["data"]["registration"]["reason"] == "moved"
    tap.wait("registration.promoted", subject=next_in_line["id"], timeout=WAIT)
    tap.wait("registration.confirmed", subject=moved.json()["registration"]["id"], timeout=WAIT)
    again = requests.post(url, json={"to_event_id": there["id"]}, headers=IT_ORGANIZER, timeout=10)
    assert again.status_code == 409  # cancelled here already: nothing twice
    assert (get_event(events_api, here)["seats_confirmed"], get_event(events_api, there)["seats_confirmed"]) == (1, 1)


def test_download_file_names_keep_their_umlauts(events_api, event_input):
    event = schedule(events_api, event_input(title="Gießerei trifft Logistik"))
    day = event["starts_at"][:10]
    for extension in ("csv", "xlsx"):
        response = requests.get(f"{events_api.url}/events/{event['id']}/attendees.{extension}", headers=ADMIN,
                                timeout=10)
        assert response.status_code == 200, response.text
        disposition = response.headers["Content-Disposition"]
        assert disposition == (f'attachment; filename="attendees-giesserei-trifft-logistik-{day}.{extension}"; '
                               f"filename*=UTF-8''attendees-Gie%C3%9Ferei-trifft-Logistik-{day}.{extension}")
        # What a browser saves it as: filename* wins (RFC 6266 4.3); werkzeug reads it as browsers do.
        assert parse_options_header(disposition) == (
            "attachment", {"filename": f"attendees-Gießerei-trifft-Logistik-{day}.{extension}"})
    response = requests.get(f"{events_api.url}/events/{event['id']}/calendar.ics", timeout=10)
    assert response.headers["Content-Disposition"] == f'inline; filename="event-{event["id"]}.ics"'


def test_member_deleted_through_the_broker_frees_seats_and_erases_the_member(events_api, event_input, members_feed,
                                                                             event_tap):
    tap = event_tap("registration.*")
    event = schedule(events_api, event_input(capacity=1))
    leaving, next_in_line = members_feed.member(), members_feed.member()
    seat = register(events_api, event, leaving, attendees=["Konrad Zuse"])
    waiting = register(events_api, event, next_in_line)
    members_feed.delete(leaving)
    [cancelled] = tap.wait("registration.cancelled", subject=seat["id"], timeout=WAIT)
    assert cancelled["data"]["registration"]["reason"] == "member_deleted"
    [promoted] = tap.wait("registration.promoted", subject=waiting["id"], timeout=WAIT)
    assert promoted["data"]["registration"]["status"] == "confirmed"
    rows = requests.get(f"{events_api.url}/events/{event['id']}/attendees.csv", headers=IT_ORGANIZER,
                        timeout=10).content.decode()
    assert leaving["name"] not in rows and leaving["contact"]["email"] not in rows and "Konrad Zuse" not in rows
    again = register(events_api, event, leaving, expected=422)
    assert "deleted" in again["fields"]["member_id"][0]


def test_a_list_filter_outside_the_plausible_years_is_a_field_error(events_api):
    response = requests.get(f"{events_api.url}/events", params={"starts_after": "0001-01-01T00:00:00+05:00"},
                            timeout=10)
    assert response.status_code == 422, response.text
    assert "starts_after" in response.json()["fields"]
