"""A participant's agenda as iCalendar (RFC 5545/5546) through the kit's calendar module: one VEVENT per
meeting with a stable UID (the meeting's id), SEQUENCE its version (it rises with each move or
cancellation, so a calendar moves the entry instead of adding a second), STATUS TENTATIVE on a
preliminary schedule, CONFIRMED on the final one and CANCELLED once cancelled."""
from __future__ import annotations

from verbund import calendar

CALENDAR_TYPE = "text/calendar; charset=utf-8"


def entry(agenda: dict, item: dict) -> dict:
    """One meeting of ``agenda`` (``queries.agenda``) as the joint-event-like dict the kit's calendar reads;
    its SUMMARY names the partner organisation when known."""
    where = f"Tisch {item['table']}" if item.get("table") else (item.get("meeting_point") or None)
    venue = agenda["event"].get("venue")
    return {
        "id": f"meeting-{item['id']}", "version": item["version"], "title": _title(agenda, item),
        "description": f"Meeting {item['id']} (slot {item['slot']})" + (f", {where}" if where else ""),
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


def to_ics(agenda: dict) -> bytes:
    """The whole agenda as one ``.ics`` (METHOD:PUBLISH, cancelled meetings kept as STATUS:CANCELLED)."""
    entries = [(entry(agenda, item), item["calendar_status"]) for item in agenda["items"]]
    return calendar.agenda_ics(entries, f"Meetings – {agenda['event']['title']}")
