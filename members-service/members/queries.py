"""The members read side: profiles, search, read-model paging, keys and the vocabulary.
Functions take a SQLAlchemy Session (``uow.session``) and change nothing."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from members import domain
from members.models import (
    Competency,
    ContactRequest,
    IntegratorGrant,
    Member,
    MemberKey,
    ProjectContact,
    StaffAccount,
    Tag,
)
from verbund import personal, stats
from verbund.auth import Principal
from verbund.envelope import isoformat
from verbund.errors import Forbidden, Gone, NotFound, Unauthorized
from verbund.schema_fields import search_key
from verbund.vocabulary import load as load_vocabulary
from verbund.vocabulary import normalize


def load_member(session: Session, member_id: str, *, for_update: bool = False) -> Member:
    """The live member ``member_id`` (row-locked with ``for_update``); raises NotFound (404), or
    Gone (410) for an erased member."""
    query = select(Member).where(Member.id == member_id)
    member = session.execute(query.with_for_update() if for_update else query).scalar()
    if member is None:
        raise NotFound(f"no member {member_id}")
    if member.deleted_at is not None:
        raise Gone(f"member {member_id} was deleted")
    return member


def integrator_grant(session: Session, principal: Principal | None) -> dict | None:
    """The current grant of the integrator ``principal`` (``IntegratorGrant.view``), None for other
    principals and integrators without a recorded grant. Raises Forbidden (403) for a token whose
    grant is not the current one (``domain.check_grant``), before anything is read."""
    if principal is None or principal.role != "integrator":
        return None
    held = session.get(IntegratorGrant, principal.subject)
    grant = held.view() if held is not None else None
    domain.check_grant(principal, grant)
    return grant


def get(session: Session, principal: Principal, member_id: str) -> dict:
    """A member's profile, for those who may read it (``domain.can_read``): Forbidden, NotFound, Gone."""
    domain.authorize_read(principal, member_id)
    return load_member(session, member_id).profile()


def member_key(session: Session, principal: Principal | None, member_id: str) -> dict:
    """The member's key as a JWK (verbund.personal.jwk) for decrypting ``profile.personal`` of its events.

    ``principal`` None is a service over the internal RPC; over HTTP only admins and integrators
    whose token carries their current grant (``integrator_grant``), which gives personal data and
    ``member.*`` events, may have it (GDPR art. 5(1)(c): personal data only to those who need it).
    Raises NotFound (no such member, or no encrypted event yet), Gone (erased: the key is deleted),
    Forbidden (not entitled, or a token of an older grant).
    """
    domain.authorize_key(principal, integrator_grant(session, principal))
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound(f"no member {member_id}")
    if member.deleted_at is not None:
        raise Gone(f"member {member_id} was deleted; its key is erased")
    held = session.get(MemberKey, member_id)
    if held is None:
        raise NotFound(f"member {member_id} has no key yet")
    return personal.jwk(member_id, held.key)


def member_keys(session: Session, member_ids: list[str]) -> dict[str, dict | None]:
    """{member id: its key as a JWK (verbund.personal.jwk), None for an erased, unknown or not yet
    keyed member}, for the services over the internal RPC: one query for all of ``member_ids``
    (the key and whether its member is live), not the two ORM loads per member of ``member_key``."""
    wanted = list(dict.fromkeys(member_ids))
    keys: dict[str, dict | None] = dict.fromkeys(wanted)
    rows = session.execute(
        select(MemberKey.member_id, MemberKey.key).join(Member, Member.id == MemberKey.member_id)
        .where(MemberKey.member_id.in_(wanted), Member.deleted_at.is_(None))) if wanted else ()
    for member_id, key in rows:
        keys[member_id] = personal.jwk(member_id, key)
    return keys


# Search text shorter than this (folded) matches a term only whole: "IT" or "KI" inside other words would
# bring up nearly every term of the vocabulary.
PART_MIN_LENGTH = 4


def competency_terms(text: str) -> set[str]:
    """The ids of the vocabulary's competency terms a search ``text`` means, through the curated
    vocabulary's labels and synonyms in German and English (``verbund.vocabulary``): the term it names
    (id, label or synonym, folded alike) and, for text of at least ``PART_MIN_LENGTH`` letters, every
    term one of whose labels or synonyms contains it ("Tracking": ``track-and-trace-services`` through
    "shipment tracking", ``track-and-trace-software`` through "shipment tracking software"). Empty when
    the vocabulary knows nothing of it."""
    terms = load_vocabulary()
    found = {terms.find_competency(text)} - {None}
    if len(normalize(text)) >= PART_MIN_LENGTH:
        found.update(term.id for term in terms.search(text, limit=len(terms.competencies)))
    return found


