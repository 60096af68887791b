"""marshmallow schemas of the meetings API: what valid input is. Rules that need the event or the
stored state (sessions within the event, free slots) are in ``meetings.domain``."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from meetings import domain
from verbund.reference import ASSOCIATIONS, SECTORS
from verbund.schema_fields import StrictBoolean, Text

MAX_SESSIONS = 10
MAX_TABLES = 1000
MAX_SLOT_NUMBER = 10_000


def _plausible_year(value) -> None:
    if not 1970 <= value.year <= 2999:
        raise ValidationError("must be between the years 1970 and 2999")


def moment(**kwargs) -> fields.DateTime:
    return fields.DateTime(validate=_plausible_year, **kwargs)


class PeriodSchema(Schema):
    """A session or a break; times without an offset are wall-clock times in the event's zone."""
    starts_at = moment(required=True)
    ends_at = moment(required=True)


class SetupSchema(Schema):
    """The whole set-up of an event's matchmaking day as an organizer sends it."""
    sessions = fields.List(fields.Nested(PeriodSchema), required=True,
                           validate=validate.Length(min=1, max=MAX_SESSIONS))
    breaks = fields.List(fields.Nested(PeriodSchema), load_default=list, validate=validate.Length(max=20))
    slot_minutes = fields.Integer(required=True, strict=True, validate=validate.Range(*domain.SLOT_MINUTES))
    mode = Text(load_default="tables", validate=validate.OneOf(("tables", "meeting_points")))
    tables = fields.Integer(load_default=None, allow_none=True, strict=True,
                            validate=validate.Range(min=1, max=MAX_TABLES, error="give between 1 and 1000 tables"))
    max_per_session = fields.Integer(load_default=6, strict=True, validate=validate.Range(min=1, max=100))
    max_open_requests = fields.Integer(load_default=domain.DEFAULT_MAX_OPEN_REQUESTS, strict=True,
                                       validate=validate.Range(min=1, max=500))
    request_expiry_minutes = fields.Integer(load_default=3 * 24 * 60, strict=True,
                                            validate=validate.Range(*domain.EXPIRY_MINUTES))
    who_may_request = Text(load_default="all", validate=validate.OneOf(domain.WHO_MAY_REQUEST))
    sector_pairs = fields.List(fields.List(Text(validate=validate.OneOf(SECTORS)), validate=validate.Length(2, 2)),
                               load_default=list, validate=validate.Length(max=50))
    request_mode = Text(load_default="approval", validate=validate.OneOf(domain.REQUEST_MODES))
    scheduling_mode = Text(load_default="participants", validate=validate.OneOf(domain.SCHEDULING_MODES))

    @validates_schema
    def _consistent(self, data, **kwargs):
        if data.get("mode") == "tables" and data.get("tables") is None:
            raise ValidationError("say how many tables there are (or choose mode meeting_points)", "tables")
        if data.get("mode") == "meeting_points" and data.get("tables") is not None:
            raise ValidationError("meeting-point mode has no tables", "tables")
        if data.get("who_may_request") == "by_sector" and not data.get("sector_pairs"):
            raise ValidationError("list the sector pairs that may request each other", "sector_pairs")


class ParticipationSchema(Schema):
    """A participant opts in (or changes its availability): ``available`` slot numbers (null: every
    slot), ``meeting_point`` where it can be found in meeting-point mode."""
    available = fields.List(fields.Integer(strict=True, validate=validate.Range(0, MAX_SLOT_NUMBER)),
                            load_default=None, allow_none=True, validate=validate.Length(max=1000))
    meeting_point = Text(load_default=None, allow_none=True, validate=validate.Length(max=200))


class RequestSchema(Schema):
    recipient_id = Text(required=True, validate=validate.Length(min=1, max=36))
    message = Text(load_default=None, allow_none=True, multiline=True, validate=validate.Length(max=1000))


class AcceptSchema(Schema):
    """``slot``: a mutually free slot to meet in (a table is assigned), or null to leave it to the scheduler."""
    slot = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(0, MAX_SLOT_NUMBER))


class ReasonSchema(Schema):
    reason = Text(load_default=None, allow_none=True, multiline=True, validate=validate.Length(max=1000))


class SlotSchema(Schema):
    slot = fields.Integer(required=True, strict=True, validate=validate.Range(0, MAX_SLOT_NUMBER))


class MoveSchema(Schema):
    """An organizer places one meeting: ``slot`` and ``table`` (null: the lowest free one), ``locked``
    (default true: "schedule all" leaves it where it is)."""
    slot = fields.Integer(required=True, strict=True, validate=validate.Range(0, MAX_SLOT_NUMBER))
    table = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(1, MAX_TABLES))
    locked = StrictBoolean(load_default=True)


class LockSchema(Schema):
    locked = StrictBoolean(required=True)


class ScheduleSchema(Schema):
    time_limit_s = fields.Float(load_default=10.0, validate=validate.Range(min=0.5, max=60))


class PublishSchema(Schema):
    state = Text(required=True, validate=validate.OneOf(domain.PUBLISH_STATES))


class AttendanceSchema(Schema):
    took_place = StrictBoolean(required=True)


class OutcomeSchema(Schema):
    outcome = Text(required=True, validate=validate.OneOf(domain.OUTCOMES))
    led_to_project = StrictBoolean(load_default=False)


class RollupQuerySchema(Schema):
    """``?association=`` of the association roll-up; left out: the whole cooperation (admins only)."""
    association = fields.String(validate=validate.OneOf(sorted(ASSOCIATIONS)))
