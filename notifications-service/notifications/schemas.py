"""marshmallow schemas of the notifications API."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from notifications.domain import FREQUENCIES, MODES, POLICY, type_matches
from verbund.catalogue import EVENT_TYPES, SUBSCRIPTIONS
from verbund.reference import LANGUAGES
from verbund.schema_fields import StrictBoolean, Text, page_field
from verbund.vocabulary import load as load_vocabulary

MAX_TOPICS = 30
# The event types an integrator's webhook can receive: those this service consumes, but for the
# revocations of integrators (what disables webhooks is delivered to none).
RECEIVED_TYPES = tuple(t for t in EVENT_TYPES if any(type_matches(p, t) for p in SUBSCRIPTIONS["notifications"])
                       and not t.startswith("integrator."))


def _known_topic(value: str) -> None:
    if value not in load_vocabulary().topics:
        raise ValidationError(f"unknown topic {value!r}; see GET /vocabulary on members-service for the topic ids")


def _pattern(value: str) -> None:
    parts = value.split(".")
    if not value or any(not part or (part not in ("*", "#") and not part.replace("-", "").isalnum())
                        for part in parts):
        raise ValidationError(f"{value!r} is not an event type or pattern such as 'event.*' or '#'")


class ChannelsSchema(Schema):
    inbox = StrictBoolean(validate=validate.Equal(True, error="the inbox is always on"))
    email = StrictBoolean()
    webhook = StrictBoolean()


class PreferencesSchema(Schema):
    """PUT body: every field optional; what is left out stays as it was."""
    channels = fields.Nested(ChannelsSchema)
    frequency = Text(validate=validate.OneOf(FREQUENCIES))
    # null: hear about every topic that fits the profile; a list: only these.
    topics = fields.List(Text(validate=_known_topic), allow_none=True,
                         validate=validate.Length(min=1, max=MAX_TOPICS))
    language = Text(allow_none=True, validate=validate.OneOf(LANGUAGES))
    # Per kind of notification: "immediately", "digest" or "inbox" (no e-mail); null: back to the policy.
    kinds = fields.Dict(keys=Text(validate=validate.OneOf(tuple(POLICY))),
                        values=Text(allow_none=True, validate=validate.OneOf(MODES)))


class InboxQuerySchema(Schema):
    unread = fields.Boolean(load_default=False)
    page = page_field()
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class PageQuerySchema(Schema):
    page = page_field()
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class WebhookSchema(Schema):
    url = Text(required=True, validate=validate.Length(min=1, max=2000))
    member_id = Text(validate=validate.Length(min=1, max=36))
    # Integrator endpoints: which platform events to receive (RabbitMQ-style patterns).
    event_types = fields.List(Text(validate=_pattern), validate=validate.Length(min=1, max=20))
    description = Text(allow_none=True, multiline=True, validate=validate.Length(max=500))
    allow_private = StrictBoolean()

    @validates_schema
    def _types_are_received(self, data, **kwargs):
        for pattern in data.get("event_types", []):
            if not any(type_matches(pattern, type_) for type_ in RECEIVED_TYPES):
                raise ValidationError(f"{pattern!r} matches no event this service receives", "event_types")


class WebhookPatchSchema(Schema):
    url = Text(validate=validate.Length(min=1, max=2000))
    enabled = StrictBoolean()
    event_types = fields.List(Text(validate=_pattern), validate=validate.Length(min=1, max=20))
    description = Text(allow_none=True, multiline=True, validate=validate.Length(max=500))
    allow_private = StrictBoolean()


# --- what the API answers, for the OpenAPI document ------------------------------------------------

def _object(properties: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required or properties)}


_TEXT, _NULLABLE_TEXT = {"type": "string"}, {"type": ["string", "null"]}
PREFERENCES = _object({
    "member_id": _TEXT,
    "channels": _object({"inbox": {"const": True}, "email": {"type": "boolean"}, "webhook": {"type": "boolean"}}),
    "frequency": {"enum": list(FREQUENCIES), "description": "how often news arrive by e-mail: in a daily or "
                  "weekly digest, or each on its own (immediately); what needs the member goes at once"},
    "kinds": {"type": "object", "description": "per kind of notification how its e-mail goes: immediately, "
              "digest or inbox (no e-mail); the policy's choice unless the member changed it",
              "properties": {kind: {"enum": list(MODES)} for kind in POLICY}},
    "kinds_changed": {"type": "array", "items": _TEXT, "description": "the kinds the member changed"},
    "topics": {"type": ["array", "null"], "items": _TEXT},
    "language": {"enum": [*LANGUAGES, None]},
    "effective_language": {"enum": list(LANGUAGES)},
    "email_consent": {"type": "boolean"},
    "email_address": _NULLABLE_TEXT,
})
INBOX_ENTRY = _object({
    "id": {"type": "integer"}, "type": _TEXT, "kind": _NULLABLE_TEXT, "source_event_id": _TEXT,
    "subject": _NULLABLE_TEXT, "title": _TEXT, "summary": _NULLABLE_TEXT,
    "link": {"type": "string", "description": "the portal path where the member acts on it, to be put after "
             "the portal's address: /contacts, /projects, /events/<id>, /suggestions or /inbox"},
    "created_at": _TEXT,
    "read": {"type": "boolean"}, "read_at": _NULLABLE_TEXT,
})
INBOX_PAGE = _object({"items": {"type": "array", "items": INBOX_ENTRY}, "page": {"type": "integer"},
                      "per_page": {"type": "integer"}, "total": {"type": "integer"}, "unread": {"type": "integer"}})
WEBHOOK = _object({
    "id": _TEXT, "url": _TEXT, "owner": _object({"role": _TEXT, "member_id": _NULLABLE_TEXT}),
    "event_types": {"type": ["array", "null"], "items": _TEXT}, "description": _NULLABLE_TEXT,
    "allow_private": {"type": "boolean"}, "enabled": {"type": "boolean"}, "disabled_reason": _NULLABLE_TEXT,
    "created_at": _TEXT,
    "secret": {"type": "string", "description": "whsec_..., only in the answer to POST /webhooks"},
}, required=("id", "url", "owner", "enabled"))
DELIVERY_PAGE = _object({
    "items": {"type": "array", "items": _object({
        "id": {"type": "integer"}, "channel": {"enum": ["email", "webhook"]}, "target": _TEXT,
        "source_event_id": _TEXT, "source_type": _TEXT, "member_id": _NULLABLE_TEXT,
        "status": {"enum": ["pending", "sending", "held", "delivered", "failed", "cancelled"]},
        "attempts": {"type": "integer"}, "last_error": _NULLABLE_TEXT,
        "log": {"type": "array", "items": _object({
            "number": {"type": "integer"}, "at": _TEXT, "duration_ms": {"type": "integer"},
            "status_code": {"type": ["integer", "null"]}, "outcome": {"enum": ["delivered", "retry", "failed"]},
            "error": _NULLABLE_TEXT})},
    }, required=("id", "channel", "status", "attempts", "log"))},
    "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"},
})
HTML_PAGE = ("text/html", {"type": "string"})
