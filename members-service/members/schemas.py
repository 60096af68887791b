"""marshmallow schemas of the members API: what a valid profile is."""
from __future__ import annotations

import uuid

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates, validates_schema

from verbund import personal
from verbund.openapi import Extended
from verbund.reference import ASSOCIATIONS, LANGUAGES, SECTORS, STATES
from verbund.schema_fields import Email, StrictBoolean, Text, Url, euro_field, page_field
from verbund.vocabulary import load as load_vocabulary

MAX_COMPETENCIES = 50
MAX_TOPICS = 30


# As enums, so the OpenAPI document lists the valid ids (GET /vocabulary has their labels).
TOPIC_IDS = sorted(load_vocabulary().topics)
TERM_IDS = sorted(load_vocabulary().competencies)


def in_words(value: str | None) -> None:
    """A competency is named in words: at least one letter or digit (Unicode), not only emoji or
    punctuation ("🚚📦", "?!..."), which nobody can match or read as a competency."""
    if value is not None and not any(ch.isalnum() for ch in value):
        raise ValidationError("must contain a letter or digit: name it in words")


class CompetencySchema(Schema):
    term = Text(load_default=None, allow_none=True,
                validate=validate.OneOf(TERM_IDS, error="unknown vocabulary term; see GET /vocabulary"))
    label = Text(load_default=None, allow_none=True, validate=[validate.Length(min=1, max=200), in_words])
    description = Text(load_default=None, allow_none=True, multiline=True, validate=validate.Length(max=2000))

    @validates_schema
    def _term_or_label(self, data, **kwargs):
        if not data.get("term") and not data.get("label"):
            raise ValidationError("give a vocabulary term id or a free-text label", "label")


class RegionSchema(Schema):
    state = Text(required=True, validate=validate.OneOf(sorted(STATES)))
    postcode = Text(required=True,
                    validate=validate.Regexp(r"^[0-9]{5}$", error="a German postcode has five digits"))
    city = Text(required=True, validate=validate.Length(min=1, max=100))


class SizeSchema(Schema):
    employees = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=5_000_000))
    turnover_eur = euro_field(load_default=None, allow_none=True)
    balance_sheet_eur = euro_field(load_default=None, allow_none=True)
    # Derived from the figures above; accepted (and ignored) so a profile read can be sent back.
    sme = StrictBoolean(load_only=True)
    category = Text(load_only=True)


