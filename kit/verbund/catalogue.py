"""The event catalogue: every event type, who publishes it, its schema
version, and which service consumes what. The one place that names them.

The routing key of an event on the ``verbund.events`` exchange is its type,
so a consumer binds with topic patterns such as ``member.*``.
"""
from __future__ import annotations

from dataclasses import dataclass

EXCHANGE = "verbund.events"


@dataclass(frozen=True)
class EventType:
    name: str
    producer: str
    version: int
    summary: str

    @property
    def dataschema(self) -> str:
        return f"urn:verbund:schema:{self.name}:v{self.version}"

    @property
    def schema_file(self) -> str:
        return f"{self.name}.v{self.version}.json"


EVENT_TYPES = {
    event.name: event
    for event in [
        # members-service
        EventType("member.registered", "members", 1, "A member organisation registered its profile."),
        EventType("member.updated", "members", 1,
                  "A member profile changed; carries the whole profile and what changed."),
        EventType("member.deleted", "members", 1, "A member left; every copy of its personal data must be erased."),
        # events-service
        EventType("event.scheduled", "events", 1, "Organizers scheduled a joint event."),
        EventType("event.updated", "events", 1,
                  "A joint event changed; carries the event, what changed and who is registered."),
        EventType("event.cancelled", "events", 1, "A joint event was cancelled; carries who was registered."),
        EventType("registration.confirmed", "events", 1, "A member has confirmed seats at a joint event."),
        EventType("registration.waitlisted", "events", 1, "A member's request is on the waitlist of a full event."),
        EventType("registration.promoted", "events", 1, "A waitlisted request moved up to confirmed seats."),
        EventType("registration.cancelled", "events", 1,
                  "A registration ended: by the member, its deletion, or the event's cancellation."),
        # matching-service
        EventType("match.suggested", "matching", 1, "A member's cross-sector partner suggestions changed."),
        EventType("project.proposed", "matching", 1, "A partner-project consortium was proposed to its members."),
        EventType("project.formed", "matching", 1, "Every invited member accepted: the project is formed."),
        EventType("project.closed", "matching", 1, "A proposal ended without forming (a decline, a member left)."),
        # notifications-service
        EventType("notification.delivered", "notifications", 1,
                  "A notification reached its recipient on a channel."),
        EventType("notification.failed", "notifications", 1,
                  "A notification could not be delivered after all retries."),
    ]
}

# Topic patterns each consuming service binds its queue ``<service>.events`` to.
SUBSCRIPTIONS: dict[str, list[str]] = {
    "events": ["member.*"],
    "matching": ["member.*"],
    "notifications": ["member.*", "event.*", "registration.*", "match.suggested", "project.*"],
}


def event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown event type {name!r}") from None


def source_of(service: str) -> str:
    return f"/verbund/{service}"
