"""The members service layer: each function is one use case on a session.
State changes and their events go into the same transaction (outbox)."""
from __future__ import annotations

import uuid

from marshmallow import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from members import domain, importer
from members.messages import Messages
from members.models import Competency, Member, MemberKey, Tag
from members.schemas import READ_ONLY_FIELDS, MemberSchema
from verbund import envelope, outbox, personal
from verbund.auth import Principal
from verbund.catalogue import source_of
from verbund.errors import Conflict, Forbidden, Gone, NotFound, PreconditionFailed, Unprocessable
from verbund.schema_fields import search_key
from verbund.vocabulary import load as load_vocabulary

SOURCE = source_of("members")


def validate_profile(data: dict) -> dict:
    """A validated profile with offers and needs linked to the vocabulary (422 otherwise)."""
    profile = MemberSchema().load(data)
    vocabulary = load_vocabulary()

    def label(term_id):
        return vocabulary.competencies[term_id].label("en")

    for kind in ("offers", "needs"):
        profile[kind] = domain.resolve_competencies(profile[kind], vocabulary.find_competency, label)
    return profile


def _announce(session: Session, type: str, member: Member, data: dict) -> None:
    outbox.add(session, envelope.new_event(type, SOURCE, subject=member.id, data=data))


def _member_key(session: Session, member_id: str) -> bytes:
    """The member's key for its personal fields, made at its first event (also for members older
    than the keys)."""
    held = session.get(MemberKey, member_id)
    if held is None:
        held = MemberKey(member_id=member_id, key=personal.new_key(), created_at=envelope.utcnow())
        session.add(held)
    return held.key


def _published(session: Session, snapshot: dict) -> dict:
    """The profile as member.* events carry it (member-profile v2): the contact person only encrypted."""
    return personal.conceal(snapshot, _member_key(session, snapshot["id"]))


def _existing_with_key(session: Session, key: str) -> str | None:
    return session.execute(select(Member.id).where(Member.organisation_key == key)).scalar()


def _create(session: Session, profile: dict, key: str) -> dict:
    now = envelope.utcnow()
    member = Member(id=str(uuid.uuid4()), organisation_key=key, created_at=now, updated_at=now)
    member.set_profile(profile)
    session.add(member)
    session.flush()  # assigns the version
    snapshot = member.profile()
    _announce(session, "member.registered", member, {"profile": _published(session, snapshot)})
    return snapshot


def register(session: Session, data: dict) -> dict:
    profile = validate_profile(data)
    key = domain.organisation_key(profile["name"], profile["region"]["postcode"])
    if _existing_with_key(session, key):
        raise Conflict("this organisation is already registered at this postcode", field="name")
    return _create(session, profile, key)