class ContactSchema(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    email = Email(required=True, validate=validate.Length(max=320))
    language = Text(load_default="de", validate=validate.OneOf(LANGUAGES))


class ConsentSchema(Schema):
    # Opt-in: nobody is suggested or e-mailed without saying so.
    suggest_as_partner = StrictBoolean(load_default=False)
    email = StrictBoolean(load_default=False)


class MemberSchema(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    sector = Text(required=True, validate=validate.OneOf(SECTORS))
    associations = fields.List(Text(validate=validate.OneOf(sorted(ASSOCIATIONS))), load_default=list,
                               validate=validate.Length(max=len(ASSOCIATIONS)))
    region = fields.Nested(RegionSchema, required=True)
    size = fields.Nested(SizeSchema, required=True)
    website = Url(load_default=None, allow_none=True, schemes={"http", "https"},
                  validate=validate.Length(max=500))
    contact = fields.Nested(ContactSchema, required=True)
    offers = fields.List(fields.Nested(CompetencySchema), load_default=list,
                         validate=validate.Length(max=MAX_COMPETENCIES))
    needs = fields.List(fields.Nested(CompetencySchema), load_default=list,
                        validate=validate.Length(max=MAX_COMPETENCIES))
    topics = fields.List(Text(validate=validate.OneOf(TOPIC_IDS, error="unknown topic; see GET /vocabulary")),
                         load_default=list, validate=validate.Length(max=MAX_TOPICS))
    consent = fields.Nested(ConsentSchema, load_default=lambda: {"suggest_as_partner": False, "email": False})

    @validates_schema
    def _no_duplicates(self, data, **kwargs):
        for name in ("associations", "topics"):
            if len(set(data.get(name, []))) != len(data.get(name, [])):
                raise ValidationError("lists each value once", name)


class ListQuerySchema(Schema):
    sector = Text(validate=validate.OneOf(SECTORS))
    state = Text(validate=validate.OneOf(sorted(STATES)))
    city = Text(validate=validate.Length(max=100))
    postcode = Text(validate=validate.Regexp(r"^[0-9]{1,5}$", error="digits: a postcode or its prefix"))
    association = Text(validate=validate.OneOf(sorted(ASSOCIATIONS)))
    topic = Text(validate=validate.Length(max=100))
    competency = Text(validate=validate.Length(max=200))
    offers = Text(validate=validate.Length(max=200))
    needs = Text(validate=validate.Length(max=200))
    sme = fields.Boolean()
    q = Text(validate=validate.Length(max=200))
    page = page_field()
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


MAX_CARDS = 100


class CardsQuerySchema(Schema):
    ids = Text(required=True, metadata={"description": f"member ids, comma-separated, at most {MAX_CARDS}"})

    @validates("ids")
    def _ids(self, value, **kwargs):
        ids = [part.strip() for part in value.split(",") if part.strip()]
        if not 1 <= len(ids) <= MAX_CARDS:
            raise ValidationError(f"give from 1 to {MAX_CARDS} member ids, comma-separated")
        for part in ids:
            try:
                uuid.UUID(part)
            except ValueError:
                raise ValidationError(f"not a member id: {part[:40]}") from None

    @post_load
    def _split(self, data, **kwargs):
        data["ids"] = list(dict.fromkeys(part.strip().lower() for part in data["ids"].split(",") if part.strip()))
        return data


class VocabularyQuerySchema(Schema):
    q = Text(load_default="", validate=validate.Length(max=200),
             metadata={"description": "searches competency labels and synonyms"})


class ImportQuerySchema(Schema):
    dry_run = fields.Boolean(load_default=False, metadata={"description": "validate and report, import nothing"})
    invite = Text(load_default="none", validate=validate.OneOf(("none", "consented", "all")), metadata={
        "description": "after a real import, mail a sign-in link to no one (default), to the imported members "
                       "whose row gave e-mail consent, or to all imported members"})


# --- JSON Schemas of the answers, for the OpenAPI document --------------------------------------------

PROFILE = "urn:verbund:schema:member-profile:v1"
REGISTERED = Extended(PROFILE, "registered-member", {"access_token": {
    "type": "string", "description": "the member's bearer token for its own profile"}})
PAGE = {"type": "object", "properties": {
    "items": {"type": "array", "items": {"$ref": "#/components/schemas/member-profile.v1"}},
    "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"}}}
MEMBER_KEY = {"type": "object", "required": ["kty", "kid", "alg", "enc", "k"], "description":
              "The member's key as a JSON Web Key (RFC 7517): opens profile.personal of its member.* events "
              "(JWE, alg dir, enc A256GCM, kid = member id).", "properties": {
                  "kty": {"const": "oct"}, "kid": {"type": "string"}, "alg": {"const": personal.ALG},
                  "enc": {"const": personal.ENC}, "use": {"const": "enc"},
                  "k": {"type": "string", "description": "the 256-bit key, base64url"}}}
_TERM = {"type": "object", "required": ["id", "en", "de"], "properties": {
    "id": {"type": "string"}, "en": {"type": "string"}, "de": {"type": "string"},
    "synonyms": {"type": "array", "items": {"type": "string"}},
    "sectors": {"type": "array", "items": {"type": "string"}}, "category": {"type": ["string", "null"]},
    "topics": {"type": "array", "items": {"type": "string"}},
    "related": {"type": "array", "items": {"type": "string"}}}}
VOCABULARY = {"type": "object", "required": ["competencies", "topics", "categories"], "properties": {
    "competencies": {"type": "array", "items": _TERM}, "topics": {"type": "array", "items": _TERM},
    "categories": {"type": "array", "items": {"type": "object", "required": ["id", "en", "de"], "properties": {
        "id": {"type": "string"}, "en": {"type": "string"}, "de": {"type": "string"}}}}}}
_FIELD_ERRORS = {"type": "object", "description": "column of the file: its messages",
                 "additionalProperties": {"type": "array", "items": {"type": "string"}}}
IMPORT_REPORT = {"type": "object", "required": ["rows", "valid", "imported", "errors", "warnings", "dry_run"],
                 "properties": {
                     "rows": {"type": "integer", "description": "rows with content below the header"},
                     "valid": {"type": "integer"}, "dry_run": {"type": "boolean"},
                     "invited": {"type": "integer", "description": "sign-in links mailed (?invite)"},
                     "imported": {"type": "array", "items": {"type": "object", "required": ["row", "id", "name"],
                                                             "properties": {"row": {"type": "integer"},
                                                                            "id": {"type": "string"},
                                                                            "name": {"type": "string"}}}},
                     "errors": {"type": "array", "items": {"type": "object", "required": ["row", "errors"],
                                                           "properties": {"row": {"type": "integer"},
                                                                          "errors": _FIELD_ERRORS}}},
                     "warnings": {"type": "array", "items": {"type": "object", "required": ["code", "message"],
                                                             "properties": {
                                                                 "code": {"enum": ["unknown_columns",
                                                                                   "duplicate_columns"]},
                                                                 "columns": {"type": "array",
                                                                             "items": {"type": "string"}},
                                                                 "message": {"type": "string"}}}}}}
IMPORT_BODY = {"text/csv": {"schema": {"type": "string"}},
               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
                   {"schema": {"type": "string", "format": "binary"}}}


# An AMQP topic pattern of an integrator scope: words of lowercase names, '*' or '#', joined by dots.
TOPIC_PATTERN = r"^(\*|#|[a-z][a-z0-9_-]*)(\.(\*|#|[a-z][a-z0-9_-]*))*$"
INTEGRATOR_NAME = r"^[a-z0-9][a-z0-9-]{1,40}$"


class GrantSchema(Schema):
    """An integrator's grant as ``verbund integrator`` records it: ``PUT /integrators/{name}/grant``."""
    events = fields.List(fields.String(validate=validate.Regexp(TOPIC_PATTERN, error="not a topic pattern such as "
                                                                                      "'event.*'")),
                         required=True, validate=validate.Length(min=1, max=50))
    personal = StrictBoolean(load_default=False)


class IntegratorSchema(GrantSchema):
    """A new integrator from the admin pages: ``POST /integrators``; its scope is checked against the
    event catalogue as ``verbund integrator --events`` checks it."""
    name = fields.String(required=True, validate=validate.Regexp(
        INTEGRATOR_NAME, error="an integrator name is 2-41 lowercase letters, digits or dashes"))

    @validates("events")
    def _known_patterns(self, value, **kwargs):
        from verbund.tools.integrators import ScopeError, parse_scope

        try:
            parse_scope(",".join(value))
        except ScopeError as exc:
            raise ValidationError(str(exc).replace("--events", "events")) from None


GRANT = {"type": "object", "required": ["name", "events", "personal", "serial", "granted_at"], "properties": {
    "name": {"type": "string"}, "events": {"type": "array", "items": {"type": "string"}},
    "personal": {"type": "boolean"},
    "serial": {"type": "integer", "description": "the `grant` claim of the tokens issued under this grant"},
    "granted_at": {"type": "string", "format": "date-time"},
    "revoked_at": {"type": ["string", "null"], "format": "date-time",
                   "description": "when an admin revoked the integrator; its tokens are void since"}}}
INTEGRATOR_LIST = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": GRANT}}}
NEW_INTEGRATOR = {"type": "object", "required": [*GRANT["required"], "user", "uri", "token", "expires_at"],
                  "properties": {**GRANT["properties"],
                                 "user": {"type": "string", "description": "its RabbitMQ user"},
                                 "uri": {"type": "string", "description": "AMQP URI with the password: shown once"},
                                 "token": {"type": "string", "description": "bearer token: shown once"},
                                 "expires_at": {"type": "string", "format": "date-time"}}}


# --- sign-in by e-mail link and contact requests -------------------------------------------------------

class SignInRequestSchema(Schema):
    """``POST /auth/sign-in-requests``: the contact e-mail of a member organisation."""
    email = Email(required=True, validate=validate.Length(max=320),
                  metadata={"description": "the organisation's contact e-mail"})
    language = Text(load_default=None, allow_none=True, validate=validate.OneOf(LANGUAGES),
                    metadata={"description": "the language of the page asking; the mail is in the member's "
                                             "own language when it has one"})


class TokenExchangeSchema(Schema):
    """``POST /auth/tokens``: the secret of a sign-in link."""
    sign_in_token = Text(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"description": "the last part of the link {PORTAL_URL}/sign-in/{token}"})


