"""A participant's agenda as iCalendar (RFC 5545/5546) through the kit's calendar module: one VEVENT per
meeting with a stable UID (the meeting's id), SEQUENCE its version (it rises with each move or
cancellation, so a calendar moves the entry instead of adding a second), STATUS TENTATIVE on a
preliminary schedule, CONFIRMED on the final one and CANCELLED once cancelled.

The calendar's words follow the requester's language (the Accept-Language the portal forwards
from the page the member reads, German by default): the file is fetched by the member from the
portal, so the page's language is the one the member chose; no ids or slot numbers, which
mean nothing to a person."""
from __future__ import annotations

from verbund import calendar

CALENDAR_TYPE = "text/calendar; charset=utf-8"
LANGUAGES = ("de", "en")
WORDS = {
    "de": {"calendar": "Gespräche – {event}", "table": "Tisch {table}", "with": "Gespräch mit {other}",
           "unnamed": "1:1-Gespräch", "at": "bei {event}"},
    "en": {"calendar": "Meetings – {event}", "table": "Table {table}", "with": "Meeting with {other}",
           "unnamed": "1:1 meeting", "at": "at {event}"},
}


def entry(agenda: dict, item: dict, language: str = "de") -> dict:
    """One meeting of ``agenda`` (``queries.agenda``) as the joint-event-like dict the kit's calendar reads,
    in ``language`` ("de" or "en"): SUMMARY and DESCRIPTION name the partner organisation when known
    and the table (or the host's meeting point)."""
    words = WORDS[language if language in LANGUAGES else "de"]
    where = (words["table"].format(table=item["table"]) if item.get("table")
             else (item.get("meeting_point") or None))
    venue = agenda["event"].get("venue")
    other = item.get("other_name")
    said = [words["with"].format(other=other) if other else words["unnamed"],
            words["at"].format(event=agenda["event"]["title"])]
    return {
        "id": f"meeting-{item['id']}", "version": item["version"], "title": _title(agenda, item),
        "description": " ".join(said) + (f", {where}" if where else ""),
        "kind": "meeting", "topics": [], "timezone": agenda["event"]["timezone"],
        "starts_at": item["starts_at"], "ends_at": item["ends_at"],
        "status": "cancelled" if item["calendar_status"] == "CANCELLED" else "scheduled",
        "venue": {"name": where or venue or agenda["event"]["title"], "address": venue if where else None,
                  "city": None},
        "updated_at": item["updated_at"], "created_at": item["created_at"],
    }


def _title(agenda: dict, item: dict) -> str:
    other = item.get("other_name")
    return f"1:1 {other} – {agenda['event']['title']}" if other else f"1:1 – {agenda['event']['title']}"


def to_ics(agenda: dict, language: str = "de") -> bytes:
    """The whole agenda as one ``.ics`` (METHOD:PUBLISH, cancelled meetings kept as STATUS:CANCELLED), its
    words in ``language`` ("de" or "en"; another one gives German)."""
    words = WORDS[language if language in LANGUAGES else "de"]
    entries = [(entry(agenda, item, language), item["calendar_status"]) for item in agenda["items"]
               if item["starts_at"] is not None]  # a meeting taken out of the schedule has no time yet
    return calendar.agenda_ics(entries, words["calendar"].format(event=agenda["event"]["title"]))
