"""The members use cases: one function per command, ``name(uow, ...)`` on a
``verbund.database.UnitOfWork``. Each takes validated input; its state changes
(``uow.session``) and the events it announces (``uow.emit``) commit together
(transactional outbox), and it reads the time from ``uow.now()`` only."""
from __future__ import annotations

import json
import uuid

from marshmallow import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from members import domain, importer
from members.messages import Messages
from members.models import IntegratorGrant, Member, MemberKey
from members.queries import load_member
from members.schemas import MemberSchema
from verbund import envelope, outbox, personal
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import Conflict, PreconditionFailed
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


def register(uow: UnitOfWork, profile: dict) -> dict:
    """Register an organisation from a loaded ``MemberSchema`` ``profile``; emits ``member.registered``.

    Returns the stored profile at version 1. Raises Conflict (409) when the same organisation
    (``domain.organisation_key``) is registered already."""
    link_vocabulary(profile)
    key = domain.organisation_key(profile["name"], profile["region"]["postcode"])
    if _existing_with_key(uow.session, key):
        raise Conflict("this organisation is already registered at this postcode", field="name")
    return _create(uow, profile, key)


def import_members(uow: UnitOfWork, rows: list[dict], *, dry_run: bool = False,
                   messages: Messages | None = None, warnings: list[dict] | None = None) -> dict:
    """Register every valid row, report every invalid one with all its errors.

    ``rows`` are {column: text} dicts (``importer.Row``, whose ``number`` is
    its spreadsheet row; plain dicts count from row 2, below the header).
    All valid rows commit together with their events, or none do. The
    report is ``{rows, valid, imported: [{row, id, name}], errors: [{row,
    errors: {column: [message]}}], warnings, dry_run}`` with messages in the
    language of ``messages`` (German by default).
    """
    messages = messages or Messages()
    vocabulary = load_vocabulary()
    errors, valid, rows_by_key = [], [], {}
    for index, row in enumerate(rows):
        number = getattr(row, "number", None) or index + 2
        data, row_errors = importer.read_row(row, messages)
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
        if key in rows_by_key:
            errors.append({"row": number, "errors": {"name": [messages.text("same_as_row", row=rows_by_key[key])]}})
        elif _existing_with_key(uow.session, key):
            errors.append({"row": number, "errors": {"name": [messages.text("already_registered")]}})
        else:
            rows_by_key[key] = number
            valid.append((number, profile, key))
    imported = [] if dry_run else [
        {"row": number, "id": _create(uow, profile, key)["id"], "name": profile["name"]}
        for number, profile, key in valid
    ]
    return {"rows": len(rows), "valid": len(valid), "imported": imported, "errors": errors,
            "warnings": list(warnings or []), "dry_run": dry_run}


def update(uow: UnitOfWork, principal: Principal, member_id: str, patch: dict,
           expected_version: int | None = None) -> dict:
    """Apply a JSON Merge Patch (RFC 7396) ``patch`` to a profile; emits ``member.updated`` with the
    changed fields, or nothing (and no new version) when nothing changed.

    Raises NotFound (404), Gone (410), Forbidden (403, ``domain.can_change``), PreconditionFailed
    (412, ``expected_version`` is not the stored one), Unprocessable (422, a read-only field changed),
    ValidationError (422, the merged profile is invalid), Conflict (409, the new name is taken)."""
    member = load_member(uow.session, member_id, for_update=True)
    domain.authorize_change(principal, member_id, member.profile()["associations"])
    if expected_version is not None and expected_version != member.version:
        raise PreconditionFailed(f"member is at version {member.version}, not {expected_version}",
                                 version=member.version)
    before = member.profile()
    domain.check_read_only(before, patch)
    profile = validate_profile(domain.without_read_only(domain.merge_patch(before, patch)))
    key = domain.organisation_key(profile["name"], profile["region"]["postcode"])
    if key != member.organisation_key and _existing_with_key(uow.session, key):
        raise Conflict("another member is registered under this name at this postcode", field="name")
    candidate = Member(id=member.id, version=member.version, created_at=member.created_at,
                       updated_at=member.updated_at)
    candidate.set_profile(profile)
    changed = domain.changed_fields(before, candidate.profile())
    if not changed:
        return before  # nothing changed: no new version, no event
    member.set_profile(profile)
    member.organisation_key = key
    member.updated_at = uow.now()
    uow.session.flush()
    snapshot = member.profile()
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
    held.serial, held.granted_at = held.serial + 1, uow.now()
    uow.session.flush()
    return held.view()
