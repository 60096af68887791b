"""iCalendar (RFC 5545) files of joint events, shared by events-service (the
``.ics`` downloads and the subscribable feed) and notifications-service (the
``.ics`` attached to mails).

Input is the ``joint-event.v1`` snapshot an event carries. Times are shown
in the event's own time zone with its VTIMEZONE, the UID is derived from the
event id so every copy updates the same calendar entry, SEQUENCE is the
event's version, and a cancelled event says so (STATUS:CANCELLED; a single
event file also gets METHOD:CANCEL so mail clients remove it).

Text comes from what is stored, which may be older than today's input rules:
control characters that RFC 5545 (section 3.3.11, TEXT) forbids are dropped
before the icalendar library escapes the rest, so every file stays valid.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar
from icalendar import Event as VEvent

PRODID = "-//Verbund//Joint events//EN"
UID_DOMAIN = "events.verbund"
REFRESH_INTERVAL = timedelta(hours=1)  # how often subscribed calendar programs should look again
STATUSES = ("CONFIRMED", "TENTATIVE", "CANCELLED")  # RFC 5545 3.8.1.11, for a VEVENT

# RFC 5545 TEXT allows no CONTROL (U+0000-0008, U+000A-001F, U+007F) but HTAB, and a line break
# only escaped (which the library does); C1 controls (U+0080-009F) are no text anybody typed, and
# lone surrogates (JSON lets "\\ud800" through) and U+FFFE/FFFF cannot be written as UTF-8 text.
_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Line breaks as str.splitlines knows them: CRLF, CR, vertical tab, form feed, NEL, the Unicode separators.
_BREAKS = re.compile("\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_BLANKS = re.compile("[ \t\n]+")


def event_uid(event_id: str) -> str:
    return f"{event_id}@{UID_DOMAIN}"


def ical_text(value: str | None, *, multiline: bool = False) -> str | None:
    """``value`` made fit for an RFC 5545 TEXT property: NFC-normalised, line breaks as
    ``\\n`` (kept only when ``multiline``, else spaces), every other control character
    removed, surrounding blanks trimmed; None or nothing left gives None. The icalendar
    library escapes what remains (backslash, ``;``, ``,``, newline) when the file is written."""
    if value is None:
        return None
    text = _BREAKS.sub("\n", unicodedata.normalize("NFC", str(value)))
    text = _FORBIDDEN.sub("", text)
    if multiline:
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    else:
        text = _BLANKS.sub(" ", text)
    return text.strip() or None


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _location(event: dict) -> str | None:
    venue = event.get("venue") or {}
    parts = [ical_text(venue.get(name)) for name in ("name", "address", "city")]
    text = ", ".join(part for part in parts if part)
    return text or ical_text(event.get("online_url"))


def _description(event: dict) -> str | None:
    parts = [ical_text(event.get("description"), multiline=True)]
    if ical_text(event.get("online_url")):
        parts.append(f"Online: {ical_text(event['online_url'])}")
    text = "\n\n".join(part for part in parts if part)
    return text or None


def _vevent(event: dict, organizer: str | None, sequence: int | None = None, status: str | None = None) -> VEvent:
    zone = ZoneInfo(event.get("timezone") or "Europe/Berlin")
    component = VEvent()
    component.add("uid", event_uid(event["id"]))
    component.add("sequence", int(event["version"] if sequence is None else sequence))
    # DTSTAMP: when this version of the event was made, so identical input gives identical output.
    stamp = _moment(event["updated_at"]) if event.get("updated_at") else datetime.now(UTC)
    component.add("dtstamp", stamp)
    if event.get("created_at"):
        component.add("created", _moment(event["created_at"]))
    if event.get("updated_at"):
        component.add("last-modified", _moment(event["updated_at"]))
    component.add("dtstart", _moment(event["starts_at"]).astimezone(zone))
    component.add("dtend", _moment(event["ends_at"]).astimezone(zone))
    component.add("summary", ical_text(event["title"]) or event_uid(event["id"]))
    if _description(event):
        component.add("description", _description(event))
    if _location(event):
        component.add("location", _location(event))
    if ical_text(event.get("online_url")):
        component.add("url", ical_text(event["online_url"]))
    categories = [ical_text(c) for c in (event["kind"], *event.get("topics", []))]
    component.add("categories", [c for c in categories if c])
    component.add("status", status or ("CANCELLED" if event["status"] == "cancelled" else "CONFIRMED"))
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
    _add_timezones(calendar, events)
    return calendar


def _add_timezones(calendar: Calendar, events: list[dict]) -> None:
    if events:
        # VTIMEZONE rules only for the years the events span: correct and short.
        first = min(_moment(event["starts_at"]) for event in events)
        last = max(_moment(event["ends_at"]) for event in events)
        calendar.add_missing_timezones(first_date=date(first.year - 1, 1, 1), last_date=date(last.year + 2, 1, 1))


def event_ics(event: dict, method: str = "PUBLISH", *, organizer: str | None = None, sequence: int | None = None,
              status: str | None = None) -> bytes:
    """One joint event (a ``joint-event.v1`` dict) as an ``.ics`` file (UTF-8 bytes).

    ``method`` is PUBLISH (a download) or REQUEST (an invitation mail; pass
    ``organizer``, an e-mail address, as RFC 5546 wants one). One recipient's
    copy may differ from the event itself: ``sequence`` (default: the event's
    version; RFC 5546 2.1.4: it only grows, so each revision replaces the
    entry with the same UID) and ``status`` (one of ``STATUSES``; default
    CONFIRMED, or CANCELLED for a cancelled event; TENTATIVE e.g. for a seat
    on the waitlist). A cancelled event or a CANCELLED copy always goes out
    as METHOD:CANCEL with STATUS:CANCELLED (RFC 5546 3.2.5), which removes it.
    ValueError for a status that is none of ``STATUSES``.
    """
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown calendar status {status!r}")
    if event["status"] == "cancelled" or status == "CANCELLED":
        method, status = "CANCEL", "CANCELLED"
    calendar = _calendar([], method.upper())
    calendar.add_component(_vevent(event, organizer, sequence, status))
    _add_timezones(calendar, [event])
    return calendar.to_ical()


def feed_ics(events: list[dict], name: str) -> bytes:
    """A subscribable feed of joint events; cancelled ones stay in it marked
    STATUS:CANCELLED so subscribed calendars drop them."""
    calendar = _calendar(events, "PUBLISH")
    calendar.add("name", ical_text(name))
    calendar.add("x-wr-calname", ical_text(name))
    calendar.add("refresh-interval", REFRESH_INTERVAL, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")  # the same, as Outlook reads it
    return calendar.to_ical()


def agenda_ics(entries: list[tuple[dict, str]], name: str) -> bytes:
    """A personal agenda (meetings-service) as one ``.ics`` (METHOD:PUBLISH): ``entries`` are
    (joint-event-like dict, STATUS) pairs, each dict with a stable ``id`` (its UID) and ``version`` (its
    SEQUENCE: it rises with every change, RFC 5546 2.1.4, so a moved entry replaces the old one); a
    CANCELLED entry stays in with STATUS:CANCELLED so that calendar programs drop it."""
    calendar = _calendar([], "PUBLISH")
    calendar.add("name", ical_text(name))
    calendar.add("x-wr-calname", ical_text(name))
    for event, status in entries:
        if status not in STATUSES:
            raise ValueError(f"unknown calendar status {status!r}")
        calendar.add_component(_vevent(event, None, None, status))
    _add_timezones(calendar, [event for event, _ in entries])
    return calendar.to_ical()


def file_problems(ics: bytes) -> list[str]:
    """What makes ``ics`` (a whole ``.ics`` file) break RFC 5545's content-line rules (3.1):
    not UTF-8, a line not ended by CRLF, or a control character other than HTAB in a content
    line (after unfolding). An empty list for a valid file; for tests and checks of stored files."""
    try:
        text = ics.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [f"not UTF-8: {exc}"]
    problems = []
    if not text.endswith("\r\n") or "\n" in text.replace("\r\n", ""):
        problems.append("lines must end with CRLF")
    for number, line in enumerate(text.replace("\r\n ", "").replace("\r\n\t", "").split("\r\n"), 1):
        bad = sorted({f"U+{ord(c):04X}" for c in line if _FORBIDDEN.match(c) or c in "\r\n"})
        if bad:
            problems.append(f"line {number}: control characters {', '.join(bad)}: {line[:60]!r}")
    return problems
