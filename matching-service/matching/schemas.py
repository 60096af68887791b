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


# --- answers (for the OpenAPI document; the shapes of match-suggestion.v1 and project.v1) ----------------

class ReasonSchema(Schema):
    kind = fields.String(required=True, metadata={"description": "need_met, offer_wanted, topic, region or sme"})
    text = fields.String(required=True, metadata={"description": "in the member's contact language"})
    need = fields.String(allow_none=True)
    offer = fields.String(allow_none=True)
    term = fields.String(allow_none=True, metadata={"description": "the vocabulary term that matched (the offer's)"})
    strength = fields.Float(metadata={"description": "0-1"})
    fit = fields.String(metadata={"description": "semantic matches: very_well (strength from 0.75), well (from 0.45) "
                                                 "or loosely (below; suggestions stored earlier say partly)"})
    match = fields.String(metadata={"description": "term, similar, word, related or semantic"})
    via = fields.String(metadata={"description": "match related: the need's own term, related to term; "
                                                 "match word: the one word need and offer share"})
    level = fields.String(metadata={"description": "region: same_postcode_area, same_state or neighbouring_state"})
    state = fields.String(metadata={"description": "region: the partner's federal state (ISO 3166-2:DE code, BY)"})
    postcode_prefix = fields.String(allow_none=True, metadata={
        "description": "region same_postcode_area: the two leading digits both postcodes share"})
    topics = fields.List(fields.String())


class SuggestionSchema(Schema):
    partner_id = fields.String(required=True)
    partner_name = fields.String(required=True)
    partner_sector = fields.String(required=True)
    score = fields.Float(required=True, metadata={"description": "0-1, the sum of the weighted parts"})
    rank = fields.Integer(required=True, metadata={"description": "1 = best"})
    parts = fields.Dict(keys=fields.String(), values=fields.Float(), required=True,
                        metadata={"description": "need_coverage, offer_coverage, topics, proximity, sme (weighted)"})
    reasons = fields.List(fields.Nested(ReasonSchema), required=True)


class SuggestionsSchema(Schema):
    member_id = fields.String(required=True)
    suggestions = fields.List(fields.Nested(SuggestionSchema), required=True)
    updated_at = fields.DateTime(allow_none=True, required=True, metadata={"description": "null: none stored yet"})


class ProposalMemberSchema(Schema):
    member_id = fields.String(required=True)
    name = fields.String(metadata={"description": "left out for a member who left"})
    sector = fields.String(required=True)
    response = fields.String(required=True, validate=validate.OneOf(("pending", "accepted", "declined")))


class ProposalSchema(Schema):
    id = fields.UUID(required=True)
    version = fields.Integer(required=True)
    title = fields.String(required=True)
    topic = fields.String(allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    anchor_id = fields.String(required=True)
    score = fields.Float(required=True)
    need_coverage = fields.Float(required=True, metadata={"description": "share of the anchor's needs covered, 0-1"})
    members = fields.List(fields.Nested(ProposalMemberSchema), required=True)
    explanation = fields.List(fields.Dict(), required=True, metadata={
        "description": "need_covered {need, member_id, member_name, offer, strength, match}, need_open {need}, "
                       "sectors {sectors}, topics {topics}, each with its kind and text {de, en}: a sentence that "
                       "speaks to the anchor (\"TraceSoft GmbH bringt „traceability system“ für Ihren Bedarf "
                       "„Rückverfolgbarkeit“ mit.\")"})
    summary = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "{de, en}: one sentence for every invited member: whose needs, who covers how many"})
    closed_reason = fields.String(allow_none=True, metadata={
        "description": "declined, member_deleted, consent_withdrawn or superseded"})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class MemberProposalsSchema(Schema):
    member_id = fields.String(required=True)
    items = fields.List(fields.Nested(ProposalSchema), required=True)


class ProposalPageSchema(Schema):
    items = fields.List(fields.Nested(ProposalSchema), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


class RebuildResultSchema(Schema):
    fetched = fields.Integer(metadata={"description": "profiles members-service gave (with from_members)"})
    stored = fields.Integer(metadata={"description": "profiles newer than the read model's"})
    forgotten = fields.Integer(metadata={"description": "members members-service no longer has"})
    announced = fields.Integer(required=True, metadata={"description": "suggestion lists announced"})
    members = fields.Integer(required=True, metadata={"description": "members in the engine"})


STATS = {"type": "object", "required": ["scope", "suggestions", "proposals"], "properties": {
    "scope": {"type": "string", "description": "the association, or cooperation for the totals"},
    "suggestions": {"type": "object", "required": ["total", "members"], "properties": {
        "total": {"type": "integer", "description": "partner suggestions in the members' current lists"},
        "members": {"type": "integer", "description": "members with at least one suggestion"}}},
    "proposals": {"type": "object", "required": ["total", "proposed", "formed", "closed", "closed_by_reason"],
                  "properties": {
        "total": {"type": "integer", "description": "partner projects ever proposed"},
        "proposed": {"type": "integer", "description": "open: waiting for the team's answers"},
        "formed": {"type": "integer"}, "closed": {"type": "integer"},
        "closed_by_reason": {"type": "object", "additionalProperties": {"type": "integer"},
                             "description": "declined, superseded, consent_withdrawn, member_deleted"}}}}}
