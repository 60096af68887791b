"""The .ics downloads of a real events-service process stay valid RFC 5545 whatever older
data holds: control characters written straight into the database (as data from before the
input rules may hold them; PostgreSQL refuses only NUL) are dropped or turned into blanks,
on SQLite and PostgreSQL."""
import pytest
import requests
from icalendar import Calendar
from sqlalchemy import update

from events.models import Event
from verbund.calendar import file_problems
from verbund.database import make_engine
from verbund.testing import bearer

pytestmark = pytest.mark.integration

IT_ORGANIZER = bearer("organizer", association="it-cluster")


def test_stored_control_characters_still_give_valid_calendar_files(events_api, event_input):
    response = requests.post(f"{events_api.url}/events", json=event_input(), headers=IT_ORGANIZER, timeout=10)
    assert response.status_code == 201, response.text
    event = response.json()
    engine = make_engine(events_api.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(Event).where(Event.id == event["id"]).values(
                title="KI\x0bin der Logistik\x01", description="Agenda:\x0b10 Uhr\x1b[31m Start\r\nEnde\x7f",
                venue_name="Halle\x0c3", venue_city="Hamburg\x85"))
    finally:
        engine.dispose()

    for url in (f"{events_api.url}/events/{event['id']}/calendar.ics", f"{events_api.url}/calendar.ics"):
        answer = requests.get(url, timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/calendar")
        assert file_problems(answer.content) == [], url
        [vevent] = [v for v in Calendar.from_ical(answer.content).walk("VEVENT")
                    if str(v["UID"]).startswith(event["id"])]
        assert str(vevent["SUMMARY"]) == "KI in der Logistik"
        assert str(vevent["DESCRIPTION"]) == "Agenda:\n10 Uhr[31m Start\nEnde"
        assert str(vevent["LOCATION"]).startswith("Halle 3, ") and str(vevent["LOCATION"]).endswith("Hamburg")
