"""marshmallow schemas of the matching API."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from verbund.schema_fields import StrictBoolean, Text, page_field

STATUSES = ("proposed", "formed", "closed")


class ResponseSchema(Schema):
    response = Text(required=True, validate=validate.OneOf(("accept", "decline")))
    # An admin answers on a member's behalf and names it; a member answers for itself.
    member_id = Text(load_default=None, allow_none=True, validate=validate.Length(min=1, max=36))


class ProposeSchema(Schema):
    member_id = Text(load_default=None, allow_none=True, validate=validate.Length(min=1, max=36))
    topic = Text(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))

    @validates_schema
    def _one_of(self, data, **kwargs):
        if bool(data.get("member_id")) == bool(data.get("topic")):
            raise ValidationError("give either a member_id or a topic", "member_id")


class ProposalQuerySchema(Schema):
    status = Text(validate=validate.OneOf(STATUSES))
    member_id = Text(validate=validate.Length(min=1, max=36))
    page = page_field()
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class MemberProposalQuerySchema(Schema):
    status = Text(validate=validate.OneOf(STATUSES))


class RebuildSchema(Schema):
    # True: fetch every profile from members-service first (after data loss); False: recompute only.
    from_members = StrictBoolean(load_default=True)
