"""members-service entrypoints: HTTP and RPC. Each parses (the ``@api`` entrypoint loads the declared
schemas into ``request.body_data`` and ``request.query_data``), authorises, calls one use case
(``members.services``, in one unit of work) or query (``members.queries``), and answers."""
from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import RequestEntityTooLarge

from members import domain, importer, queries, schemas, services
from members.dependencies import SignInMail, StaffInvitationMail
from members.messages import Messages, negotiate
from verbund import auth, personal, stats
from verbund.errors import AppError, Conflict, Gone, NotFound, PayloadTooLarge, ServiceUnavailable, Unprocessable
from verbund.rpc import rpc
from verbund.service import ServiceBase
from verbund.settings import env
from verbund.subscriber import subscribe
from verbund.web import ANYONE, api, error_response, if_match, json_body, json_response

MAX_IMPORT_BYTES = 10 * 1024 * 1024
STAFF = ("admin", "organizer")
READERS = ("admin", "organizer", "integrator", "member")
# Proxies whose X-Forwarded-For names the client a sign-in request counts against (the portal).
TRUSTED_PROXIES = tuple(env("TRUSTED_PROXIES", ["127.0.0.1", "::1"], service="members", kind="list"))


def broker_admin_uri() -> str:
    """``BROKER_ADMIN_URI`` (also ``MEMBERS_BROKER_ADMIN_URI``): an AMQP URI of an account that may remove
    integrators' bindings and queues, whose vhost is the integrators' one; the service's ``AMQP_URI`` by
    default. Users and permissions are set with rabbitmqctl on the broker's node, as the CLI does."""
    from verbund.settings import DEFAULT_AMQP_URI

    return env("BROKER_ADMIN_URI", service="members") or env("AMQP_URI", DEFAULT_AMQP_URI, service="members")


def _client(request) -> str:
    return domain.client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), TRUSTED_PROXIES)


def _member_response(profile: dict, status: int = 200, **extra):
    return json_response({**profile, **extra}, status, headers={"ETag": f'"{profile["version"]}"'})