def _competency_filter(text: str, kind: str | None):
    """Members with an offer or need (``kind``; None: either) of a term the text means
    (``competency_terms``) or whose free text holds it (whole, for text shorter than ``PART_MIN_LENGTH``)."""
    key = search_key(text)
    free_text = Competency.label_key.contains(key, autoescape=True) if len(normalize(text)) >= PART_MIN_LENGTH \
        else Competency.label_key == key
    terms = competency_terms(text)
    match = or_(Competency.term.in_(sorted(terms)), free_text) if terms else free_text
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


def cards(session: Session, ids: list[str]) -> dict:
    """What any signed-in person may know of other organisations, for many at once: ``{items: [{id, name,
    sector, state}]}`` for the live members among ``ids`` (unknown and erased ones left out), in the order
    asked. Name, sector and Bundesland are the organisation's, no personal data: the pages that show a
    partner, a candidate or a meeting name it with them."""
    found = {member.id: member for member in session.execute(
        select(Member).where(Member.id.in_(ids), Member.deleted_at.is_(None))).scalars()}
    return {"items": [{"id": found[i].id, "name": found[i].name, "sector": found[i].sector, "state": found[i].state}
                      for i in ids if i in found]}


def profiles_after(session: Session, after_id: str | None, limit: int) -> dict:
    """Every live profile in id order, a batch of at most ``limit`` at a time: how a read model rebuilds
    itself. ``{"profiles": [...], "next": the id to continue after, or None at the end}``."""
    query = select(Member).where(Member.deleted_at.is_(None)).order_by(Member.id).limit(limit)
    if after_id:
        query = query.where(Member.id > after_id)
    members = session.execute(query).scalars().all()
    return {"profiles": [member.profile() for member in members],
            "next": members[-1].id if len(members) == limit else None}


def vocabulary(q: str = "", limit: int = 50) -> dict:
    """The curated vocabulary (``kit/verbund/data/vocabulary.yaml``): every competency term, or the best
    ``limit`` for the search text ``q`` (labels and synonyms, German and English), with all topics and
    categories."""
    terms = load_vocabulary()
    found = terms.search(q, limit=limit) if q else terms.competencies.values()
    return {"competencies": [term.as_dict() for term in found],
            "topics": [topic.as_dict() for topic in terms.topics.values()],
            "categories": list(terms.categories.values())}


# --- contact requests -----------------------------------------------------------------------------

def _names(session: Session, *member_ids: str) -> dict[str, str | None]:
    rows = session.execute(select(Member.id, Member.name).where(Member.id.in_(set(member_ids)))).all()
    return {row.id: row.name for row in rows}


def contact_request_view(session: Session, held: ContactRequest, now: datetime,
                         names: dict[str, str | None] | None = None) -> dict:
    """A contact request as the API shows it: ``{id, requester_id, recipient_id, requester_name,
    recipient_name, message, status, created_at, expires_at, answered_at}``; the names are the
    organisations' current ones, the status ``domain.contact_status`` (``expired`` computed)."""
    names = names if names is not None else _names(session, held.requester_id, held.recipient_id)
    return {"id": held.id, "requester_id": held.requester_id, "recipient_id": held.recipient_id,
            "requester_name": names.get(held.requester_id), "recipient_name": names.get(held.recipient_id),
            "message": held.message, "status": domain.contact_status(held.status, held.expires_at, now),
            "created_at": isoformat(held.created_at), "expires_at": isoformat(held.expires_at),
            "answered_at": isoformat(held.answered_at) if held.answered_at else None}


def contact_requests_between(session: Session, one: str, other: str) -> list[ContactRequest]:
    """Every contact request between two members, in either direction, oldest first."""
    pair = or_(and_(ContactRequest.requester_id == one, ContactRequest.recipient_id == other),
               and_(ContactRequest.requester_id == other, ContactRequest.recipient_id == one))
    return list(session.execute(select(ContactRequest).where(pair).order_by(ContactRequest.created_at)).scalars())


