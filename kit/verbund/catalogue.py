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
        EventType("member.registered", "members", 1, "A member organisation registered its profile."),
        EventType("member.updated", "members", 1, "A member profile changed; carries the whole profile and what changed."),
        EventType("member.deleted", "members", 1, "A member left; every copy of its personal data must be erased."),
    ]
}

# Topic patterns each consuming service binds its queue ``<service>.events`` to.
SUBSCRIPTIONS: dict[str, list[str]] = {}


def event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown event type {name!r}") from None


def source_of(service: str) -> str:
    return f"/verbund/{service}"