class MembersService(ServiceBase):
    name = "members"
    sign_in_mail = SignInMail()
    staff_invitation = StaffInvitationMail()

    @staticmethod
    def staff_active_here(container, staff_id: str) -> bool:
        """The staff check of ``verbund.staff`` answered from this service's own database, on every
        request: a revocation holds here from the very next request."""
        database = next(dependency for dependency in container.dependencies if dependency.attr_name == "db")
        with Session(database.engine) as session:
            return queries.staff_active(session, staff_id)

    @api("POST", "/members", roles=ANYONE, body=schemas.MemberSchema, errors=(409, 413),
         responses={201: ("The profile, with the member's own access_token", schemas.REGISTERED)})
    def register(self, request):
        """Register a member organisation (self-registration or by staff). 409 when the organisation
        (field ``name``) or its contact e-mail (field ``contact.email``, case-insensitive) is another
        organisation's already. A self-registration has a sign-in link mailed to the contact e-mail,
        which also confirms the address (counted against the per-address limit of sign-in links, 429
        beyond it, not the per-client one); staff registering a firm mail nothing, as an import does."""
        self_registration = request.principal.role not in STAFF
        try:
            with self.db.unit_of_work() as uow:
                profile = services.register(uow, request.body_data, mail_link=self_registration)
                # the link's token in the registration's own transaction (one commit, not two)
                link = (services.issue_sign_in_link(uow, services.registration_mail(profile))
                        if self_registration else None)
        except IntegrityError:  # a concurrent registration of the same organisation won the race
            raise Conflict("this organisation is already registered at this postcode", field="name") from None
        if link is not None:
            self.sign_in_mail([link])
        token = auth.issue("member", f"member:{profile['id']}", member_id=profile["id"],
                           ttl=services.sign_in_policy().member_token_ttl)
        return _member_response(profile, 201, access_token=token)

    def _mail_links(self, recipients: list[dict]) -> None:
        """Have notifications mail each recipient a fresh sign-in link, after the answer (``SignInMail``)."""
        store = self.db

        def issue(recipient: dict) -> dict:
            with store.unit_of_work() as uow:
                return services.issue_sign_in_link(uow, recipient)

        self.sign_in_mail(recipients, issue)

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
        """Change a profile with a JSON Merge Patch of any of its fields; If-Match optional. A new
        ``contact.email`` is not used until confirmed: the profile keeps the old address and shows the
        new one as ``contact.pending_email``; a link valid 24 hours goes to the new address
        (``POST /auth/email-confirmations``), a notice to the old one. ``{"contact":
        {"pending_email": null}}`` withdraws the change. 409 when the new address is another organisation's (field
        ``contact.email``); 429 beyond the per-address limit of links."""
        # load_body=False: a merge patch is validated once merged with the stored profile (RFC 7396).
        patch, expected_version = json_body(request), if_match(request)
        mails: list[dict] = []
        try:
            with self.db.unit_of_work() as uow:
                profile = services.update(uow, request.principal, str(member_id), patch, expected_version, mails)
        except (StaleDataError, IntegrityError):
            raise Conflict("the member changed at the same time; read it again and retry") from None
        if mails:
            self.sign_in_mail(mails)
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

    @api("GET", "/members/cards", roles=("admin", "organizer", "member"), query=schemas.CardsQuerySchema,
         responses={200: ("Name, sector and Bundesland of each live member asked for", schemas.CARDS)})
    def member_cards(self, request):
        """Name, sector and Bundesland of up to 100 organisations in one call (``?ids=a,b,c``): ``{items: [{id,
        name, sector, state}]}`` in the order asked, unknown or erased ids left out. For members too: these
        are the organisation's own public facts (no contact person, no e-mail), what the portal shows on a
        partner suggestion, a matchmaking candidate or a meeting. 422 no id, more than 100, or one that is no
        UUID."""
        with self.db.unit_of_work() as uow:
            return queries.cards(uow.session, request.query_data["ids"])

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

    @api("GET", "/integrators", roles=("admin",), responses={200: ("Every integrator", schemas.INTEGRATOR_LIST)})
    def list_integrators(self, request):
        """The integrators with a recorded grant, active first: ``{"items": [grant with revoked_at]}``."""
        with self.db.unit_of_work() as uow:
            return queries.integrators(uow.session)

    @api("POST", "/integrators", roles=("admin",), body=schemas.IntegratorSchema, errors=(409, 503),
         responses={201: ("The integrator with its connection URI and token, shown this once", schemas.NEW_INTEGRATOR)})
    def create_integrator(self, request):
        """Create an integrator (what ``verbund integrator NAME`` does, on the same kit code): body
        ``{name, events: [topic patterns of the catalogue], personal}``. Its RabbitMQ user gets read
        access within ``events`` on the broker of ``BROKER_ADMIN_URI`` (members' setting; default its
        ``AMQP_URI``; the URI's vhost is the integrator's). 201 with ``uri`` (AMQP URI with the generated
        password) and ``token``, neither stored: shown once. 409 field ``name`` an active integrator of that
        name; 422 field errors; 503 the broker refused (nothing recorded)."""
        from verbund.tools import integrators

        admin_uri = broker_admin_uri()
        vhost = integrators.vhost_of(admin_uri)

        def provision(name, scope, personal, serial):
            return integrators.provision(name, scope, personal, serial, admin_uri, vhost=vhost)

        try:
            with self.db.unit_of_work() as uow:
                return 201, services.create_integrator(uow, request.body_data, provision)
        except IntegrityError:  # the same name created twice at the same time
            raise Conflict("an integrator of this name exists", field="name") from None
        except RuntimeError as exc:
            raise ServiceUnavailable(f"the broker refused the integrator; nothing was recorded: {exc}") from None

    @api("POST", "/integrators/<string:name>/revoke", roles=("admin",), errors=(503,),
         responses={200: ("The integrator, revoked", schemas.GRANT)})
    def revoke_integrator(self, request, name):
        """Revoke an integrator: its tokens are refused from the next request on (here at once, elsewhere
        within ``STAFF_CHECK_TTL_SECONDS``), its RabbitMQ user (with its permissions and connections) and
        its queues ``integrator.<name>.*`` are deleted, and ``integrator.revoked`` announces it (through the
        outbox: notifications-service disables its webhooks, also when it consumes the event later).
        ``verbund integrator NAME --revoke`` calls this. 404 no such integrator; 503 the broker refused
        (nothing changed: run it again)."""
        from verbund.tools import integrators

        admin_uri = broker_admin_uri()
        try:
            with self.db.unit_of_work() as uow:
                return services.revoke_integrator(
                    uow, name, lambda who: integrators.remove(who, admin_uri, integrators.vhost_of(admin_uri)))
        except RuntimeError as exc:
            raise ServiceUnavailable(f"the broker refused to remove the integrator; nothing changed: {exc}") from None

    @api("POST", "/members/import", roles=STAFF, max_body=MAX_IMPORT_BYTES, body=schemas.IMPORT_BODY,
         query=schemas.ImportQuerySchema, errors=(409, 413, 415),
         responses={200: ("Which rows were imported, which not and why", schemas.IMPORT_REPORT)})
    def import_members(self, request):
        """Import a member list from CSV or Excel, with a per-row report. ``?invite=consented|all`` mails
        the imported members a sign-in link (those whose row gave e-mail consent, or all); ``invited``
        in the answer says how many."""
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
                    report = services.import_members(uow, request.principal, table.rows,
                                                     dry_run=request.query_data["dry_run"],
                                                     messages=messages, warnings=table.warnings)
                    invitations = services.import_invitations(uow, report, request.query_data["invite"])
            except IntegrityError:
                raise Conflict(messages.text("registered_meanwhile")) from None
        except AppError as exc:
            response = error_response(exc.status, exc.message, **exc.details)
            response.headers.update(language)
            return response
        if invitations:  # after the commit, as for a sign-in request: the secret only on the RPC exchange
            store = self.db

            def issue(recipient: dict) -> dict:
                with store.unit_of_work() as uow:
                    return services.issue_sign_in_link(uow, recipient)

            self.sign_in_mail(invitations, issue)
        report["invited"] = len(invitations)
        return json_response(report, headers=language)

    @api("GET", "/vocabulary", roles=ANYONE, query=schemas.VocabularyQuerySchema,
         responses={200: ("Competency terms, topics, categories", schemas.VOCABULARY)})
    def vocabulary(self, request):
        """The curated vocabulary; ?q= searches the competency labels and synonyms."""
        return queries.vocabulary(request.query_data["q"])

    # --- sign-in by e-mail link ---------------------------------------------------------------------

    @api("POST", "/auth/sign-in-requests", roles=ANYONE, body=schemas.SignInRequestSchema, errors=(429,),
         responses={202: ("Accepted: a sign-in link is mailed if the address is a member's contact e-mail",
                          schemas.SIGN_IN_SENT)})
    def request_sign_in(self, request):
        """Ask for a sign-in link: body ``{"email", "language"?}``. Always 202 ``{"status": "sent"}``,
        for known and unknown addresses alike (no enumeration). For each member with that contact
        e-mail, notifications-service mails ``{PORTAL_URL}/sign-in/{token}`` in the member's language;
        the link works once, for 15 minutes (``SIGN_IN_TOKEN_TTL_SECONDS``). 429 with ``Retry-After``
        (seconds) beyond 5 requests an hour per address or 200 per client (``SIGN_IN_LIMIT_*``; the
        client is the peer, or the last ``X-Forwarded-For`` hop of a ``TRUSTED_PROXIES`` peer)."""
        body = request.body_data
        with self.db.unit_of_work() as uow:
            recipients = services.request_sign_in(uow, body["email"], _client(request), language=body["language"])
        if recipients:
            self._mail_links(recipients)
        return json_response({"status": "sent"}, 202)

    @api("POST", "/auth/email-confirmations", roles=ANYONE, body=schemas.EmailConfirmationSchema, errors=(409,),
         responses={200: ("The profile with the confirmed contact e-mail", schemas.PROFILE),
                    400: "The link is unknown, used, replaced by a newer one or expired (one message for all)"})
    def confirm_email(self, request):
        """Confirm a changed contact e-mail with the token of the link mailed to it (body ``{"token"}``):
        200 the profile, the new address in ``contact.email`` (``member.updated``). Each link works once,
        for 24 hours, and only the member's newest; 400 otherwise; 409 when another organisation has
        taken the address meanwhile (field ``contact.email``)."""
        with self.db.unit_of_work() as uow:
            return _member_response(services.confirm_email(uow, request.body_data["token"]))

    @api("POST", "/auth/tokens", roles=ANYONE, body=schemas.TokenExchangeSchema,
         responses={200: ("The bearer token of the account the link is for", schemas.TOKEN),
                    400: "The link is unknown, used or expired (one message for all three)"})
    def exchange_token(self, request):
        """Exchange a sign-in link's token (body ``{"sign_in_token"}``) for a bearer token. A member's
        link: 200 ``{token, expires_in (seconds), member_id, role: "member", language}``; a staff
        account's link (sign-in or invitation): 200 ``{token, expires_in, role: "organizer"|"admin",
        association (organizers), staff_id, language}``. Each link is for one account, and says which in
        its mail. Each link works once (of two exchanges at the same time one wins); 400 with the same
        message for an unknown, used or expired link, or a revoked account's."""
        with self.db.unit_of_work() as uow:
            return services.exchange_sign_in_token(uow, request.body_data["sign_in_token"])

    @api("GET", "/auth/me", roles=auth.ROLES, errors=(401,),
         responses={200: ("Who the token is for", schemas.ME)})
    def me(self, request):
        """Who the bearer token is for: ``{role, subject}`` plus ``member_id``, ``name``, ``language``
        (members), ``staff_id``, ``name``, ``email``, ``association``, ``language`` (staff accounts),
        ``events`` (integrators). 401 for a revoked staff account or an erased member."""
        with self.db.unit_of_work() as uow:
            return queries.me(uow.session, request.principal)

    # --- staff accounts -----------------------------------------------------------------------------

    @api("POST", "/staff", roles=("admin",), body=schemas.StaffSchema, errors=(409,),
         responses={201: ("The new staff account; the invitation is on its way", schemas.STAFF)})
    def add_staff(self, request):
        """Invite an organizer or admin: body ``{email, name, role: "organizer"|"admin", association
        (organizers), language?: "de"|"en"}``. 201 the account; the person gets an e-mail (in
        ``language``, German by default) with a sign-in link valid 3 days (``STAFF_INVITATION_TTL_SECONDS``).
        409 an active account has that address (a revoked one gives way to a new account with a new id, so
        its old tokens stay void); 422 field errors."""
        principal = request.principal
        try:
            with self.db.unit_of_work() as uow:
                account = services.add_staff(uow, request.body_data, principal.staff_id or "cli")
                link = services.invite_link(uow, account["id"])
                inviter = queries.me(uow.session, principal).get("name") if principal.staff_id else None
        except IntegrityError:  # the same address invited twice at the same time
            raise Conflict("a staff account with this e-mail address exists already", field="email") from None
        self.staff_invitation(link, inviter)
        return 201, account

    @api("GET", "/staff", roles=("admin",), responses={200: ("Every staff account", schemas.STAFF_LIST)})
    def list_staff(self, request):
        """The staff accounts, active ones first: ``{"items": [...]}``."""
        with self.db.unit_of_work() as uow:
            return queries.staff_accounts(uow.session)

    @api("POST", "/staff/<uuid:staff_id>/revoke", roles=("admin",), errors=(409,),
         responses={200: ("The account, revoked", schemas.STAFF)})
    def revoke_staff(self, request, staff_id):
        """Revoke a staff account: its tokens are refused from the next request on (here at once, in the
        other services within ``STAFF_CHECK_TTL_SECONDS``, 2 s), its open links stop working. 404 no such
        account; 409 one's own account."""
        with self.db.unit_of_work() as uow:
            return services.revoke_staff(uow, request.principal, str(staff_id))

    # --- dashboard figures --------------------------------------------------------------------------

    @api("GET", "/stats/members", roles=STAFF, query=stats.StatsQuerySchema,
         responses={200: ("Members by sector, region and size class, and their growth", schemas.MEMBER_STATS)})
    def member_stats(self, request):
        """Members of one association (``?association=``) or of the cooperation: ``{scope, total,
        by_sector, by_state, by_size, sme, growth: [{month, joined, total}]}``. Organizers see their own
        association's figures and the totals (403 another's), admins all."""
        association = stats.scope(request.principal, request.query_data["association"])
        with self.db.unit_of_work() as uow:
            return queries.member_stats(uow.session, association, uow.now())

    @api("GET", "/stats/contacts", roles=STAFF, query=stats.StatsQuerySchema,
         responses={200: ("Contact requests sent and what became of them", schemas.CONTACT_STATS)})
    def contact_stats(self, request):
        """Contact requests sent by members of one association (``?association=``) or by any member:
        ``{scope, sent, accepted, declined, pending, expired}``. Authorization as ``/stats/members``."""
        association = stats.scope(request.principal, request.query_data["association"])
        with self.db.unit_of_work() as uow:
            return queries.contact_stats(uow.session, association, uow.now())

    # --- contact requests ---------------------------------------------------------------------------

    @api("POST", "/members/<uuid:member_id>/contact-requests", roles=("member",), body=schemas.ContactRequestSchema,
         errors=(409, 410, 429), responses={201: ("The request, pending", schemas.CONTACT_REQUEST)})
    def request_contact(self, request, member_id):
        """Ask member ``member_id`` for contact with a message (1-1000 characters). 201 the request
        (pending; expires after 14 days unanswered). 409 when a request between the two is pending,
        they are in contact already, or the member declined the caller's request within 30 days; 422
        asking oneself; 429 (``Retry-After``) beyond 10 requests in 24 hours; 404/410 no such member.
        Emits ``contact.requested`` (without the message, which only the two members see)."""
        with self.db.unit_of_work() as uow:
            return 201, services.request_contact(uow, request.principal, str(member_id),
                                                 request.body_data["message"])

    @api("GET", "/contact-requests", roles=("member",), query=schemas.ContactListQuerySchema,
         responses={200: ("The caller's contact requests, newest first", schemas.CONTACT_REQUESTS)})
    def list_contact_requests(self, request):
        """The caller's contact requests: ``?direction=incoming|outgoing`` (both when left out),
        ``?status=pending|accepted|declined|expired``."""
        with self.db.unit_of_work() as uow:
            return queries.contact_requests(uow.session, request.principal, request.query_data, uow.now())

    @api("POST", "/contact-requests/<uuid:request_id>/accept", roles=("member",), errors=(409,),
         responses={200: ("The request, accepted", schemas.CONTACT_REQUEST)})
    def accept_contact(self, request, request_id):
        """Accept a contact request asked of you: both members see each other's contact person from now
        on (``GET /members/{id}/contact``). 403 unless you are the member asked; 409 not pending."""
        with self.db.unit_of_work() as uow:
            return services.answer_contact(uow, request.principal, str(request_id), accept=True)

    @api("POST", "/contact-requests/<uuid:request_id>/decline", roles=("member",), errors=(409,),
         responses={200: ("The request, declined", schemas.CONTACT_REQUEST)})
    def decline_contact(self, request, request_id):
        """Decline a contact request asked of you; the requester hears of it in neutral words and may
        ask again after 30 days. 403 unless you are the member asked; 409 not pending."""
        with self.db.unit_of_work() as uow:
            return services.answer_contact(uow, request.principal, str(request_id), accept=False)

    @api("GET", "/members/<uuid:member_id>/contact", roles=("admin", "member"), errors=(410,),
         responses={200: ("The member's contact person", schemas.CONTACT_DETAILS)})
    def get_contact(self, request, member_id):
        """A member's contact person and e-mail ``{contact_name, contact_email}``: for the member
        itself, admins, and a member joined to it by an accepted contact request or a formed partner
        project; 403 otherwise."""
        with self.db.unit_of_work() as uow:
            return queries.contact_details(uow.session, request.principal, str(member_id))

    @api("GET", "/members/<uuid:member_id>/contacts", roles=("admin", "member"), errors=(410,),
         responses={200: ("The members it is in contact with and how", schemas.CONTACTS)})
    def list_contacts(self, request, member_id):
        """The members ``member_id`` is in contact with, ordered by name: ``{items: [{member_id, name,
        contact_name, contact_email, via: [{kind: contact_request, request_id, since} | {kind: project,
        project_id, title, since}]}]}``. For the member itself and admins; 403 otherwise."""
        with self.db.unit_of_work() as uow:
            return queries.contacts(uow.session, request.principal, str(member_id))

    @subscribe()
    def on_project_event(self, event):
        """project.formed: the members of a formed partner project see each other's contact person."""
        self.db.handle(event, services.on_project_formed)

    @rpc
    def get_profile(self, member_id: str) -> dict | None:
        """A live member's profile, or None."""
        with self.db.unit_of_work() as uow:
            try:
                return queries.get(uow.session, auth.Principal("rpc", "admin"), member_id)
            except (NotFound, Gone):
                return None

    @staticmethod
    def integrator_active_here(container, name: str) -> bool:
        """The integrator check of ``verbund.staff`` answered from this database, on every request."""
        database = next(dependency for dependency in container.dependencies if dependency.attr_name == "db")
        with Session(database.engine) as session:
            return queries.integrator_active(session, name)

    @rpc
    def integrator_status(self, name: str) -> dict:
        """``{"active": bool}``: whether integrator ``name``'s tokens are honoured (not revoked)."""
        with self.db.unit_of_work() as uow:
            return {"active": queries.integrator_active(uow.session, name)}

    @rpc
    def staff_status(self, staff_id: str) -> dict:
        """``{"active": bool}``: whether a staff account's tokens are honoured (``verbund.staff``)."""
        with self.db.unit_of_work() as uow:
            return {"active": queries.staff_active(uow.session, staff_id)}

    @rpc
    def profiles_after(self, after_id: str | None = None, limit: int = 500) -> dict:
        """Live profiles in id order from ``after_id`` on, for rebuilding read models."""
        with self.db.unit_of_work() as uow:
            return queries.profiles_after(uow.session, after_id, min(max(limit, 1), 1000))

    @rpc
    def member_keys(self, member_ids: list[str]) -> dict[str, dict | None]:
        """The keys of up to ``personal.KEYS_PER_CALL`` members at once, as JWKs by member id (None for
        an erased or unknown member), read in one query: what a consumer's batch of member.*
        v2 events needs in one round trip (``MemberKeys.prefetch``). Raises ValueError for anything
        but a list of at most ``KEYS_PER_CALL`` member ids (strings)."""
        if (not isinstance(member_ids, list) or len(member_ids) > personal.KEYS_PER_CALL
                or not all(isinstance(member_id, str) for member_id in member_ids)):
            raise ValueError(f"member_ids must be a list of at most {personal.KEYS_PER_CALL} member ids")
        with self.db.unit_of_work() as uow:
            return queries.member_keys(uow.session, member_ids)

    @rpc
    def member_key(self, member_id: str) -> dict:
        """A member's key as a JWK, for services decrypting its events' personal fields (the RPC
        exchange is the services' alone); raises KeyErased for an erased or unknown member."""
        with self.db.unit_of_work() as uow:
            try:
                return queries.member_key(uow.session, None, member_id)
            except (NotFound, Gone) as exc:
                raise personal.KeyErased(str(exc)) from None