def contact_requests(session: Session, principal: Principal, query: dict, now: datetime) -> dict:
    """The member's contact requests, newest first: ``query["direction"]`` ``incoming`` (asked of it),
    ``outgoing`` (its own) or None for both; ``query["status"]`` pending, accepted, declined or expired
    (None: all). ``{"items": [view, ...]}``."""
    me = principal.member_id
    direction = query.get("direction")
    condition = {"incoming": ContactRequest.recipient_id == me, "outgoing": ContactRequest.requester_id == me}.get(
        direction, or_(ContactRequest.recipient_id == me, ContactRequest.requester_id == me))
    statement = select(ContactRequest).where(condition)
    status = query.get("status")
    if status == "pending":
        statement = statement.where(ContactRequest.status == "pending", ContactRequest.expires_at > now)
    elif status == "expired":
        statement = statement.where(ContactRequest.status == "pending", ContactRequest.expires_at <= now)
    elif status:
        statement = statement.where(ContactRequest.status == status)
    held = list(session.execute(statement.order_by(ContactRequest.created_at.desc(), ContactRequest.id)
                                .limit(500)).scalars())
    names = _names(session, *{m for request in held for m in (request.requester_id, request.recipient_id)})
    return {"items": [contact_request_view(session, request, now, names) for request in held]}


def in_contact(session: Session, one: str, other: str) -> bool:
    """Whether an accepted contact request joins the two members (either direction)."""
    return any(held.status == "accepted" for held in contact_requests_between(session, one, other))


def projects_between(session: Session, one: str, other: str) -> list[ProjectContact]:
    """The formed partner projects both members belong to (``one``'s rows), oldest first."""
    theirs = select(ProjectContact.project_id).where(ProjectContact.member_id == other)
    return list(session.execute(select(ProjectContact).where(
        ProjectContact.member_id == one, ProjectContact.project_id.in_(theirs))
        .order_by(ProjectContact.formed_at, ProjectContact.project_id)).scalars())


def contact_details(session: Session, principal: Principal, member_id: str) -> dict:
    """A member's contact person and e-mail, ``{"contact_name", "contact_email"}``, for those
    ``domain.can_see_contact`` admits (itself, admins, a member in contact with it by an accepted request
    or a formed partner project); Forbidden (403) otherwise, NotFound (404), Gone (410)."""
    member = load_member(session, member_id)
    me = principal.member_id if principal.role == "member" else None
    joined = me is not None and (in_contact(session, me, member_id) or bool(projects_between(session, me, member_id)))
    if not domain.can_see_contact(principal, member_id, joined):
        raise Forbidden("you see a member's contact person once it has accepted your contact request, "
                        "you have accepted its request, or you work together in a formed partner project")
    return {"contact_name": member.contact_name, "contact_email": member.contact_email}


# --- staff accounts -------------------------------------------------------------------------------

def staff_accounts(session: Session) -> dict:
    """Every staff account, active first, then by name: ``{"items": [account, ...]}``."""
    rows = session.execute(select(StaffAccount).order_by(StaffAccount.status, StaffAccount.name)).scalars()
    return {"items": [row.view() for row in rows]}


def integrators(session: Session) -> dict:
    """Every integrator with a recorded grant, active ones first, then by name: ``{"items": [grant, ...]}``
    (``IntegratorGrant.view``, with ``revoked_at``)."""
    rows = session.execute(select(IntegratorGrant).order_by(IntegratorGrant.revoked_at.is_not(None),
                                                            IntegratorGrant.name)).scalars()
    return {"items": [row.view() for row in rows]}


def integrator_active(session: Session, name: str) -> bool:
    """Whether integrator ``name`` has a grant that is not revoked (its tokens with a grant claim are honoured)."""
    held = session.get(IntegratorGrant, name)
    return held is not None and held.revoked_at is None


def staff_active(session: Session, staff_id: str) -> bool:
    """Whether the staff account ``staff_id`` exists and is active (its tokens are honoured)."""
    return session.execute(select(StaffAccount.status).where(StaffAccount.id == staff_id)).scalar() == "active"


def me(session: Session, principal: Principal) -> dict:
    """Who a token is for: ``{role, subject}`` and, by role, ``member_id``, ``name`` (organisation),
    ``language`` (members); ``staff_id``, ``name``, ``email``, ``association``, ``language`` (staff
    accounts); ``association`` (organizer tokens of the command line); ``events`` (integrators).
    Raises Unauthorized (401) for a revoked staff account or an erased member."""
    answer = {"role": principal.role, "subject": principal.subject}
    if principal.staff_id:
        staff = session.get(StaffAccount, principal.staff_id)
        if staff is None or staff.status != "active":
            raise Unauthorized("this staff account was revoked; ask an admin of the platform")
        answer.update(staff_id=staff.id, name=staff.name, email=staff.email, association=staff.association,
                      language=staff.language)
    elif principal.role == "member":
        member = session.get(Member, principal.member_id)
        if member is None or member.deleted_at is not None:
            raise Unauthorized("this member organisation is deleted")
        answer.update(member_id=member.id, name=member.name, language=member.contact_language or "de")
    elif principal.role == "organizer":
        answer["association"] = principal.association
    elif principal.role == "integrator":
        answer["events"] = list(principal.events)
    return answer