def import_members(session: Session, rows: list[dict], *, dry_run: bool = False,
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
        elif _existing_with_key(session, key):
            errors.append({"row": number, "errors": {"name": [messages.text("already_registered")]}})
        else:
            rows_by_key[key] = number
            valid.append((number, profile, key))
    imported = [] if dry_run else [
        {"row": number, "id": _create(session, profile, key)["id"], "name": profile["name"]}
        for number, profile, key in valid
    ]
    return {"rows": len(rows), "valid": len(valid), "imported": imported, "errors": errors,
            "warnings": list(warnings or []), "dry_run": dry_run}


def _load(session: Session, member_id: str, *, for_update: bool = False) -> Member:
    query = select(Member).where(Member.id == member_id)
    member = session.execute(query.with_for_update() if for_update else query).scalar()
    if member is None:
        raise NotFound(f"no member {member_id}")
    if member.deleted_at is not None:
        raise Gone(f"member {member_id} was deleted")
    return member


def get(session: Session, principal: Principal, member_id: str) -> dict:
    if not domain.can_read(principal, member_id):
        raise Forbidden("you may read your own profile only")
    return _load(session, member_id).profile()


def update(session: Session, principal: Principal, member_id: str, patch: dict,
           expected_version: int | None = None) -> dict:
    member = _load(session, member_id, for_update=True)
    if not domain.can_change(principal, member_id, member.profile()["associations"]):
        raise Forbidden("you may change your own profile, or those of your association's members")
    if expected_version is not None and expected_version != member.version:
        raise PreconditionFailed(f"member is at version {member.version}, not {expected_version}",
                                 version=member.version)
    before = member.profile()
    for name in READ_ONLY_FIELDS:
        if name in patch and patch[name] != before[name]:
            raise Unprocessable("validation failed", fields={name: ["read-only"]})
    merged = domain.merge_patch(before, patch)
    profile = validate_profile({k: v for k, v in merged.items() if k not in READ_ONLY_FIELDS})
    key = domain.organisation_key(profile["name"], profile["region"]["postcode"])
    if key != member.organisation_key and _existing_with_key(session, key):
        raise Conflict("another member is registered under this name at this postcode", field="name")
    candidate = Member(id=member.id, version=member.version, created_at=member.created_at,
                       updated_at=member.updated_at)
    candidate.set_profile(profile)
    changed = domain.changed_fields(before, candidate.profile())
    if not changed:
        return before  # nothing changed: no new version, no event
    member.set_profile(profile)
    member.organisation_key = key
    member.updated_at = envelope.utcnow()
    session.flush()
    snapshot = member.profile()
    _announce(session, "member.updated", member, {"profile": _published(session, snapshot), "changed": changed})
    return snapshot


def erase(session: Session, principal: Principal, member_id: str) -> None:
    """GDPR erasure: forget the profile, keep a tombstone, tell every service."""
    member = _load(session, member_id, for_update=True)
    if not domain.can_delete(principal, member_id):
        raise Forbidden("only the member itself or an admin may delete a member")
    member.erase(envelope.utcnow())
    session.flush()
    # Crypto-shredding: without the key no copy of the member's encrypted personal fields can be read.
    session.execute(delete(MemberKey).where(MemberKey.member_id == member_id))
    # Published events about the member carry its data; drop them from the replayable history.
    session.execute(delete(outbox.outbox_table).where(outbox.outbox_table.c.subject == member_id,
                                                      outbox.outbox_table.c.published_at.is_not(None)))
    _announce(session, "member.deleted", member, {"id": member.id, "version": member.version,
                                                  "deleted_at": envelope.isoformat(member.deleted_at)})


def member_key(session: Session, principal: Principal | None, member_id: str) -> dict:
    """The member's key as a JWK (verbund.personal.jwk) for decrypting ``profile.personal`` of its events.

    ``principal`` None is a service over the internal RPC; over HTTP only admins and integrators
    whose token grants personal data (``personal``) and ``member.*`` events may have it (GDPR art.
    5(1)(c): personal data only to those who need it). Raises NotFound (no such member, or no
    encrypted event yet), Gone (erased: the key is deleted), Forbidden.
    """
    if principal is not None and not domain.can_read_personal(principal):
        raise Forbidden("only admins and integrators entitled to personal data may read member keys")
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound(f"no member {member_id}")
    if member.deleted_at is not None:
        raise Gone(f"member {member_id} was deleted; its key is erased")
    held = session.get(MemberKey, member_id)
    if held is None:
        raise NotFound(f"member {member_id} has no key yet")
    return personal.jwk(member_id, held.key)


def _competency_filter(text: str, kind: str | None):
    term = load_vocabulary().find_competency(text)
    match = Competency.term == term if term else Competency.label_key == search_key(text)
    condition = (Competency.member_id == Member.id) & match
    if kind:
        condition &= Competency.kind == kind
    return select(Competency.id).where(condition).exists()


def _tag_filter(facet: str, value: str):
    return select(Tag.value).where((Tag.member_id == Member.id) & (Tag.facet == facet) & (Tag.value == value)).exists()


def search(session: Session, query: dict) -> dict:
    """Members matching every given filter, a page at a time, oldest first.

    ``query``: a loaded ``ListQuerySchema``. Text filters (``q`` within the
    name, ``city`` whole, a free-text ``competency``/``offers``/``needs``
    label whole) compare search keys (``search_key``: NFC, Unicode case
    folding), so they behave alike on SQLite and PostgreSQL."""
    conditions = [Member.deleted_at.is_(None)]
    for column in ("sector", "state"):
        if query.get(column):
            conditions.append(getattr(Member, column) == query[column])
    if query.get("city"):
        conditions.append(Member.city_key == search_key(query["city"]))
    if query.get("postcode"):
        conditions.append(Member.postcode.startswith(query["postcode"]))
    if query.get("association"):
        conditions.append(_tag_filter("association", query["association"]))
    if query.get("topic"):
        conditions.append(_tag_filter("topic", load_vocabulary().find_topic(query["topic"]) or query["topic"]))
    for param, kind in (("competency", None), ("offers", "offer"), ("needs", "need")):
        if query.get(param):
            conditions.append(_competency_filter(query[param], kind))
    if "sme" in query:
        is_sme = Member.size_category != "large"
        conditions.append(is_sme if query["sme"] else ~is_sme)
    if query.get("q"):
        conditions.append(Member.name_key.contains(search_key(query["q"]), autoescape=True))
    total = session.execute(select(func.count()).select_from(Member).where(*conditions)).scalar_one()
    page, per_page = query["page"], query["per_page"]
    members = session.execute(select(Member).where(*conditions).order_by(Member.created_at, Member.id)
                              .offset((page - 1) * per_page).limit(per_page)).scalars().all()
    return {"items": [member.profile() for member in members], "page": page, "per_page": per_page, "total": total}


def profiles_after(session: Session, after_id: str | None, limit: int) -> dict:
    """Every live profile in id order, a batch at a time: how a read model rebuilds itself."""
    query = select(Member).where(Member.deleted_at.is_(None)).order_by(Member.id).limit(limit)
    if after_id:
        query = query.where(Member.id > after_id)
    members = session.execute(query).scalars().all()
    return {"profiles": [member.profile() for member in members],
            "next": members[-1].id if len(members) == limit else None}
