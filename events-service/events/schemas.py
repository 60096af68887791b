"""marshmallow schemas of the events API: what valid input is."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from events import domain
from verbund.reference import ASSOCIATIONS, SECTORS
from verbund.schema_fields import Text, Url, page_field
from verbund.vocabulary import load as load_vocabulary

MAX_CAPACITY = 100_000
MAX_TOPICS = 20


# Joint events happen in these years; outside them a time could not even be moved to UTC
# (year 1 at +02:00 is before the first representable moment).
EARLIEST_YEAR, LATEST_YEAR = 1970, 2999


def _plausible_year(value) -> None:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValidationError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")


def moment(**kwargs) -> fields.DateTime:
    return fields.DateTime(validate=_plausible_year, **kwargs)


def _known_timezone(value: str) -> None:
    try:
        domain.zone(value)
    except domain.InvalidTime as exc:
        raise ValidationError(str(exc)) from None


class TopicField(Text):
    """A topic of the vocabulary, by its id or any of its labels and synonyms; loads as the id."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        topic = load_vocabulary().find_topic(text)
        if topic is None:
            raise ValidationError(f"unknown topic {text!r}; see GET /vocabulary of members-service for topic ids")
        return topic


def _unique(name: str):
    def check(values):
        if len(set(values)) != len(values):
            raise ValidationError(f"{name} lists each value once")
    return check


class VenueSchema(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    address = Text(load_default=None, allow_none=True, validate=validate.Length(max=300))
    city = Text(load_default=None, allow_none=True, validate=validate.Length(max=100))


class EventSchema(Schema):
    """A whole joint event as an organizer sends it. Times without an offset
    are wall-clock times in ``timezone``; the service stores UTC."""
    title = Text(required=True, validate=validate.Length(min=1, max=200))
    description = Text(load_default=None, allow_none=True, multiline=True, validate=validate.Length(max=10_000))
    kind = Text(required=True, validate=validate.OneOf(domain.KINDS))
    organizers = fields.List(Text(validate=validate.OneOf(sorted(ASSOCIATIONS))), required=True,
                             validate=[validate.Length(min=1, max=len(ASSOCIATIONS)), _unique("organizers")])
    target_sectors = fields.List(Text(validate=validate.OneOf(SECTORS)), load_default=list,
                                 validate=_unique("target_sectors"))
    topics = fields.List(TopicField(), load_default=list,
                         validate=[validate.Length(max=MAX_TOPICS), _unique("topics")])
    timezone = Text(load_default=domain.DEFAULT_TIMEZONE, validate=_known_timezone)
    starts_at = moment(required=True)
    ends_at = moment(required=True)
    registration_deadline = moment(load_default=None, allow_none=True)
    venue = fields.Nested(VenueSchema, load_default=None, allow_none=True)
    online_url = Url(load_default=None, allow_none=True, schemes={"http", "https"},
                     validate=validate.Length(max=500))
    capacity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_CAPACITY))


# What a client may send back from an event it read; not its to set.
READ_ONLY_FIELDS = ("id", "version", "status", "cancel_reason", "created_at", "updated_at", "seats_confirmed",
                    "seats_free", "waitlisted", "starts_local", "ends_local")


class RegistrationSchema(Schema):
    member_id = Text(load_default=None, allow_none=True, validate=validate.Length(min=1, max=36))
    seats = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=MAX_CAPACITY))
    attendees = fields.List(Text(validate=validate.Length(min=1, max=200)), load_default=list)

    @validates_schema
    def _attendees_fit(self, data, **kwargs):
        if len(data.get("attendees", [])) > data.get("seats", 1):
            raise ValidationError("name at most as many attendees as seats", "attendees")


class MoveSchema(Schema):
    """Where staff move a registration: ``POST /events/{id}/registrations/{rid}/move``."""
    to_event_id = Text(required=True, validate=validate.Length(min=1, max=36))


class CancelSchema(Schema):
    reason = Text(load_default=None, allow_none=True, multiline=True, validate=validate.Length(max=2000))


class ListQuerySchema(Schema):
    kind = Text(validate=validate.OneOf(domain.KINDS))
    sector = Text(validate=validate.OneOf(SECTORS))
    association = Text(validate=validate.OneOf(sorted(ASSOCIATIONS)))
    topic = TopicField()
    status = Text(validate=validate.OneOf(domain.STATUSES))
    starts_after = moment()
    starts_before = moment()
    page = page_field()
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class FeedQuerySchema(Schema):
    kind = Text(validate=validate.OneOf(domain.KINDS))
    sector = Text(validate=validate.OneOf(SECTORS))
    association = Text(validate=validate.OneOf(sorted(ASSOCIATIONS)))
    topic = TopicField()
