"""members-service entrypoints: HTTP and RPC. Each parses (the ``@api`` entrypoint loads the declared
schemas into ``request.body_data`` and ``request.query_data``), authorises, calls one use case
(``members.services``, in one unit of work) or query (``members.queries``), and answers."""
from __future__ import annotations

import re

from nameko.rpc import rpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import RequestEntityTooLarge

from members import domain, importer, queries, schemas, services
from members.messages import Messages, negotiate
from verbund import auth, personal
from verbund.errors import AppError, Conflict, Gone, NotFound, PayloadTooLarge, Unprocessable
from verbund.service import ServiceBase
from verbund.web import ANYONE, api, error_response, if_match, json_body, json_response

MAX_IMPORT_BYTES = 10 * 1024 * 1024
STAFF = ("admin", "organizer")
READERS = ("admin", "organizer", "integrator", "member")




def _member_response(profile: dict, status: int = 200, **extra):
    return json_response({**profile, **extra}, status, headers={"ETag": f'"{profile["version"]}"'})


class MembersService(ServiceBase):
    name = "members"

    @api("POST", "/members", roles=ANYONE, body=schemas.MemberSchema, errors=(409, 413),
         responses={201: ("The profile, with the member's own access_token", schemas.REGISTERED)})
    def register(self, request):
        """Register a member organisation (self-registration or by staff)."""
        try:
            with self.db.unit_of_work() as uow:
                profile = services.register(uow, request.body_data)
        except IntegrityError:  # a concurrent registration of the same organisation won the race
            raise Conflict("this organisation is already registered at this postcode", field="name") from None
        token = auth.issue("member", f"member:{profile['id']}", member_id=profile["id"])
        return _member_response(profile, 201, access_token=token)

    @api("GET", "/members/<uuid:member_id>", roles=READERS, errors=(410,),
         responses={200: ("The profile; ETag is its version", schemas.PROFILE)})
    def get_member(self, request, member_id):
        """Read a member's profile."""
        with self.db.unit_of_work() as uow:
            grant = queries.integrator_grant(uow.session, request.principal)
            profile = queries.get(uow.session, request.principal, str(member_id))
        return _member_response(domain.visible(request.principal, profile, grant))

    @api("PATCH", "/members/<uuid:member_id>", roles=("admin", "organizer", "member"), body=schemas.MemberSchema,
         load_body=False, errors=(409, 410, 412),
         responses={200: ("The profile at its new version", schemas.PROFILE)})
    def update_member(self, request, member_id):
        """Change a profile with a JSON Merge Patch of any of its fields; If-Match optional."""
        # load_body=False: a merge patch is validated once merged with the stored profile (RFC 7396).
        patch, expected_version = json_body(request), if_match(request)
        try:
            with self.db.unit_of_work() as uow:
                profile = services.update(uow, request.principal, str(member_id), patch, expected_version)
        except (StaleDataError, IntegrityError):
            raise Conflict("the member changed at the same time; read it again and retry") from None
        return _member_response(profile)

    @api("DELETE", "/members/<uuid:member_id>", roles=("admin", "member"), errors=(410,),
         responses={204: "Erased; member.deleted is on its way"})
    def delete_member(self, request, member_id):
        """Erase a member (GDPR): a tombstone stays, every service forgets it."""
        with self.db.unit_of_work() as uow:
            services.erase(uow, request.principal, str(member_id))
        return json_response(None, 204)

    @api("GET", "/members/<uuid:member_id>/key", roles=("admin", "integrator"), errors=(410,),
         responses={200: ("The member's key (JWK); keep it no longer than Cache-Control says",
                          schemas.MEMBER_KEY)})
    def get_member_key(self, request, member_id):
        """The key to a member's encrypted personal fields: admins and integrators entitled to personal data;
        410 once the member is erased."""
        with self.db.unit_of_work() as uow:
            key = queries.member_key(uow.session, request.principal, str(member_id))
        return json_response(key, headers={"Cache-Control": f"private, max-age={int(personal.key_ttl_seconds())}"})

    @api("GET", "/members", roles=STAFF + ("integrator",), query=schemas.ListQuerySchema,
         responses={200: ("A page of profiles", schemas.PAGE)})
    def list_members(self, request):
        """List and filter members, a page at a time."""
        with self.db.unit_of_work() as uow:
            grant = queries.integrator_grant(uow.session, request.principal)
            found = queries.search(uow.session, request.query_data)
        return {**found, "items": [domain.visible(request.principal, profile, grant) for profile in found["items"]]}

    @api("PUT", "/integrators/<string:name>/grant", roles=("admin",), body=schemas.GrantSchema, errors=(409,),
         responses={200: ("The integrator's grant; its serial goes into the tokens' grant claim", schemas.GRANT)})
    def record_grant(self, request, name):
        """Record an integrator's grant (``verbund integrator`` does): older tokens lose personal data."""
        if not re.match(schemas.INTEGRATOR_NAME, name):
            raise Unprocessable("validation failed", fields={"name": [
                "an integrator name is 2-41 lowercase letters, digits or dashes"]})
        try:
            with self.db.unit_of_work() as uow:
                return services.record_grant(uow, name, request.body_data)
        except IntegrityError:  # the same integrator's first grant recorded at the same time
            raise Conflict("the integrator's grant changed at the same time; run the command again") from None

    @api("POST", "/members/import", roles=STAFF, max_body=MAX_IMPORT_BYTES, body=schemas.IMPORT_BODY,
         query=schemas.ImportQuerySchema, errors=(409, 413, 415),
         responses={200: ("Which rows were imported, which not and why", schemas.IMPORT_REPORT)})
    def import_members(self, request):
        """Import a member list from CSV or Excel, with a per-row report."""
        messages = Messages(negotiate(request.accept_languages))
        # Refusals (400, 409, 413, 415) are in the requester's language as well, and say so.
        language = {"Content-Language": messages.language, "Vary": "Accept-Language"}
        try:
            try:
                content = request.get_data()
            except RequestEntityTooLarge:
                raise PayloadTooLarge(messages.text("too_large", max_bytes=MAX_IMPORT_BYTES)) from None
            table = importer.read_table(content, request.headers.get("Content-Type", ""), messages)
            try:
                with self.db.unit_of_work() as uow:
                    report = services.import_members(uow, table.rows, dry_run=request.query_data["dry_run"],
                                                     messages=messages, warnings=table.warnings)
            except IntegrityError:
                raise Conflict(messages.text("registered_meanwhile")) from None
        except AppError as exc:
            response = error_response(exc.status, exc.message, **exc.details)
            response.headers.update(language)
            return response
        return json_response(report, headers=language)

    @api("GET", "/vocabulary", roles=ANYONE, query=schemas.VocabularyQuerySchema,
         responses={200: ("Competency terms, topics, categories", schemas.VOCABULARY)})
    def vocabulary(self, request):
        """The curated vocabulary; ?q= searches the competency labels and synonyms."""
        return queries.vocabulary(request.query_data["q"])

    @rpc
    def get_profile(self, member_id: str) -> dict | None:
        """A live member's profile, or None."""
        with self.db.unit_of_work() as uow:
            try:
                return queries.get(uow.session, auth.Principal("rpc", "admin"), member_id)
            except (NotFound, Gone):
                return None

    @rpc
    def profiles_after(self, after_id: str | None = None, limit: int = 500) -> dict:
        """Live profiles in id order from ``after_id`` on, for rebuilding read models."""
        with self.db.unit_of_work() as uow:
            return queries.profiles_after(uow.session, after_id, min(max(limit, 1), 1000))

    @rpc
    def member_key(self, member_id: str) -> dict:
        """A member's key as a JWK, for services decrypting its events' personal fields (the RPC
        exchange is the services' alone); raises KeyErased for an erased or unknown member."""
        with self.db.unit_of_work() as uow:
            try:
                return queries.member_key(uow.session, None, member_id)
            except (NotFound, Gone) as exc:
                raise personal.KeyErased(str(exc)) from None
