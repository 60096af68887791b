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
    # Older versions consumers still accept until SUNSET (deprecated; no longer published).
    deprecated: tuple[int, ...] = ()

    @property
    def dataschema(self) -> str:
        return self.dataschema_of(self.version)

    def dataschema_of(self, version: int) -> str:
        return f"urn:verbund:schema:{self.name}:v{version}"

    @property
    def accepted_dataschemas(self) -> tuple[str, ...]:
        """The current dataschema first, then the deprecated ones a consumer still accepts."""
        return tuple(self.dataschema_of(v) for v in (self.version, *self.deprecated))

    @property
    def schema_file(self) -> str:
        return f"{self.name}.v{self.version}.json"


# member.* v1 carried the contact person's name and e-mail in clear; v2 carries them encrypted with
# the member's key (verbund.personal). v1 events (in queues, dead letters, the 7-day replay stream, an
# integrator's own store) stay readable by the platform's consumers until this date.
SUNSET = "2027-06-30"


EVENT_TYPES = {
    event.name: event
    for event in [
        # members-service
        EventType("member.registered", "members", 2,
                  "A member organisation registered its profile; the contact person only encrypted.", (1,)),
        EventType("member.updated", "members", 2,
                  "A member profile changed; carries the whole profile (the contact person only encrypted) "
                  "and what changed.", (1,)),
        EventType("member.deleted", "members", 1, "A member left; every copy of its personal data must be erased."),
        EventType("contact.requested", "members", 1,
                  "A member asked another for contact (the message itself stays with members-service)."),
        EventType("contact.accepted", "members", 1,
                  "A contact request was accepted: both members now see each other's contact person."),
        EventType("contact.declined", "members", 1, "A contact request was declined."),
        EventType("integrator.revoked", "members", 1,
                  "An admin revoked an integrator; notifications-service disables its webhooks."),
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
        # meetings-service
        EventType("meeting.requested", "meetings", 1,
                  "A participant of a matchmaking day asked another for a 1:1 meeting (ids only, no message)."),
        EventType("meeting.accepted", "meetings", 1,
                  "A meeting request was accepted (with its slot when one was picked)."),
        EventType("meeting.declined", "meetings", 1, "A meeting request was declined."),
        EventType("meeting.scheduled", "meetings", 1,
                  "A meeting got (or moved to) a slot and table that its participants can see."),
        EventType("meeting.cancelled", "meetings", 1,
                  "A request was withdrawn or a meeting cancelled (by a side, the organizers, the event's end)."),
        EventType("meeting.outcome_reported", "meetings", 1,
                  "A participant said what came of a meeting, on the fixed outcome scale."),
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
    "members": ["project.formed"],
    "matching": ["member.*"],
    "meetings": ["event.*", "registration.*", "member.*"],
    "notifications": ["member.*", "event.*", "registration.*", "match.suggested", "project.*",
                      "contact.*", "meeting.requested", "meeting.accepted", "meeting.declined",
                      "meeting.scheduled", "meeting.cancelled", "integrator.revoked"],
}


def event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown event type {name!r}") from None


def source_of(service: str) -> str:
    return f"/verbund/{service}"