class EmailConfirmationSchema(Schema):
    """``POST /auth/email-confirmations``: the secret of a confirmation link."""
    token = Text(required=True, validate=validate.Length(min=1, max=200),
                 metadata={"description": "the last part of the link {PORTAL_URL}/email-confirmation/{token}"})


class ContactRequestSchema(Schema):
    """``POST /members/{id}/contact-requests``: a short introduction for the member asked."""
    message = Text(required=True, multiline=True, validate=validate.Length(min=1, max=1000),
                   metadata={"description": "who you are and why you would like to get in touch, 1-1000 characters"})


class ContactListQuerySchema(Schema):
    direction = Text(load_default=None, validate=validate.OneOf(("incoming", "outgoing")),
                     metadata={"description": "incoming: asked of you; outgoing: your own; both when left out"})
    status = Text(load_default=None, validate=validate.OneOf(("pending", "accepted", "declined", "expired")))


class StaffSchema(Schema):
    """``POST /staff``: invite an organizer (of one association) or an admin."""
    email = Email(required=True, validate=validate.Length(max=320))
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    role = Text(required=True, validate=validate.OneOf(("organizer", "admin")))
    association = Text(load_default=None, allow_none=True, validate=validate.OneOf(sorted(ASSOCIATIONS)),
                       metadata={"description": "the organizer's association; required for organizers, "
                                                "ignored for admins"})
    language = Text(load_default="de", validate=validate.OneOf(LANGUAGES),
                    metadata={"description": "the language of the invitation and of the account's mails"})

    @validates_schema(skip_on_field_errors=False)
    def _organizer_has_association(self, data, **kwargs):
        if data.get("role") == "organizer" and not data.get("association"):
            raise ValidationError("an organizer belongs to one association", "association")