# --- dashboard figures ----------------------------------------------------------------------------

def _in_association(query, member_id_column, association: str | None):
    if association is None:
        return query
    return query.where(member_id_column.in_(
        select(Tag.member_id).where(Tag.facet == "association", Tag.value == association)))


def member_stats(session: Session, association: str | None, now: datetime) -> dict:
    """The registered members (erased ones are not counted: erasure removes what they were) of one
    association or of the cooperation: ``{scope, total, by_sector: {sector: n}, by_state: {ISO 3166-2:DE
    code: n}, by_size: {micro|small|medium|large: n} (EU Recommendation 2003/361/EC), sme: n,
    growth: [{month, joined, total}]}`` (months in Europe/Berlin, up to ``now``'s)."""
    live = Member.deleted_at.is_(None)

    def counts(column) -> dict:
        query = _in_association(select(column, func.count()).where(live).group_by(column), Member.id, association)
        return {key: n for key, n in session.execute(query).all() if key is not None}

    joined = session.execute(_in_association(select(Member.created_at).where(live), Member.id, association)).scalars()
    by_size = counts(Member.size_category)
    return {"scope": association or stats.COOPERATION, "total": sum(counts(Member.sector).values()),
            "by_sector": counts(Member.sector), "by_state": counts(Member.state), "by_size": by_size,
            "sme": sum(n for category, n in by_size.items() if category != "large"),
            "growth": stats.growth(joined, now)}


def contact_stats(session: Session, association: str | None, now: datetime) -> dict:
    """Contact requests sent by members of one association (or by anyone) and what became of them:
    ``{scope, sent, accepted, declined, pending, expired}`` (a pending request past its expiry counts
    as expired)."""
    query = _in_association(select(ContactRequest.status, ContactRequest.expires_at), ContactRequest.requester_id,
                            association)
    figures = {"sent": 0, "accepted": 0, "declined": 0, "pending": 0, "expired": 0}
    for status, expires_at in session.execute(query).all():
        figures["sent"] += 1
        figures[domain.contact_status(status, expires_at, now)] += 1
    return {"scope": association or stats.COOPERATION, **figures}


def contacts(session: Session, principal: Principal, member_id: str) -> dict:
    """The members ``member_id`` is in contact with, by name: ``{"items": [{member_id, name, contact_name,
    contact_email, via: [{"kind": "contact_request", "request_id", "since"} | {"kind": "project",
    "project_id", "title", "since"}]}]}``, ordered by name. For the member itself and admins (Forbidden,
    403, otherwise); NotFound (404), Gone (410). Erased members are left out."""
    load_member(session, member_id)
    if not (principal.is_admin or principal.is_member(member_id)):
        raise Forbidden("only the member itself sees its contacts")
    via: dict[str, list[dict]] = {}
    accepted = session.execute(select(ContactRequest).where(
        ContactRequest.status == "accepted",
        or_(ContactRequest.requester_id == member_id, ContactRequest.recipient_id == member_id))
        .order_by(ContactRequest.answered_at)).scalars()
    for held in accepted:
        other = held.recipient_id if held.requester_id == member_id else held.requester_id
        via.setdefault(other, []).append({"kind": "contact_request", "request_id": held.id,
                                          "since": isoformat(held.answered_at)})
    mine = select(ProjectContact.project_id).where(ProjectContact.member_id == member_id)
    teams = session.execute(select(ProjectContact).where(ProjectContact.project_id.in_(mine),
                                                         ProjectContact.member_id != member_id)
                            .order_by(ProjectContact.formed_at, ProjectContact.project_id)).scalars()
    for row in teams:
        via.setdefault(row.member_id, []).append({"kind": "project", "project_id": row.project_id,
                                                  "title": row.title, "since": isoformat(row.formed_at)})
    members = session.execute(select(Member).where(Member.id.in_(set(via)), Member.deleted_at.is_(None))).scalars()
    items = [{"member_id": m.id, "name": m.name, "contact_name": m.contact_name, "contact_email": m.contact_email,
              "via": via[m.id]} for m in members]
    return {"items": sorted(items, key=lambda item: (search_key(item["name"] or ""), item["member_id"]))}
