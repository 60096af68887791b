import uuid
from datetime import UTC, datetime

import pytest

from verbund import envelope
from verbund.testing import service_api

DAY = datetime(2026, 9, 15, tzinfo=UTC)  # the fair day of the use-case tests (09:00–17:00 Berlin = 07:00–15:00 UTC)


def joint_event(event_id: str | None = None, version: int = 1, status: str = "scheduled", day: datetime = DAY,
                organizers=("automotive-cluster", "it-cluster"), type: str = "event.scheduled") -> dict:
    """An event.* as events-service publishes it: a fair day 09:00–17:00 Europe/Berlin."""
    event_id = event_id or str(uuid.uuid4())
    starts, ends = day.replace(hour=7), day.replace(hour=15)
    snapshot = {"id": event_id, "version": version, "title": "Zuliefertag Elektromobilität", "description": None,
                "kind": "fair", "organizers": list(organizers), "target_sectors": [], "topics": [],
                "starts_at": envelope.isoformat(starts), "ends_at": envelope.isoformat(ends),
                "timezone": "Europe/Berlin", "venue": {"name": "Messe Stuttgart", "address": None, "city": "Stuttgart"},
                "online_url": None, "capacity": 500, "registration_deadline": None, "status": status,
                "cancel_reason": None, "created_at": "2026-06-01T08:00:00Z", "updated_at": "2026-06-01T08:00:00Z"}
    data = {"event": snapshot}
    if type == "event.updated":
        data.update(changed=["title"], registered_member_ids=[])
    if type == "event.cancelled":
        data.update(reason=None, registered_member_ids=[])
    return envelope.new_event(type, "/verbund/events", event_id, data)


def registration(event: dict, member_id: str, status: str = "confirmed", version: int = 1,
                 type: str = "registration.confirmed") -> dict:
    snapshot = event["data"]["event"]
    data = {"registration": {"id": str(uuid.uuid4()), "event_id": snapshot["id"], "member_id": member_id, "seats": 1,
                             "status": status, "waitlist_position": None, "version": version, "reason": None,
                             "created_at": "2026-06-01T08:00:00Z", "updated_at": "2026-06-01T08:00:00Z"},
            "event": snapshot}
    return envelope.new_event(type, "/verbund/events", data["registration"]["id"], data)


def setup_body(date: str = "2026-09-15", **overrides) -> dict:
    """Two sessions (09:00–12:00 and 13:30–16:00 Berlin) of 30-minute slots, a coffee break, 2 tables."""
    body = {"sessions": [{"starts_at": f"{date}T09:00:00", "ends_at": f"{date}T12:00:00"},
                         {"starts_at": f"{date}T13:30:00", "ends_at": f"{date}T16:00:00"}],
            "breaks": [{"starts_at": f"{date}T10:30:00", "ends_at": f"{date}T11:00:00"}],
            "slot_minutes": 30, "tables": 2, "max_per_session": 3, "request_expiry_minutes": 60}
    body.update(overrides)
    return body


@pytest.fixture
def fair():
    return joint_event


# meetings-service as a real process, once per database, shared by a module's tests.
meetings_api = service_api("meetings")
