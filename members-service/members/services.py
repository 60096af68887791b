"""The members use cases: one function per command, ``name(uow, ...)`` on a
``verbund.database.UnitOfWork``. Each takes validated input; its state changes
(``uow.session``) and the events it announces (``uow.emit``) commit together
(transactional outbox), and it reads the time from ``uow.now()`` only."""
from __future__ import annotations

import json
import math
import secrets
import uuid
from datetime import timedelta

from marshmallow import ValidationError
from sqlalchemy import delete, func, insert, or_, select, text
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from members import domain, importer, queries
from members.messages import Messages
from members.models import (
    ContactRequest,
    EmailConfirmation,
    IntegratorGrant,
    Member,
    MemberKey,
    ProjectContact,
    SignInAttempt,
    SignInToken,
    StaffAccount,
    StaffSignInToken,
)
from members.queries import load_member
from members.schemas import MemberSchema
from verbund import auth, envelope, outbox, personal, reference
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import BadRequest, Conflict, Gone, NotFound, PreconditionFailed, TooManyRequests
from verbund.settings import env
from verbund.vocabulary import load as load_vocabulary


def link_vocabulary(profile: dict) -> dict:
    """``profile`` (a loaded ``MemberSchema``) with its offers and needs linked to the curated vocabulary
    (``domain.resolve_competencies``); the dict is changed in place and returned."""
    vocabulary = load_vocabulary()

    def label(term_id):
        return vocabulary.competencies[term_id].label("en")

    for kind in ("offers", "needs"):
        profile[kind] = domain.resolve_competencies(profile[kind], vocabulary.find_competency, label)
    return profile


def validate_profile(data: dict) -> dict:
    """A validated profile with offers and needs linked to the vocabulary; raises marshmallow's
    ValidationError (422 with the field errors) otherwise."""
    return link_vocabulary(MemberSchema().load(data))


def _member_key(uow: UnitOfWork, member_id: str) -> bytes:
    """The member's key for its personal fields, made at its first event (also for members older
    than the keys)."""
    held = uow.session.get(MemberKey, member_id)
    if held is None:
        held = MemberKey(member_id=member_id, key=personal.new_key(), created_at=uow.now())
        uow.session.add(held)
    return held.key


def _published(uow: UnitOfWork, snapshot: dict) -> dict:
    """The profile as member.* events carry it (member-profile v2): the contact person only encrypted."""
    return personal.conceal(snapshot, _member_key(uow, snapshot["id"]))


def _existing_with_key(session: Session, key: str) -> str | None:
    return session.execute(select(Member.id).where(Member.organisation_key == key)).scalar()


def _create(uow: UnitOfWork, profile: dict, key: str) -> dict:
    now = uow.now()
    member = Member(id=str(uuid.uuid4()), organisation_key=key, created_at=now, updated_at=now)
    member.set_profile(profile)
    uow.session.add(member)
    uow.session.flush()  # assigns the version
    snapshot = member.profile()
    uow.emit("member.registered", member.id, {"profile": _published(uow, snapshot)})
    return snapshot


def _email_user(session: Session, address: str, other_than: str | None = None) -> str | None:
    """The id of a live member whose contact e-mail is ``address`` (case-insensitive), other than
    ``other_than``; None when there is none."""
    query = select(Member.id).where(func.lower(Member.contact_email) == domain.normalise_email(address),
                                    Member.deleted_at.is_(None))
    if other_than is not None:
        query = query.where(Member.id != other_than)
    return session.execute(query.limit(1)).scalar()


def _claim_email(uow: UnitOfWork, address: str, member_id: str | None = None) -> None:
    """Raises Conflict (409, field ``contact.email``) when another live organisation has ``address`` as
    its contact e-mail. On PostgreSQL an advisory lock per address keeps two registrations at the same
    time from both passing (SQLite serialises writers anyway). Members that shared an address before
    this rule keep it (no unique index): sign-in still sends them one link each."""
    _lock(uow, f"contact-email:{domain.limit_key(domain.normalise_email(address))}")
    if _email_user(uow.session, address, member_id):
        raise domain.email_taken_error()


def _count_link_for_address(uow: UnitOfWork, address: str, policy: domain.SignInPolicy) -> None:
    """A link mailed to ``address`` outside a sign-in request (registration, a changed address) counts
    against the per-address limit of sign-in links (TooManyRequests, 429, beyond it), not the per-client
    one: a sign-up behind a busy network (a firm, the portal) always gets its link."""
    key = domain.limit_key(domain.normalise_email(address))
    _lock(uow, f"sign-in:address:{key}")
    _check_limit(uow, "address", key, policy.per_address, policy.window,
                 "too many sign-in links were asked for this address")
    uow.session.execute(insert(SignInAttempt), [{"scope": "address", "key": key, "at": uow.now()}])


