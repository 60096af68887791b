"""iCalendar (RFC 5545) files of joint events, shared by events-service (the
``.ics`` downloads and the subscribable feed) and notifications-service (the
``.ics`` attached to mails).

Input is the ``joint-event.v1`` snapshot an event carries. Times are shown
in the event's own time zone with its VTIMEZONE, the UID is derived from the
event id so every copy updates the same calendar entry, SEQUENCE is the
event's version, and a cancelled event says so (STATUS:CANCELLED; a single
event file also gets METHOD:CANCEL so mail clients remove it).
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar
from icalendar import Event as VEvent

PRODID = "-//Verbund//Joint events//EN"
UID_DOMAIN = "events.verbund"
REFRESH_INTERVAL = timedelta(hours=1)  # how often subscribed calendar programs should look again


def event_uid(event_id: str) -> str:
    return f"{event_id}@{UID_DOMAIN}"


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _location(event: dict) -> str | None:
    venue = event.get("venue") or {}
    parts = [venue.get("name"), venue.get("address"), venue.get("city")]
    text = ", ".join(part for part in parts if part)
    return text or event.get("online_url") or None


def _description(event: dict) -> str | None:
    parts = [event.get("description")]
    if event.get("online_url"):
        parts.append(f"Online: {event['online_url']}")
    text = "\n\n".join(part for part in parts if part)
    return text or None


def _vevent(event: dict, organizer: str | None) -> VEvent:
    zone = ZoneInfo(event.get("timezone") or "Europe/Berlin")
    component = VEvent()
    component.add("uid", event_uid(event["id"]))
    component.add("sequence", int(event["version"]))
    # DTSTAMP: when this version of the event was made, so identical input gives identical output.
    stamp = _moment(event["updated_at"]) if event.get("updated_at") else datetime.now(UTC)
    component.add("dtstamp", stamp)
    if event.get("created_at"):
        component.add("created", _moment(event["created_at"]))
    if event.get("updated_at"):
        component.add("last-modified", _moment(event["updated_at"]))
    component.add("dtstart", _moment(event["starts_at"]).astimezone(zone))
    component.add("dtend", _moment(event["ends_at"]).astimezone(zone))
    component.add("summary", event["title"])
    if _description(event):
        component.add("description", _description(event))
    if _location(event):
        component.add("location", _location(event))
    if event.get("online_url"):
        component.add("url", event["online_url"])
    component.add("categories", [event["kind"], *event.get("topics", [])])
    component.add("status", "CANCELLED" if event["status"] == "cancelled" else "CONFIRMED")
    component.add("transp", "OPAQUE")
    if organizer:
        component.add("organizer", f"mailto:{organizer}")
    return component


def _calendar(events: list[dict], method: str, organizer: str | None = None) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    for event in events:
        calendar.add_component(_vevent(event, organizer))
    if events:
        # VTIMEZONE rules only for the years the events span: correct and short.
        first = min(_moment(event["starts_at"]) for event in events)
        last = max(_moment(event["ends_at"]) for event in events)
        calendar.add_missing_timezones(first_date=date(first.year - 1, 1, 1), last_date=date(last.year + 2, 1, 1))
    return calendar


def event_ics(event: dict, method: str = "PUBLISH", *, organizer: str | None = None) -> bytes:
    """One joint event as an ``.ics`` file.

    ``method`` is PUBLISH (a download) or REQUEST (an invitation mail; pass
    ``organizer``, an e-mail address, as RFC 5546 wants one); a cancelled
    event always goes out as METHOD:CANCEL with STATUS:CANCELLED.
    """
    if event["status"] == "cancelled":
        method = "CANCEL"
    return _calendar([event], method.upper(), organizer).to_ical()


def feed_ics(events: list[dict], name: str) -> bytes:
    """A subscribable feed of joint events; cancelled ones stay in it marked
    STATUS:CANCELLED so subscribed calendars drop them."""
    calendar = _calendar(events, "PUBLISH")
    calendar.add("name", name)
    calendar.add("x-wr-calname", name)
    calendar.add("refresh-interval", REFRESH_INTERVAL, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")  # the same, as Outlook reads it
    return calendar.to_ical()
