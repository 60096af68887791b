"""verbund.calendar: the .ics files of joint events, parsed back with icalendar."""
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar

from verbund import envelope
from verbund.calendar import event_ics, feed_ics


def snapshot(**overrides) -> dict:
    """A joint-event.v1 snapshot as events carry it: a summer workshop in Stuttgart."""
    event = {
        "id": str(uuid.uuid4()), "version": 3, "title": "Batterie; Logistik, Recht",
        "description": "Gefahrgut für Lithium-Zellen\nmit Praxisteil", "kind": "workshop",
        "organizers": ["automotive-cluster", "logistics-network"], "target_sectors": ["automotive", "logistics"],
        "topics": ["battery-value-chain"], "starts_at": "2026-07-02T07:00:00Z", "ends_at": "2026-07-02T15:30:00Z",
        "timezone": "Europe/Berlin", "venue": {"name": "Haus der Wirtschaft", "address": "Willi-Bleicher-Str. 19",
                                               "city": "Stuttgart"},
        "online_url": None, "capacity": 40, "registration_deadline": None, "status": "scheduled",
        "created_at": "2026-05-01T10:00:00Z", "updated_at": "2026-05-03T11:00:00Z",
    }
    event.update(overrides)
    envelope.validate(envelope.new_event("event.scheduled", "/verbund/events", event["id"], {"event": event}))
    return event


def test_one_event_in_its_own_time_zone_with_a_stable_uid_and_its_version_as_sequence():
    event = snapshot()
    calendar = Calendar.from_ical(event_ics(event))
    [vevent] = calendar.walk("VEVENT")
    [vtimezone] = calendar.walk("VTIMEZONE")
    assert str(calendar["METHOD"]) == "PUBLISH" and str(vtimezone["TZID"]) == "Europe/Berlin"
    assert vevent.decoded("DTSTART") == datetime(2026, 7, 2, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert vevent.decoded("DTEND") == datetime(2026, 7, 2, 17, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert "TZID=Europe/Berlin" in event_ics(event).decode()  # local time with its zone, not floating or UTC
    assert str(vevent["UID"]) == f"{event['id']}@events.verbund" and vevent["SEQUENCE"] == 3
    assert str(vevent["SUMMARY"]) == "Batterie; Logistik, Recht"  # escaped and read back intact
    assert str(vevent["DESCRIPTION"]) == event["description"]
    assert str(vevent["LOCATION"]) == "Haus der Wirtschaft, Willi-Bleicher-Str. 19, Stuttgart"
    assert str(vevent["STATUS"]) == "CONFIRMED"
    assert vevent.decoded("DTSTAMP") == datetime(2026, 5, 3, 11, 0, tzinfo=ZoneInfo("UTC"))
    assert event_ics(event) == event_ics(event)  # the same version gives the same file


def test_the_vtimezone_knows_both_offsets_of_the_year():
    calendar = Calendar.from_ical(event_ics(snapshot()))
    [vtimezone] = calendar.walk("VTIMEZONE")
    offsets = {str(part["TZNAME"]): part["TZOFFSETTO"].td.total_seconds() / 3600
               for part in vtimezone.walk() if part.name in ("STANDARD", "DAYLIGHT")}
    assert offsets == {"CET": 1, "CEST": 2}


def test_a_winter_event_gets_winter_time():
    event = snapshot(starts_at="2026-12-03T08:00:00Z", ends_at="2026-12-03T12:00:00Z")
    [vevent] = Calendar.from_ical(event_ics(event)).walk("VEVENT")
    assert vevent.decoded("DTSTART").hour == 9


def test_a_cancelled_event_goes_out_as_a_cancellation():
    calendar = Calendar.from_ical(event_ics(snapshot(status="cancelled", version=4), method="REQUEST"))
    [vevent] = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) == "CANCEL" and str(vevent["STATUS"]) == "CANCELLED" and vevent["SEQUENCE"] == 4


def test_an_invitation_names_its_organizer_and_an_online_event_its_link():
    event = snapshot(venue=None, online_url="https://meet.example/ki-logistik", kind="webinar")
    calendar = Calendar.from_ical(event_ics(event, method="REQUEST", organizer="events@verbund.example"))
    [vevent] = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(vevent["ORGANIZER"]) == "mailto:events@verbund.example"
    assert str(vevent["URL"]) == str(vevent["LOCATION"]) == "https://meet.example/ki-logistik"


def test_a_feed_holds_many_events_each_zone_once_and_cancelled_ones_marked():
    berlin, again = snapshot(), snapshot()
    london = snapshot(timezone="Europe/London", status="cancelled")
    calendar = Calendar.from_ical(feed_ics([berlin, again, london], "Verbund – IT cluster"))
    assert str(calendar["METHOD"]) == "PUBLISH" and str(calendar["X-WR-CALNAME"]) == "Verbund – IT cluster"
    assert sorted(str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")) == ["Europe/Berlin", "Europe/London"]
    statuses = {str(vevent["UID"]).split("@")[0]: str(vevent["STATUS"]) for vevent in calendar.walk("VEVENT")}
    assert statuses == {berlin["id"]: "CONFIRMED", again["id"]: "CONFIRMED", london["id"]: "CANCELLED"}
    [in_london] = [v for v in calendar.walk("VEVENT") if str(v["UID"]).startswith(london["id"])]
    assert in_london.decoded("DTSTART").hour == 8  # 07:00 UTC is 08:00 BST


def test_an_empty_feed_is_a_valid_calendar():
    calendar = Calendar.from_ical(feed_ics([], "Verbund"))
    assert calendar.walk("VEVENT") == [] and str(calendar["VERSION"]) == "2.0"