def register(uow: UnitOfWork, profile: dict, *, mail_link: bool = False,
             policy: domain.SignInPolicy | None = None) -> dict:
    """Register an organisation from a loaded ``MemberSchema`` ``profile``; emits ``member.registered``.

    Returns the stored profile at version 1. Raises Conflict (409) when the same organisation
    (``domain.organisation_key``, field ``name``) is registered already or its contact e-mail is another
    organisation's (field ``contact.email``). ``mail_link`` (self-registration): the sign-in link that
    confirms the address will be mailed (``registration_mail``), counted against the per-address limit
    (TooManyRequests, 429, and nothing registered, beyond it)."""
    link_vocabulary(profile)
    key = domain.organisation_key(profile["name"], profile["region"]["postcode"])
    if _existing_with_key(uow.session, key):
        raise Conflict("this organisation is already registered at this postcode", field="name")
    _claim_email(uow, profile["contact"]["email"])
    if mail_link:
        _count_link_for_address(uow, profile["contact"]["email"], policy or sign_in_policy())
    return _create(uow, profile, key)


def registration_mail(profile: dict) -> dict:
    """Whom the sign-in link after a self-registration goes to (an item as ``request_sign_in`` returns,
    for ``issue_sign_in_link``), with ``purpose`` ``welcome``: the mail says the link also confirms the
    address."""
    contact = profile["contact"]
    return {"member_id": profile["id"], "email": contact["email"], "contact_name": contact["name"],
            "organisation": profile["name"], "language": contact["language"] or "de", "purpose": "welcome"}


def import_members(uow: UnitOfWork, principal: Principal, rows: list[dict], *, dry_run: bool = False,
                   messages: Messages | None = None, warnings: list[dict] | None = None) -> dict:
    """Register every valid row, report every invalid one with all its errors.

    ``principal`` is the importing admin or organizer: an organizer imports members of its own
    association only (``domain.import_associations``: a row without an association gets the
    organizer's, a row naming only others is refused), in a dry run and a real run alike.
    ``rows`` are {column: text} dicts (``importer.Row``, whose ``number`` is
    its spreadsheet row; plain dicts count from row 2, below the header).
    All valid rows commit together with their events, or none do. The
    report is ``{rows, valid, imported: [{row, id, name}], errors: [{row,
    errors: {column: [message]}}], warnings, dry_run}`` with messages in the
    language of ``messages`` (German by default).
    """
    messages = messages or Messages()
    vocabulary = load_vocabulary()
    errors, valid, rows_by_key, rows_by_email = [], [], {}, {}
    for index, row in enumerate(rows):
        uow.let_others_run()  # up to 10,000 rows in one transaction: the service keeps serving meanwhile
        number = getattr(row, "number", None) or index + 2
        data, row_errors = importer.read_row(row, messages)
        if "associations" not in row_errors:
            data["associations"], others = domain.import_associations(principal, data["associations"])
            if others:
                def label(association: str) -> str:
                    return reference.label("association", association, messages.language)
                row_errors["associations"] = [messages.text(
                    "association_not_yours", own=label(principal.association),
                    associations=messages.text("and").join(map(label, others)))]
        data["topics"] = [vocabulary.find_topic(topic) or topic for topic in data["topics"]]
        try:
            profile = validate_profile(data)
        except ValidationError as exc:
            # A cell the importer could not read says more than the schema about the same column.
            row_errors = {**importer.column_errors(exc.messages, data, messages), **row_errors}
        if row_errors:
            errors.append({"row": number, "errors": row_errors})
            continue
        key = domain.organisation_key(profile["name"], profile["region"]["postcode"])
        email = domain.normalise_email(profile["contact"]["email"])
        if key in rows_by_key:
            errors.append({"row": number, "errors": {"name": [messages.text("same_as_row", row=rows_by_key[key])]}})
        elif _existing_with_key(uow.session, key):
            errors.append({"row": number, "errors": {"name": [messages.text("already_registered")]}})
        elif email in rows_by_email:
            errors.append({"row": number, "errors": {"contact_email": [
                messages.text("email_same_as_row", row=rows_by_email[email])]}})
        elif _email_user(uow.session, email):
            errors.append({"row": number, "errors": {"contact_email": [messages.text("email_taken")]}})
        else:
            rows_by_key[key], rows_by_email[email] = number, number
            valid.append((number, profile, key))
    imported = []
    for number, profile, key in ([] if dry_run else valid):
        uow.let_others_run()
        imported.append({"row": number, "id": _create(uow, profile, key)["id"], "name": profile["name"]})
    return {"rows": len(rows), "valid": len(valid), "imported": imported, "errors": errors,
            "warnings": list(warnings or []), "dry_run": dry_run}