SIGN_IN_SENT = {"type": "object", "required": ["status"], "properties": {"status": {"const": "sent"}},
                "description": "The same answer for every address: a link is mailed if the address is a member's."}
MEMBER_TOKEN = {"type": "object", "required": ["token", "expires_in", "member_id", "role", "language"], "properties": {
    "token": {"type": "string", "description": "the member's bearer token (JWT)"},
    "expires_in": {"type": "integer", "description": "seconds the token is valid"},
    "member_id": {"type": "string", "format": "uuid"}, "role": {"const": "member"},
    "language": {"enum": list(LANGUAGES)}}}
STAFF_TOKEN = {"type": "object", "required": ["token", "expires_in", "staff_id", "role", "language"], "properties": {
    "token": {"type": "string", "description": "the staff account's bearer token (JWT with claim staff_id)"},
    "expires_in": {"type": "integer", "description": "seconds the token is valid (12 hours)"},
    "staff_id": {"type": "string", "format": "uuid"}, "role": {"enum": ["organizer", "admin"]},
    "association": {"enum": sorted(ASSOCIATIONS), "description": "organizers only"},
    "language": {"enum": list(LANGUAGES)}}}
TOKEN = {"oneOf": [MEMBER_TOKEN, STAFF_TOKEN]}
STAFF = {"type": "object", "required": ["id", "email", "name", "role", "association", "status", "invited_by",
                                        "created_at"], "properties": {
    "id": {"type": "string", "format": "uuid"}, "email": {"type": "string", "format": "email"},
    "name": {"type": "string"}, "role": {"enum": ["organizer", "admin"]},
    "association": {"enum": [*sorted(ASSOCIATIONS), None]}, "language": {"enum": list(LANGUAGES)},
    "status": {"enum": ["active", "revoked"]},
    "invited_by": {"type": ["string", "null"], "description": "the inviting admin's staff id, or cli"},
    "created_at": {"type": "string", "format": "date-time"},
    "revoked_at": {"type": ["string", "null"], "format": "date-time"}}}
