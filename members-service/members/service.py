"""members-service entrypoints: HTTP and RPC. Each hands its work to
``members.commands`` inside one transaction and returns the result."""
from __future__ import annotations

from nameko.rpc import rpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from members import commands, importer
from members.messages import Messages, negotiate
from members.schemas import ImportQuerySchema, ListQuerySchema, MemberSchema, VocabularyQuerySchema
from verbund import auth, personal
from verbund.errors import BadRequest, Conflict
from verbund.openapi import Extended
from verbund.service import ServiceBase
from verbund.vocabulary import load as load_vocabulary
from verbund.web import ANYONE, api, json_body, json_response

MAX_IMPORT_BYTES = 10 * 1024 * 1024
STAFF = ("admin", "organizer")
READERS = ("admin", "organizer", "integrator", "member")


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
IMPORT_BODY = {"text/csv": {"schema": {"type": "string"}},
               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
                   {"schema": {"type": "string", "format": "binary"}}}


def _if_match(request) -> int | None:
    """The version an If-Match header asks for, as in ETag "<version>"."""
    value = request.headers.get("If-Match")
    if not value:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise BadRequest('If-Match must be an ETag this API sent, such as "3"') from None


def _visible(principal: auth.Principal, profile: dict) -> dict:
    """The profile as ``principal`` may see it: an integrator whose token does not grant personal data
    sees the contact's language, not the person (GDPR art. 5(1)(c), as in the events it receives)."""
    if principal.role != "integrator" or principal.personal:
        return profile
    return {**profile, "contact": {"name": None, "email": None, "language": profile["contact"]["language"]}}


def _member_response(profile: dict, status: int = 200, **extra):
    return json_response({**profile, **extra}, status, headers={"ETag": f'"{profile["version"]}"'})


class MembersService(ServiceBase):
    name = "members"

    @api("POST", "/members", roles=ANYONE, body=MemberSchema, load_body=False, errors=(409, 413),
         responses={201: ("The profile, with the member's own access_token", REGISTERED)})
    def register(self, request):
        """Register a member organisation (self-registration or by staff)."""
        data = json_body(request)
        try:
            with self.db.transaction() as session:
                profile = commands.register(session, data)
        except IntegrityError:  # a concurrent registration of the same organisation won the race
            raise Conflict("this organisation is already registered at this postcode", field="name") from None
        token = auth.issue("member", f"member:{profile['id']}", member_id=profile["id"])
        return _member_response(profile, 201, access_token=token)

    @api("GET", "/members/<uuid:member_id>", roles=READERS, errors=(410,),
         responses={200: ("The profile; ETag is its version", PROFILE)})
    def get_member(self, request, member_id):
        """Read a member's profile."""
        with self.db.transaction() as session:
            return _member_response(_visible(request.principal, commands.get(session, request.principal,
                                                                              str(member_id))))

    @api("PATCH", "/members/<uuid:member_id>", roles=("admin", "organizer", "member"), body=MemberSchema,
         load_body=False, errors=(409, 410, 412), responses={200: ("The profile at its new version", PROFILE)})
    def update_member(self, request, member_id):
        """Change a profile with a JSON Merge Patch of any of its fields; If-Match optional."""
        patch = json_body(request)
        try:
            with self.db.transaction() as session:
                profile = commands.update(session, request.principal, str(member_id), patch, _if_match(request))
        except (StaleDataError, IntegrityError):
            raise Conflict("the member changed at the same time; read it again and retry") from None
        return _member_response(profile)

    @api("DELETE", "/members/<uuid:member_id>", roles=("admin", "member"), errors=(410,),
         responses={204: "Erased; member.deleted is on its way"})
    def delete_member(self, request, member_id):
        """Erase a member (GDPR): a tombstone stays, every service forgets it."""
        with self.db.transaction() as session:
            commands.erase(session, request.principal, str(member_id))
        return json_response(None, 204)

    @api("GET", "/members/<uuid:member_id>/key", roles=("admin", "integrator"), errors=(410,),
         responses={200: ("The member's key (JWK); keep it no longer than Cache-Control says", MEMBER_KEY)})
    def get_member_key(self, request, member_id):
        """The key to a member's encrypted personal fields: admins and integrators entitled to personal data;
        410 once the member is erased."""
        with self.db.transaction() as session:
            key = commands.member_key(session, request.principal, str(member_id))
        return json_response(key, headers={"Cache-Control": f"private, max-age={int(personal.key_ttl_seconds())}"})

    @api("GET", "/members", roles=STAFF + ("integrator",), query=ListQuerySchema,
         responses={200: ("A page of profiles", PAGE)})
    def list_members(self, request):
        """List and filter members, a page at a time."""
        query = ListQuerySchema().load(request.args.to_dict())
        with self.db.transaction() as session:
            found = commands.search(session, query)
        return {**found, "items": [_visible(request.principal, profile) for profile in found["items"]]}

    @api("POST", "/members/import", roles=STAFF, max_body=MAX_IMPORT_BYTES, body=IMPORT_BODY,
         query=ImportQuerySchema, errors=(409, 413, 415),
         responses={200: ("Which rows were imported, which not and why", {"type": "object"})})
    def import_members(self, request):
        """Import a member list from CSV or Excel, with a per-row report."""
        messages = Messages(negotiate(request.accept_languages))
        table = importer.read_table(request.get_data(), request.headers.get("Content-Type", ""), messages)
        dry_run = ImportQuerySchema().load(request.args.to_dict())["dry_run"]
        try:
            with self.db.transaction() as session:
                report = commands.import_members(session, table.rows, dry_run=dry_run, messages=messages,
                                                 warnings=table.warnings)
        except IntegrityError:
            raise Conflict(messages.text("registered_meanwhile")) from None
        return json_response(report, headers={"Content-Language": messages.language, "Vary": "Accept-Language"})

    @api("GET", "/vocabulary", roles=ANYONE, query=VocabularyQuerySchema,
         responses={200: ("Competency terms, topics, categories", {"type": "object"})})
    def vocabulary(self, request):
        """The curated vocabulary; ?q= searches the competency labels and synonyms."""
        vocabulary = load_vocabulary()
        query = VocabularyQuerySchema().load(request.args.to_dict())["q"]
        terms = vocabulary.search(query, limit=50) if query else vocabulary.competencies.values()
        return {"competencies": [term.as_dict() for term in terms],
                "topics": [topic.as_dict() for topic in vocabulary.topics.values()],
                "categories": list(vocabulary.categories.values())}

    @rpc
    def get_profile(self, member_id: str) -> dict | None:
        """A live member's profile, or None."""
        with self.db.transaction() as session:
            try:
                return commands.get(session, auth.Principal("rpc", "admin"), member_id)
            except (commands.NotFound, commands.Gone):
                return None

    @rpc
    def profiles_after(self, after_id: str | None = None, limit: int = 500) -> dict:
        """Live profiles in id order from ``after_id`` on, for rebuilding read models."""
        with self.db.transaction() as session:
            return commands.profiles_after(session, after_id, min(max(limit, 1), 1000))

    @rpc
    def member_key(self, member_id: str) -> dict:
        """A member's key as a JWK, for services decrypting its events' personal fields (the RPC
        exchange is the services' alone); raises KeyErased for an erased or unknown member."""
        with self.db.transaction() as session:
            try:
                return commands.member_key(session, None, member_id)
            except (commands.NotFound, commands.Gone) as exc:
                raise personal.KeyErased(str(exc)) from None