def update(uow: UnitOfWork, principal: Principal, member_id: str, patch: dict,
           expected_version: int | None = None, mails: list[dict] | None = None,
           policy: domain.SignInPolicy | None = None) -> dict:
    """Apply a JSON Merge Patch (RFC 7396) ``patch`` to a profile; emits ``member.updated`` with the
    changed fields, or nothing (and no new version) when nothing changed.

    A new contact e-mail is not taken at once: it waits as ``contact.pending_email`` until the link
    mailed to it is used (``confirm_email``); the mails to send after commit are appended to ``mails``
    (``purpose`` ``confirm_email`` to the new address with its ``token``, ``email_change_notice`` to the
    old one). ``{"contact": {"pending_email": null}}`` withdraws a pending change; a pending address sent
    back as read is ignored.

    Raises NotFound (404), Gone (410), Forbidden (403, ``domain.can_change``), PreconditionFailed
    (412, ``expected_version`` is not the stored one), Unprocessable (422, a read-only field changed),
    ValidationError (422, the merged profile is invalid), Conflict (409, the new name is taken, or the
    new e-mail is another organisation's contact address: field ``contact.email``), TooManyRequests
    (429, too many links for the new address)."""
    member = load_member(uow.session, member_id, for_update=True)
    domain.authorize_change(principal, member_id, member.profile()["associations"])
    if expected_version is not None and expected_version != member.version:
        raise PreconditionFailed(f"member is at version {member.version}, not {expected_version}",
                                 version=member.version)
    shown = member.profile()
    before = domain.without_pending(shown)
    withdraw = domain.withdraws_email_change(patch)
    patch = domain.without_pending(patch)
    domain.check_read_only(before, patch)
    profile = validate_profile(domain.without_read_only(domain.merge_patch(before, patch)))
    key = domain.organisation_key(profile["name"], profile["region"]["postcode"])
    if key != member.organisation_key and _existing_with_key(uow.session, key):
        raise Conflict("another member is registered under this name at this postcode", field="name")
    wanted = domain.email_change(member.contact_email, profile["contact"]["email"])
    if wanted is not None:
        _claim_email(uow, wanted, member.id)
        profile["contact"]["email"] = member.contact_email  # the old address serves until the new one is confirmed
    elif withdraw and member.contact_pending_email:
        _withdraw_email_change(uow, member)
    candidate = Member(id=member.id, version=member.version, created_at=member.created_at,
                       updated_at=member.updated_at)
    candidate.set_profile(profile)
    changed = domain.changed_fields(before, domain.without_pending(candidate.profile()))
    if wanted is not None:
        _ask_to_confirm(uow, member, wanted, mails if mails is not None else [], policy or sign_in_policy())
    if not changed:
        if member.contact_pending_email != shown["contact"].get("pending_email"):
            uow.session.flush()
            return member.profile()  # only the address waiting for confirmation changed: no event
        return shown  # nothing changed: no new version, no event
    member.set_profile(profile)
    member.organisation_key = key
    member.updated_at = uow.now()
    uow.session.flush()
    snapshot = member.profile()
    uow.emit("member.updated", member.id, {"profile": _published(uow, snapshot), "changed": changed})
    return snapshot


def _withdraw_email_change(uow: UnitOfWork, member: Member) -> None:
    """Forget a pending contact e-mail and use up its links."""
    member.contact_pending_email = None
    uow.session.execute(sql_update(EmailConfirmation).where(
        EmailConfirmation.member_id == member.id, EmailConfirmation.used_at.is_(None))
        .values(used_at=uow.now()).execution_options(synchronize_session=False))