STAFF_LIST = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": STAFF}}}
ME = {"type": "object", "required": ["role", "subject"], "properties": {
    "role": {"enum": ["admin", "organizer", "member", "integrator"]}, "subject": {"type": "string"},
    "member_id": {"type": "string", "format": "uuid"}, "staff_id": {"type": "string", "format": "uuid"},
    "name": {"type": "string"}, "email": {"type": "string"},
    "association": {"type": ["string", "null"]}, "language": {"enum": list(LANGUAGES)},
    "events": {"type": "array", "items": {"type": "string"}}}}
CONTACT_REQUEST = {"type": "object", "required": ["id", "requester_id", "recipient_id", "requester_name",
                                                  "recipient_name", "message", "status", "created_at",
                                                  "expires_at"], "properties": {
    "id": {"type": "string", "format": "uuid"}, "requester_id": {"type": "string", "format": "uuid"},
    "recipient_id": {"type": "string", "format": "uuid"},
    "requester_name": {"type": ["string", "null"]}, "recipient_name": {"type": ["string", "null"]},
    "message": {"type": "string"}, "status": {"enum": ["pending", "accepted", "declined", "expired"]},
    "created_at": {"type": "string", "format": "date-time"},
    "expires_at": {"type": "string", "format": "date-time"},
    "answered_at": {"type": ["string", "null"], "format": "date-time"}}}
CONTACT_REQUESTS = {"type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": CONTACT_REQUEST}}}
CONTACT_DETAILS = {"type": "object", "required": ["contact_name", "contact_email"], "properties": {
    "contact_name": {"type": ["string", "null"]}, "contact_email": {"type": ["string", "null"], "format": "email"},
    "phone": {"type": ["string", "null"], "description": "not collected yet; left out"}}}

_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
_SCOPE = {"type": "string", "description": "the association, or cooperation for the totals"}
MEMBER_STATS = {"type": "object", "required": ["scope", "total", "by_sector", "by_state", "by_size", "sme", "growth"],
                "properties": {
    "scope": _SCOPE, "total": {"type": "integer", "description": "registered members (erased ones not counted)"},
    "by_sector": {**_COUNTS, "description": "sector id: members"},
    "by_state": {**_COUNTS, "description": "ISO 3166-2:DE state code (Bundesland): members"},
    "by_size": {**_COUNTS, "description": "micro, small, medium, large (EU Recommendation 2003/361/EC): members"},
    "sme": {"type": "integer", "description": "micro, small and medium-sized members"},
    "growth": {"type": "array", "description": "per calendar month (Europe/Berlin) from the first member's",
               "items": {"type": "object", "required": ["month", "joined", "total"], "properties": {
                   "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                   "joined": {"type": "integer"}, "total": {"type": "integer"}}}}}}
CONTACT_STATS = {"type": "object", "required": ["scope", "sent", "accepted", "declined", "pending", "expired"],
                 "properties": {"scope": _SCOPE, **{key: {"type": "integer"} for key in (
                     "sent", "accepted", "declined", "pending", "expired")}}}
_SINCE = {"type": "string", "format": "date-time"}
CARDS = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
    "type": "object", "required": ["id", "name", "sector", "state"], "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
        "sector": {"type": ["string", "null"]},
        "state": {"type": ["string", "null"], "description": "the Bundesland's code (BW, BY, ...)"}}}}}}
CONTACTS = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
    "type": "object", "required": ["member_id", "name", "contact_name", "contact_email", "via"], "properties": {
        "member_id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
        "contact_name": {"type": ["string", "null"]}, "contact_email": {"type": ["string", "null"]},
        "via": {"type": "array", "description": "how the two are in contact, oldest first", "items": {"oneOf": [
            {"type": "object", "required": ["kind", "request_id", "since"], "properties": {
                "kind": {"const": "contact_request"}, "request_id": {"type": "string", "format": "uuid"},
                "since": _SINCE}},
            {"type": "object", "required": ["kind", "project_id", "title", "since"], "properties": {
                "kind": {"const": "project"}, "project_id": {"type": "string"},
                "title": {"type": "string", "description": "the partner project's title"},
                "since": _SINCE}}]}}}}}}}