def _ask_to_confirm(uow: UnitOfWork, member: Member, address: str, mails: list[dict],
                    policy: domain.SignInPolicy) -> None:
    """Make ``address`` the member's pending contact e-mail with a new confirmation link (the earlier
    ones used up) and append the two mails to ``mails``: the link to the new address, a notice to the
    old one (so a change the organisation did not make does not pass unseen)."""
    _count_link_for_address(uow, address, policy)
    _withdraw_email_change(uow, member)
    now = uow.now()
    secret = secrets.token_urlsafe(32)  # 256 bits
    uow.session.add(EmailConfirmation(token_hash=domain.token_hash(secret), member_id=member.id, email=address,
                                      created_at=now, expires_at=now + domain.EMAIL_CONFIRMATION_TTL))
    member.contact_pending_email = address
    common = {"member_id": member.id, "contact_name": member.contact_name, "organisation": member.name,
              "language": member.contact_language or "de",
              "expires_minutes": int(domain.EMAIL_CONFIRMATION_TTL.total_seconds() // 60)}
    mails.append({**common, "purpose": "confirm_email", "email": address, "token": secret})
    if member.contact_email:
        mails.append({**common, "purpose": "email_change_notice", "email": member.contact_email, "token": None})


INVALID_CONFIRMATION_LINK = ("this confirmation link is not valid (any more): it may be used already, replaced by "
                             "a newer one or older than 24 hours; change the address in the profile again")


def confirm_email(uow: UnitOfWork, secret: str) -> dict:
    """Confirm a changed contact e-mail with the secret of the link mailed to it: the address becomes the
    member's contact e-mail (``member.updated``, changed ``contact``). Single use, 24 hours, and only the
    newest link of a member works. Returns the profile. Raises BadRequest (400) with one message for an
    unknown, used, replaced or expired link or an erased member, Conflict (409, field ``contact.email``)
    when another organisation took the address meanwhile."""
    now = uow.now()
    hashed = domain.token_hash(secret)
    won = uow.session.execute(sql_update(EmailConfirmation).where(
        EmailConfirmation.token_hash == hashed, EmailConfirmation.used_at.is_(None),
        EmailConfirmation.expires_at > now).values(used_at=now).execution_options(synchronize_session=False))
    invalid = BadRequest(INVALID_CONFIRMATION_LINK, fields={"token": [INVALID_CONFIRMATION_LINK]})
    if won.rowcount != 1:
        raise invalid
    held = uow.session.execute(select(EmailConfirmation.member_id, EmailConfirmation.email)
                               .where(EmailConfirmation.token_hash == hashed)).one()
    try:
        member = load_member(uow.session, held.member_id, for_update=True)
    except (NotFound, Gone):
        raise invalid from None
    if member.contact_pending_email != held.email:
        raise invalid
    _claim_email(uow, held.email, member.id)
    before = domain.without_pending(member.profile())
    member.contact_email, member.contact_pending_email, member.contact_confirmed_at = held.email, None, now
    member.updated_at = now
    uow.session.flush()
    snapshot = member.profile()
    changed = domain.changed_fields(before, domain.without_pending(snapshot))
    uow.emit("member.updated", member.id, {"profile": _published(uow, snapshot), "changed": changed})
    return snapshot


def erase(uow: UnitOfWork, principal: Principal, member_id: str) -> None:
    """GDPR erasure (art. 17): forget the profile, keep a tombstone, tell every service
    (``member.deleted``). Raises NotFound, Gone, Forbidden (``domain.can_delete``)."""
    member = load_member(uow.session, member_id, for_update=True)
    domain.authorize_erase(principal, member_id)
    member.erase(uow.now())
    uow.session.flush()
    # Crypto-shredding: without the key no copy of the member's encrypted personal fields can be read.
    uow.session.execute(delete(MemberKey).where(MemberKey.member_id == member_id))
    # Its contact requests (their messages are personal), project teams and open links go with it.
    uow.session.execute(delete(ContactRequest).where(or_(ContactRequest.requester_id == member_id,
                                                         ContactRequest.recipient_id == member_id)))
    uow.session.execute(delete(ProjectContact).where(ProjectContact.member_id == member_id))
    uow.session.execute(delete(SignInToken).where(SignInToken.member_id == member_id))
    uow.session.execute(delete(EmailConfirmation).where(EmailConfirmation.member_id == member_id))
    # Published events about the member carry its data; drop them from the replayable history.
    uow.session.execute(delete(outbox.outbox_table).where(outbox.outbox_table.c.subject == member_id,
                                                          outbox.outbox_table.c.published_at.is_not(None)))
    uow.emit("member.deleted", member.id, {"id": member.id, "version": member.version,
                                          "deleted_at": envelope.isoformat(member.deleted_at)})


def record_grant(uow: UnitOfWork, name: str, grant: dict) -> dict:
    """Record integrator ``name``'s new grant (``grant`` as GrantSchema loads it: ``events``, topic
    patterns, and ``personal``) and return its view with the next ``serial``: tokens issued under an
    older serial lose the key endpoint and the contact persons (``domain.check_grant``). The
    serial rises even when the grant is unchanged, so every ``verbund integrator`` run takes back
    the tokens printed before."""
    held = uow.session.execute(select(IntegratorGrant).where(IntegratorGrant.name == name)
                               .with_for_update()).scalar()
    if held is None:
        held = IntegratorGrant(name=name, serial=0)
        uow.session.add(held)
    held.events, held.personal = json.dumps(list(grant["events"])), grant["personal"]
    held.serial, held.granted_at, held.revoked_at = held.serial + 1, uow.now(), None
    uow.session.flush()
    return held.view()


def create_integrator(uow: UnitOfWork, grant: dict, provision) -> dict:
    """Create integrator ``grant["name"]`` (``IntegratorSchema``: ``name``, ``events``, ``personal``):
    record its grant, then ``provision(name, scope, personal, serial)`` (the kit's
    ``integrators.provision``: RabbitMQ user, password, token) inside the same unit of work, so a
    broker that refuses leaves no grant behind. Returns the grant with ``uri``, ``token``,
    ``expires_at``: the password and token are shown this once and kept nowhere. Raises Conflict
    (409, field ``name``) for an integrator of that name that is not revoked."""
    name = grant["name"]
    held = uow.session.execute(select(IntegratorGrant).where(IntegratorGrant.name == name)
                               .with_for_update()).scalar()
    if held is not None and held.revoked_at is None:
        raise Conflict("an integrator of this name exists; revoke it first or choose another name", field="name")
    view = record_grant(uow, name, grant)
    made = provision(name, tuple(view["events"]), view["personal"], view["serial"])
    return {**view, "user": made["user"], "uri": made["uri"], "token": made["token"],
            "expires_at": made["expires_at"]}


def revoke_integrator(uow: UnitOfWork, name: str, remove) -> dict:
    """Revoke integrator ``name``: mark its grant revoked (its tokens are refused from the next request
    on, here at once and elsewhere within ``STAFF_CHECK_TTL_SECONDS``), then ``remove(name)`` (the kit's
    ``integrators.remove``: its RabbitMQ user, permissions, connections and queues), and emit
    ``integrator.revoked`` (notifications-service disables its webhooks). Revoking twice removes and
    announces again and keeps the first time. Raises NotFound (404)."""
    held = uow.session.execute(select(IntegratorGrant).where(IntegratorGrant.name == name)
                               .with_for_update()).scalar()
    if held is None:
        raise NotFound("no such integrator")
    held.revoked_at = held.revoked_at or uow.now()
    uow.session.flush()
    removed = remove(name)
    # Through the outbox, in this transaction: notifications-service disables the integrator's webhooks
    # when it consumes it, also if it is down now (the event waits in its queue). Again on every revocation.
    uow.emit("integrator.revoked", name, {"name": name, "serial": held.serial,
                                          "revoked_at": envelope.isoformat(held.revoked_at)})
    return {**held.view(), "removed_queues": removed["queues"]}


# --- sign-in by e-mail link -----------------------------------------------------------------------

INVALID_SIGN_IN_LINK = ("this sign-in link is not valid (any more): it may be used already or older than "
                        "15 minutes; ask for a new one")
MAX_MEMBERS_PER_ADDRESS = 5  # one contact e-mail may serve several organisations; one link each


def sign_in_policy() -> domain.SignInPolicy:
    """The sign-in settings: ``SIGN_IN_TOKEN_TTL_SECONDS`` (900), ``SIGN_IN_LIMIT_PER_ADDRESS`` (5),
    ``SIGN_IN_LIMIT_PER_CLIENT`` (200), ``SIGN_IN_LIMIT_WINDOW_SECONDS`` (3600), ``MEMBER_TOKEN_TTL_SECONDS``
    (30 days), ``STAFF_TOKEN_TTL_SECONDS`` (12 hours), ``STAFF_INVITATION_TTL_SECONDS`` (3 days); each also
    as ``MEMBERS_<NAME>``."""
    default = domain.SignInPolicy()

    def seconds(name: str, value: timedelta) -> timedelta:
        return timedelta(seconds=env(name, value.total_seconds(), service="members", kind="float"))

    return domain.SignInPolicy(
        token_ttl=seconds("SIGN_IN_TOKEN_TTL_SECONDS", default.token_ttl),
        per_address=env("SIGN_IN_LIMIT_PER_ADDRESS", default.per_address, service="members", kind="int"),
        per_client=env("SIGN_IN_LIMIT_PER_CLIENT", default.per_client, service="members", kind="int"),
        window=seconds("SIGN_IN_LIMIT_WINDOW_SECONDS", default.window),
        member_token_ttl=seconds("MEMBER_TOKEN_TTL_SECONDS", default.member_token_ttl),
        staff_token_ttl=seconds("STAFF_TOKEN_TTL_SECONDS", default.staff_token_ttl),
        invitation_ttl=seconds("STAFF_INVITATION_TTL_SECONDS", default.invitation_ttl))


def _lock(uow: UnitOfWork, *keys: str) -> None:
    """Serialise the rate-limit check of these keys across instances: on PostgreSQL a transaction
    advisory lock per key (sorted, so two requests never wait for each other in a circle); SQLite's
    BEGIN IMMEDIATE serialises every write transaction already."""
    if uow.session.get_bind().dialect.name == "postgresql":
        for key in sorted(keys):
            uow.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


def _check_limit(uow: UnitOfWork, scope: str, key: str, limit: int, window: timedelta, message: str) -> None:
    now = uow.now()
    recent = list(uow.session.execute(select(SignInAttempt.at).where(
        SignInAttempt.scope == scope, SignInAttempt.key == key, SignInAttempt.at > now - window)).scalars())
    wait = domain.retry_after(recent, limit, window, now)
    if wait is not None:
        raise TooManyRequests(f"{message}; try again in {math.ceil(wait / 60)} minute(s)", retry_after=wait)


def request_sign_in(uow: UnitOfWork, email: str, client: str, policy: domain.SignInPolicy | None = None,
                    language: str | None = None) -> list[dict]:
    """A sign-in request for the contact e-mail ``email`` from ``client`` (an IP address): counted against
    the limits per address and per client whether the address is known or not (TooManyRequests, 429,
    with the seconds to wait, beyond them).

    Returns whom to send a link, one per live member with that contact e-mail (at most
    ``MAX_MEMBERS_PER_ADDRESS``): ``{member_id, email, contact_name, organisation, language}``
    (``language``: the member's contact language, else the request's); an empty list for an unknown
    address. The links are made by ``issue_sign_in_link`` afterwards, outside the request, so that a
    known address costs the request what an unknown one does."""
    policy = policy or sign_in_policy()
    now = uow.now()
    address = domain.normalise_email(email)
    address_key, client_key = domain.limit_key(address), domain.limit_key(client)
    _lock(uow, f"sign-in:address:{address_key}", f"sign-in:client:{client_key}")
    _check_limit(uow, "client", client_key, policy.per_client, policy.window,
                 "too many sign-in requests from your network")
    _check_limit(uow, "address", address_key, policy.per_address, policy.window,
                 "too many sign-in links were asked for this address")
    uow.session.execute(insert(SignInAttempt), [{"scope": "address", "key": address_key, "at": now},
                                                {"scope": "client", "key": client_key, "at": now}])
    # What has served its purpose goes: attempts out of the window, links expired a day ago.
    uow.session.execute(delete(SignInAttempt).where(SignInAttempt.at <= now - policy.window))
    uow.session.execute(delete(SignInToken).where(SignInToken.expires_at < now - timedelta(days=1)))
    # Columns only (no profile with its offers and tags): a known address must cost about what an
    # unknown one does (docs/bench/members.md).
    members = uow.session.execute(
        select(Member.id, Member.contact_email, Member.contact_name, Member.name, Member.contact_language)
        .where(func.lower(Member.contact_email) == address, Member.deleted_at.is_(None))
        .order_by(Member.created_at).limit(MAX_MEMBERS_PER_ADDRESS)).all()
    found = [{"member_id": member.id, "email": member.contact_email, "contact_name": member.contact_name,
              "organisation": member.name, "language": member.contact_language or language or "de"}
             for member in members]
    # A staff account with that address gets a link of its own: one address may be a member's contact
    # and an organizer's, and each mail says which account its link opens.
    staff = uow.session.execute(select(StaffAccount).where(StaffAccount.email == address,
                                                           StaffAccount.status == "active")).scalar()
    if staff is not None:
        found.append(_staff_recipient(staff))
    return found


def _staff_recipient(staff: StaffAccount) -> dict:
    return {"staff_id": staff.id, "email": staff.email, "contact_name": staff.name,
            "organisation": domain.staff_account_label(staff.role, staff.association, staff.language),
            "language": staff.language}


def import_invitations(uow: UnitOfWork, report: dict, invite: str) -> list[dict]:
    """Whom to mail a sign-in link after a real import (``invite``: ``none``, ``consented`` — the
    imported members whose row gave e-mail consent — or ``all``, the organizer's explicit choice):
    recipients as ``request_sign_in`` returns them, for ``issue_sign_in_link``. An invitation is a
    sign-in link like any other (15 minutes; the mail says how to ask for a new one), so it does not
    count against the sign-in limits, which guard against strangers, not staff."""
    ids = [row["id"] for row in report["imported"]]
    if invite == "none" or not ids:
        return []
    query = select(Member.id, Member.contact_email, Member.contact_name, Member.name, Member.contact_language,
                   Member.consent_email).where(Member.id.in_(ids), Member.deleted_at.is_(None))
    return [{"member_id": member.id, "email": member.contact_email, "contact_name": member.contact_name,
             "organisation": member.name, "language": member.contact_language or "de"}
            for member in uow.session.execute(query).all()
            if member.contact_email and (invite == "all" or member.consent_email)]


def issue_sign_in_link(uow: UnitOfWork, recipient: dict, policy: domain.SignInPolicy | None = None) -> dict:
    """A single-use sign-in token for ``recipient`` (an item of ``request_sign_in``), valid for
    ``policy.token_ttl`` and stored only as its hash: ``recipient`` with ``token`` (the secret for
    the link) and ``expires_minutes``."""
    policy = policy or sign_in_policy()
    now = uow.now()
    secret = secrets.token_urlsafe(32)  # 256 bits
    if "staff_id" in recipient:
        uow.session.execute(insert(StaffSignInToken).values(token_hash=domain.token_hash(secret),
                                                            staff_id=recipient["staff_id"], created_at=now,
                                                            expires_at=now + policy.token_ttl))
    else:
        uow.session.execute(insert(SignInToken).values(token_hash=domain.token_hash(secret),
                                                       member_id=recipient["member_id"], created_at=now,
                                                       expires_at=now + policy.token_ttl))
    return {**recipient, "token": secret, "expires_minutes": max(1, round(policy.token_ttl.total_seconds() / 60))}


def exchange_sign_in_token(uow: UnitOfWork, secret: str, policy: domain.SignInPolicy | None = None) -> dict:
    """Exchange a sign-in link's secret for the member's bearer token (a JWT as at registration).

    Single use: one conditional UPDATE marks the token used, so of two exchanges at the same time one
    wins (the database's row lock decides) and the other finds it used. Every other open link of the
    member is used up too. Returns ``{token, expires_in (seconds), member_id, role: "member",
    language}``; raises BadRequest (400) with one message for an unknown, used or expired secret, or an
    erased member."""
    policy = policy or sign_in_policy()
    now = uow.now()
    hashed = domain.token_hash(secret)
    won = uow.session.execute(sql_update(SignInToken).where(
        SignInToken.token_hash == hashed, SignInToken.used_at.is_(None), SignInToken.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False))
    if won.rowcount != 1:
        return _exchange_staff_token(uow, hashed, policy)
    member_id = uow.session.execute(select(SignInToken.member_id).where(SignInToken.token_hash == hashed)).scalar()
    member = uow.session.get(Member, member_id)
    if member is None or member.deleted_at is not None:
        raise BadRequest(INVALID_SIGN_IN_LINK, fields={"sign_in_token": [INVALID_SIGN_IN_LINK]})
    uow.session.execute(sql_update(SignInToken).where(SignInToken.member_id == member_id, SignInToken.used_at.is_(None))
                        .values(used_at=now).execution_options(synchronize_session=False))
    # The link reached the contact address: it is confirmed. A plain UPDATE, so the profile's version
    # (its ETag) stays: nothing a reader sees changed.
    uow.session.execute(sql_update(Member).where(Member.id == member_id).values(contact_confirmed_at=now)
                        .execution_options(synchronize_session=False))
    ttl = policy.member_token_ttl
    return {"token": auth.issue("member", f"member:{member_id}", member_id=member_id, ttl=ttl),
            "expires_in": int(ttl.total_seconds()), "member_id": member_id, "role": "member",
            "language": member.contact_language or "de"}


def _exchange_staff_token(uow: UnitOfWork, hashed: str, policy: domain.SignInPolicy) -> dict:
    """The staff half of ``exchange_sign_in_token``: a staff link (sign-in or invitation) for an
    active account gives ``{token, expires_in, role, association?, staff_id, language}``."""
    now = uow.now()
    won = uow.session.execute(sql_update(StaffSignInToken).where(
        StaffSignInToken.token_hash == hashed, StaffSignInToken.used_at.is_(None), StaffSignInToken.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False))
    invalid = BadRequest(INVALID_SIGN_IN_LINK, fields={"sign_in_token": [INVALID_SIGN_IN_LINK]})
    if won.rowcount != 1:
        raise invalid
    staff_id = uow.session.execute(select(StaffSignInToken.staff_id)
                                   .where(StaffSignInToken.token_hash == hashed)).scalar()
    staff = uow.session.get(StaffAccount, staff_id)
    if staff is None or staff.status != "active":
        raise invalid
    uow.session.execute(sql_update(StaffSignInToken).where(StaffSignInToken.staff_id == staff_id,
                                                           StaffSignInToken.used_at.is_(None))
                        .values(used_at=now).execution_options(synchronize_session=False))
    ttl = policy.staff_token_ttl
    answer = {"token": auth.issue(staff.role, f"staff:{staff.id}", association=staff.association, ttl=ttl,
                                  staff_id=staff.id),
              "expires_in": int(ttl.total_seconds()), "role": staff.role, "staff_id": staff.id,
              "language": staff.language}
    if staff.association:
        answer["association"] = staff.association
    return answer


# --- staff accounts -------------------------------------------------------------------------------

def add_staff(uow: UnitOfWork, data: dict, invited_by: str) -> dict:
    """Create a staff account from ``{email, name, role, association?, language}`` (validated by
    ``schemas.StaffSchema``), invited by ``invited_by`` (a staff id, or ``"cli"``). A revoked account
    with that address gives way to a new account with a new id, so the revoked one's tokens (which
    name its id) stay void. Returns the account's view. Raises Conflict (409) when an active account
    has that address."""
    email = domain.normalise_email(data["email"])
    staff = uow.session.execute(select(StaffAccount).where(StaffAccount.email == email)).scalar()
    if staff is not None and staff.status == "active":
        raise Conflict("a staff account with this e-mail address exists already", field="email")
    if staff is not None:  # revoked: its links go with it (cascade), its tokens name an id that is no more
        uow.session.delete(staff)
        uow.session.flush()
    staff = StaffAccount(id=str(uuid.uuid4()), email=email)
    uow.session.add(staff)
    staff.name, staff.role, staff.language = data["name"], data["role"], data.get("language") or "de"
    staff.association = data.get("association") if data["role"] == "organizer" else None
    staff.status, staff.invited_by, staff.created_at, staff.revoked_at = "active", invited_by, uow.now(), None
    uow.session.flush()
    return staff.view()


def invite_link(uow: UnitOfWork, staff_id: str, policy: domain.SignInPolicy | None = None) -> dict:
    """An invitation's sign-in link for a new staff account: like ``issue_sign_in_link``, valid
    ``policy.invitation_ttl`` (3 days by default: an invitation is not read at once)."""
    policy = policy or sign_in_policy()
    staff = uow.session.get(StaffAccount, staff_id)
    secret = secrets.token_urlsafe(32)
    now = uow.now()
    uow.session.execute(insert(StaffSignInToken).values(token_hash=domain.token_hash(secret), staff_id=staff.id,
                                                        created_at=now, expires_at=now + policy.invitation_ttl))
    return {**_staff_recipient(staff), "role": staff.role, "association": staff.association, "token": secret,
            "expires_hours": max(1, round(policy.invitation_ttl.total_seconds() / 3600))}


def revoke_staff(uow: UnitOfWork, principal: Principal, staff_id: str) -> dict:
    """Revoke a staff account: its tokens are refused from the next request on, its open links are
    void. Raises NotFound (404), Conflict (409) for one's own account (an admin cannot lock
    themselves out; another admin can)."""
    staff = uow.session.get(StaffAccount, staff_id)
    if staff is None:
        raise NotFound("no such staff account")
    if principal.staff_id == staff_id:
        raise Conflict("you cannot revoke your own account; ask another admin")
    if staff.status != "revoked":
        staff.status, staff.revoked_at = "revoked", uow.now()
        uow.session.execute(sql_update(StaffSignInToken).where(StaffSignInToken.staff_id == staff_id,
                                                               StaffSignInToken.used_at.is_(None))
                            .values(used_at=uow.now()).execution_options(synchronize_session=False))
    uow.session.flush()
    return staff.view()


# --- contact requests -----------------------------------------------------------------------------

def contact_policy() -> domain.ContactPolicy:
    """The contact-request settings: ``CONTACT_REQUESTS_PER_DAY`` (10), ``CONTACT_REQUEST_TTL_DAYS``
    (14), ``CONTACT_DECLINE_PAUSE_DAYS`` (30); each also as ``MEMBERS_<NAME>``."""
    default = domain.ContactPolicy()
    return domain.ContactPolicy(
        per_day=env("CONTACT_REQUESTS_PER_DAY", default.per_day, service="members", kind="int"),
        ttl=timedelta(days=env("CONTACT_REQUEST_TTL_DAYS", default.ttl.days, service="members", kind="float")),
        decline_pause=timedelta(days=env("CONTACT_DECLINE_PAUSE_DAYS", default.decline_pause.days,
                                         service="members", kind="float")))


def _contact_event(request: dict) -> dict:
    """The contact.* event data: the request without its message (personal; it stays here)."""
    return {"request": {key: value for key, value in request.items() if key != "message"}}


def request_contact(uow: UnitOfWork, principal: Principal, recipient_id: str, message: str,
                    policy: domain.ContactPolicy | None = None) -> dict:
    """The member ``principal`` asks member ``recipient_id`` for contact with ``message`` (validated, 1-1000
    characters); emits ``contact.requested`` (without the message). Returns the request
    (``queries.contact_request_view``). Raises Unprocessable (422, oneself), NotFound/Gone (404/410, no
    such or an erased recipient), Conflict (409, ``domain.check_contact_request``), TooManyRequests (429,
    more than ``policy.per_day`` requests in 24 hours)."""
    policy = policy or contact_policy()
    now = uow.now()
    requester_id = principal.member_id
    if requester_id == recipient_id:
        domain.check_contact_request(requester_id, recipient_id, [], now, policy)
    # Both members locked (in id order), so two requests between the same pair run one after the other.
    for member_id in sorted((requester_id, recipient_id)):
        load_member(uow.session, member_id, for_update=True)
    day_ago = now - timedelta(days=1)
    recent = list(uow.session.execute(select(ContactRequest.created_at).where(
        ContactRequest.requester_id == requester_id, ContactRequest.created_at > day_ago)).scalars())
    wait = domain.retry_after(recent, policy.per_day, timedelta(days=1), now)
    if wait is not None:
        raise TooManyRequests(f"you have sent {policy.per_day} contact requests in the last 24 hours; "
                              f"try again in {math.ceil(wait / 3600)} hour(s)", retry_after=wait)
    between = [(held.requester_id, domain.contact_status(held.status, held.expires_at, now), held.created_at,
                held.answered_at) for held in queries.contact_requests_between(uow.session, requester_id, recipient_id)]
    domain.check_contact_request(requester_id, recipient_id, between, now, policy)
    held = ContactRequest(id=str(uuid.uuid4()), requester_id=requester_id, recipient_id=recipient_id,
                          message=message, status="pending", created_at=now, expires_at=now + policy.ttl)
    uow.session.add(held)
    uow.session.flush()
    view = queries.contact_request_view(uow.session, held, now)
    uow.emit("contact.requested", held.id, _contact_event(view))
    return view


def answer_contact(uow: UnitOfWork, principal: Principal, request_id: str, accept: bool) -> dict:
    """The recipient accepts (``accept``) or declines a pending contact request; emits
    ``contact.accepted`` or ``contact.declined``. Returns the request. Raises NotFound (404), Forbidden
    (403, not the recipient), Conflict (409, answered or expired)."""
    now = uow.now()
    held = uow.session.execute(select(ContactRequest).where(ContactRequest.id == request_id)
                               .with_for_update()).scalar()
    if held is None:
        raise NotFound(f"no contact request {request_id}")
    domain.authorize_answer(principal, held.recipient_id)
    status = domain.contact_status(held.status, held.expires_at, now)
    if status != "pending":
        raise Conflict(f"this request is {status} and can no longer be answered", request_status=status)
    held.status, held.answered_at = ("accepted" if accept else "declined"), now
    uow.session.flush()
    view = queries.contact_request_view(uow.session, held, now)
    uow.emit(f"contact.{held.status}", held.id, _contact_event(view))
    return view


# --- partner projects -------------------------------------------------------------------------------

def on_project_formed(uow: UnitOfWork, event: dict) -> None:
    """``project.formed`` (matching-service): the project's members are introduced to each other; each
    sees the others' contact person (``queries.contact_details``) as after an accepted contact request.
    Members erased meanwhile or unknown here are left out. Run through the idempotent inbox
    (``Store.handle``); a second delivery of the same project adds nothing."""
    project = event["data"]["project"]
    if project.get("status") != "formed":
        return
    ids = {member["member_id"] for member in project["members"]}
    live = set(uow.session.execute(select(Member.id).where(Member.id.in_(ids), Member.deleted_at.is_(None))).scalars())
    held = set(uow.session.execute(select(ProjectContact.member_id).where(
        ProjectContact.project_id == project["id"])).scalars())
    formed_at = uow.now()
    for member_id in sorted(live - held):
        uow.session.add(ProjectContact(project_id=project["id"], member_id=member_id,
                                       title=project["title"][:500], formed_at=formed_at))
