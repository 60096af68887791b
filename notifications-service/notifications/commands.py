"""The notifications service layer: each function is one use case on a
session. Consuming an event writes the inbox entries and the delivery work
items in one transaction with the inbox claim: an announcement with set-based
INSERT ... SELECT statements, so that 100k members are a handful of
statements, not 100k ORM objects; an event that names its few members (most
events) with one query for what is known of them and one bulk insert each
for their inbox entries and deliveries."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import (
    DateTime,
    String,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased

from notifications import domain
from notifications.channels import webhook as webhooks
from notifications.models import (
    CalendarEntry,
    Delivery,
    DeliveryAttempt,
    Notification,
    Preference,
    PreferenceTopic,
    Recipient,
    RecipientTopic,
    SourceEvent,
    WebhookEndpoint,
)
from notifications.rendering import Renderer, RenderError, context_for
from notifications.schemas import PreferencesSchema, WebhookPatchSchema, WebhookSchema
from verbund import envelope, outbox, personal
from verbund.auth import Principal
from verbund.errors import Forbidden, Gone, NotFound, Unprocessable


def _iso(moment: datetime) -> str:
    return envelope.isoformat(domain.utc(moment))


def _now() -> datetime:
    return envelope.utcnow()


def _ts(value):
    """A timestamp as SQL literal of the right type (SQLite stores them as text)."""
    return literal(value, DateTime(timezone=True))


# --- the read model of recipients ------------------------------------------------------------------

def apply_member_event(session: Session, event: dict, keys: Callable[[str], bytes | None] | None = None) -> None:
    """Keep the recipient read model; an older version than the one held is ignored.

    ``keys(member_id)`` gives the member's key for the contact person that member.* v2 carries
    encrypted (verbund.personal), or None once the member is erased: then no address is stored.
    """
    if event["type"] == "member.deleted":
        personal.forget(keys, event["data"]["id"])
        erase_member(session, event["data"]["id"], event["data"]["version"], keep_event_id=event["id"])
        return
    current = session.get(Recipient, event["data"]["profile"]["id"], with_for_update=True)
    if current is not None and current.version >= event["data"]["profile"]["version"]:
        return  # stale or repeated: what we hold is as new or newer (possibly a tombstone)
    profile = personal.member_profile(event, keys)
    if current is None:
        current = Recipient(member_id=profile["id"])
        session.add(current)
    current.version = profile["version"]
    current.deleted = False
    current.name = profile["name"]
    current.contact_name = profile["contact"]["name"]
    current.email = profile["contact"]["email"]
    current.language = profile["contact"]["language"]
    # No address (the key was erased before this event arrived): nothing can be mailed.
    current.consent_email = bool(profile["consent"]["email"]) and current.email is not None
    current.sector = profile["sector"]
    current.associations = ",".join(profile["associations"])
    current.updated_at = _now()
    session.execute(delete(RecipientTopic).where(RecipientTopic.member_id == profile["id"]))
    if profile["topics"]:
        session.execute(insert(RecipientTopic), [{"member_id": profile["id"], "topic": topic}
                                                 for topic in dict.fromkeys(profile["topics"])])
    if not current.consent_email:
        # Consent withdrawn: mails not yet sent are not sent.
        _cancel_pending_emails(session, profile["id"], "the member withdrew its consent to e-mail")


def _cancel_pending_emails(session: Session, member_id: str, reason: str) -> None:
    session.execute(update(Delivery).where(Delivery.channel == "email", Delivery.target == member_id,
                                           Delivery.status.in_(("pending", "held")))
                    .values(status="cancelled", last_error=reason, finished_at=_now()))


def erase_member(session: Session, member_id: str, version: int, keep_event_id: str | None = None) -> None:
    """GDPR erasure: everything about the member goes; a tombstone keeps its id and version
    so that a late, older ``member.*`` event cannot bring it back."""
    current = session.get(Recipient, member_id, with_for_update=True)
    if current is not None and current.version >= version:
        return
    if current is None:
        current = Recipient(member_id=member_id)
        session.add(current)
    current.version, current.deleted, current.updated_at = version, True, _now()
    for column in ("name", "contact_name", "email", "language", "sector", "associations"):
        setattr(current, column, None)
    current.consent_email = False
    for model in (RecipientTopic, Preference, PreferenceTopic, Notification, CalendarEntry):
        session.execute(delete(model).where(model.member_id == member_id))
    endpoint_ids = select(WebhookEndpoint.id).where(WebhookEndpoint.member_id == member_id)
    # Deliveries to the member, to its endpoints, and integrator deliveries of events about it
    # (except the member.deleted event itself, which integrators need to hear).
    _delete_deliveries(session, or_(
        and_(Delivery.channel == "email", Delivery.target == member_id),
        and_(Delivery.channel == "webhook", Delivery.target.in_(endpoint_ids)),
        and_(Delivery.member_id.is_(None), Delivery.subject == member_id,
             Delivery.source_event_id != (keep_event_id or ""))))
    session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.member_id == member_id))
    _forget_source_events(session, member_id, keep_event_id)
    # Published notification.* events named the member; drop them from the replayable history.
    session.execute(delete(outbox.outbox_table).where(outbox.outbox_table.c.subject == member_id,
                                                      outbox.outbox_table.c.published_at.is_not(None)))


def _forget_source_events(session: Session, member_id: str, keep_event_id: str | None) -> None:
    """Forget kept events about the member, with whatever was still to be sent of them;
    redact the member from events other members still need (a project, a suggestion)."""
    candidates = session.execute(select(SourceEvent).where(or_(
        SourceEvent.subject == member_id, SourceEvent.body.contains(member_id, autoescape=True)))).scalars().all()
    for source in candidates:
        if source.id == keep_event_id:
            continue
        body = json.loads(source.body)
        if domain.about_member(body, member_id):
            _delete_deliveries(session, Delivery.source_event_id == source.id)
            session.execute(delete(Notification).where(Notification.source_event_id == source.id))
            session.delete(source)
            continue
        still_needed = session.execute(select(
            exists().where(Notification.source_event_id == source.id)
            | exists().where(Delivery.source_event_id == source.id))).scalar()
        if not still_needed:
            session.delete(source)
            continue
        body["data"] = domain.redact(body["type"], body["data"], member_id)
        source.body = json.dumps(body, ensure_ascii=False)


def _delete_deliveries(session: Session, condition) -> None:
    """Deliveries and their attempt logs, in chunks (a member may have many)."""
    ids = list(session.execute(select(Delivery.id).where(condition)).scalars())
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(chunk)))
        session.execute(delete(Delivery).where(Delivery.id.in_(chunk)))


def _live_recipient(session: Session, member_id: str) -> Recipient | None:
    """The member's recipient row; Gone after erasure; None while its registration has not arrived."""
    recipient = session.get(Recipient, member_id)
    if recipient is not None and recipient.deleted:
        raise Gone(f"member {member_id} was deleted")
    return recipient


# --- fan-out: from a consumed event to inbox entries and delivery work items -----------------------

def handle(session: Session, event: dict, keys: Callable[[str], bytes | None] | None = None) -> dict:
    """What consuming one event does (inside the inbox claim's transaction); ``keys`` as for
    :func:`apply_member_event`."""
    if event["type"].startswith("member."):
        apply_member_event(session, event, keys)
    return notify(session, event)


def _announcement_audience(plan: domain.Plan):
    """Members an announcement reaches: sector targeted or a shared topic, and (if they
    narrowed their topics) a topic they chose. Both lookups are indexed."""
    candidates = union(
        select(Recipient.member_id.label("member_id")).where(Recipient.sector.in_(plan.sectors)),
        select(RecipientTopic.member_id.label("member_id")).where(RecipientTopic.topic.in_(plan.topics)),
    ).subquery()
    return (select(candidates.c.member_id)
            .join(Recipient, Recipient.member_id == candidates.c.member_id)
            .outerjoin(Preference, Preference.member_id == candidates.c.member_id)
            .where(Recipient.deleted.is_(False))
            .where(or_(Preference.topics_filter.is_(None), Preference.topics_filter.is_(False),
                       exists().where(PreferenceTopic.member_id == candidates.c.member_id,
                                      PreferenceTopic.topic.in_(plan.topics)))))


# The statements of the common case, an event naming a few members, built once (building a
# statement costs more than running it) and run on the session's connection as Core statements
# (the ORM's execute and bulk insert add more than the statements themselves cost).
#
# What the read model knows of the named members: recipient, preferences and enabled endpoints,
# one row per endpoint. A member with an endpoint but no registration yet has a row too; a member
# nobody knows has none (it gets its inbox entry only).
_named = bindparam("member_ids", expanding=True)
_known = union(
    select(Recipient.member_id.label("member_id")).where(Recipient.member_id.in_(_named)),
    select(WebhookEndpoint.member_id.label("member_id")).where(WebhookEndpoint.member_id.in_(_named),
                                                                WebhookEndpoint.enabled.is_(True)),
).subquery()
_NAMED_MEMBERS = (
    select(_known.c.member_id, Recipient.deleted, Recipient.consent_email, Recipient.email,
           Preference.email.label("email_on"), Preference.webhook.label("webhook_on"), Preference.frequency,
           WebhookEndpoint.id.label("endpoint_id"))
    .select_from(_known)
    .outerjoin(Recipient, Recipient.member_id == _known.c.member_id)
    .outerjoin(Preference, Preference.member_id == _known.c.member_id)
    .outerjoin(WebhookEndpoint, and_(WebhookEndpoint.member_id == _known.c.member_id,
                                     WebhookEndpoint.enabled.is_(True)))
)
_INTEGRATOR_ENDPOINTS = select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
    WebhookEndpoint.member_id.is_(None), WebhookEndpoint.enabled.is_(True))
_NEW_NOTIFICATIONS = insert(Notification.__table__).returning(Notification.member_id, Notification.id)
_NEW_DELIVERIES = insert(Delivery.__table__)
_NEW_SOURCE_EVENT = insert(SourceEvent.__table__)


def notify(session: Session, event: dict) -> dict:
    """Everything a consumed event sets off: inbox entries, e-mails (or digest entries)
    and webhook deliveries of the members it concerns, and integrator webhook deliveries.
    Returns how many of each were written."""
    now = _now()
    plan = domain.plan(event)
    session.flush()  # the Core statements below see what the session changed before
    conn = session.connection()
    if plan is None:
        counts = {"inbox": 0, "email": 0, "held": 0, "webhook": 0}
    elif plan.announcement:
        counts = _notify_audience(session, event, plan, now)
    else:
        counts = _notify_calendar_holders(session, event, plan, now) if plan.calendar_holders else None
        named = _notify_members(conn, event, plan.member_ids, now)
        counts = named if counts is None else {key: counts[key] + named[key] for key in named}
    if plan is not None and plan.ics_cancel is not None and counts["inbox"]:
        _record_calendar_entries(session, event, now)
    counts["integrator"] = _queue_integrator_deliveries(conn, event, now)
    if counts["inbox"] or counts["integrator"]:
        conn.execute(_NEW_SOURCE_EVENT, {
            "id": event["id"], "type": event["type"], "subject": event["subject"],
            "body": json.dumps(event, ensure_ascii=False),
            "time": datetime.fromisoformat(event["time"].replace("Z", "+00:00"))})
    return counts


def _notify_audience(session: Session, event: dict, plan: domain.Plan, now: datetime) -> dict:
    """An announcement: set-based, a handful of statements however big the audience."""
    audience = _announcement_audience(plan)
    counts = {"inbox": session.execute(insert(Notification).from_select(
        ["member_id", "source_event_id", "source_type", "created_at"],
        select(audience.subquery().c.member_id, literal(event["id"], String),
               literal(event["type"], String), _ts(now)))).rowcount, "email": 0, "held": 0, "webhook": 0}
    if counts["inbox"]:
        counts.update(_queue_member_deliveries(session, event, now))
    return counts


def _previous_entry(column: str, event_id: str, member_id):
    """A column of the member's newest calendar entry of the joint event ``event_id`` (None if it
    has none), as a correlated subquery: one index lookup per member, however many hold the
    event. Ties of sequence (two instances writing at once) go to one row all the same."""
    entry = aliased(CalendarEntry)
    return (select(getattr(entry, column)).where(entry.event_id == event_id, entry.member_id == member_id)
            .order_by(entry.sequence.desc(), entry.source_event_id.desc()).limit(1).scalar_subquery())


def _notify_calendar_holders(session: Session, event: dict, plan: domain.Plan, now: datetime) -> dict:
    """An event update or cancellation also reaches every member that holds the event's calendar
    entry (was told of the event and not yet of its removal) but is not among the members the
    event names (``_notify_members`` tells those): an inbox entry, and e-mail (with the ``.ics``)
    and webhooks as its consent and preferences allow, as the announcement did. Set-based,
    like an announcement."""
    event_id = event["data"]["event"]["id"]
    holders = (select(CalendarEntry.member_id).distinct()
               .where(CalendarEntry.event_id == event_id,
                      _previous_entry("status", event_id, CalendarEntry.member_id) != "CANCELLED")).subquery()
    audience = (select(holders.c.member_id, literal(event["id"], String), literal(event["type"], String), _ts(now))
                .join(Recipient, Recipient.member_id == holders.c.member_id)
                .where(Recipient.deleted.is_(False), holders.c.member_id.not_in(plan.member_ids)))
    counts = {"inbox": session.execute(insert(Notification).from_select(
        ["member_id", "source_event_id", "source_type", "created_at"], audience)).rowcount,
        "email": 0, "held": 0, "webhook": 0}
    if counts["inbox"]:
        counts.update(_queue_member_deliveries(session, event, now))
    return counts


def _record_calendar_entries(session: Session, event: dict, now: datetime) -> None:
    """Remember the calendar entry of this event each member told of it holds from now on, with
    the SEQUENCE and STATUS of ``domain.calendar_sequence``/``calendar_status`` computed from its
    previous entry; ``dispatch`` writes a mail's ``.ics`` from it. Every member with an inbox entry
    counts, not only those mailed at once: digest mails go out singly with their ``.ics`` when the
    member switches back to immediate mail, and whoever was told of an event is told of its
    changes, on the channels its consent and preferences allow."""
    joint = event["data"]["event"]
    version = int(joint["version"])
    if session.execute(select(CalendarEntry.member_id).where(CalendarEntry.event_id == joint["id"]).limit(1)).first():
        previous = {column: _previous_entry(column, joint["id"], Notification.member_id)
                    for column in ("sequence", "event_version", "status")}
        if event["type"] == "event.updated":
            status = case((previous["status"] == "TENTATIVE", "TENTATIVE"),
                          else_=domain.calendar_status(event["type"]))
        else:
            status = literal(domain.calendar_status(event["type"]), String)
        sequence = case((previous["sequence"].is_(None), version),
                        (and_(previous["event_version"] == version, previous["status"] == status),
                         previous["sequence"]),
                        (previous["sequence"] + 1 > version, previous["sequence"] + 1), else_=version)
    else:  # nobody holds the event yet (an announcement): every copy is the first, no lookups
        status, sequence = literal(domain.calendar_status(event["type"]), String), literal(version)
    session.execute(insert(CalendarEntry).from_select(
        ["member_id", "source_event_id", "event_id", "event_version", "sequence", "status", "created_at"],
        select(Notification.member_id, literal(event["id"], String), literal(joint["id"], String),
               literal(version), sequence, status, _ts(now))
        .where(Notification.source_event_id == event["id"])))


def _notify_members(conn: Connection, event: dict, member_ids: tuple[str, ...], now: datetime) -> dict:
    """An event that names its members: what is known of them in one query, their inbox
    entries in one insert, their e-mail and webhook deliveries in another."""
    known: dict[str, list] = {}
    for row in conn.execute(_NAMED_MEMBERS, {"member_ids": list(member_ids)}):
        known.setdefault(row.member_id, []).append(row)
    members = [m for m in member_ids if not (m in known and known[m][0].deleted)]  # erased: not told
    counts = {"inbox": len(members), "email": 0, "held": 0, "webhook": 0}
    if not members:
        return counts
    notification_ids = dict(conn.execute(_NEW_NOTIFICATIONS, [
        {"member_id": m, "source_event_id": event["id"], "source_type": event["type"], "created_at": now}
        for m in members]).all())
    deliveries = []
    for member_id in members:
        rows = known.get(member_id, ())
        if not rows:
            continue
        member, notification_id = rows[0], notification_ids[member_id]
        status = domain.email_status(member.consent_email, member.email, member.email_on, member.frequency)
        if status is not None:
            deliveries.append(_delivery(event, now, "email", member_id, member_id, notification_id, status))
            counts["email" if status == "pending" else "held"] += 1
        if domain.wants_webhooks(member.webhook_on):
            for row in rows:
                if row.endpoint_id is not None:
                    deliveries.append(_delivery(event, now, "webhook", row.endpoint_id, member_id,
                                                notification_id))
                    counts["webhook"] += 1
    if deliveries:
        conn.execute(_NEW_DELIVERIES, deliveries)
    return counts


def _delivery(event: dict, now: datetime, channel: str, target: str, member_id: str | None,
              notification_id: int | None, status: str = "pending") -> dict:
    return {"channel": channel, "target": target, "source_event_id": event["id"], "source_type": event["type"],
            "subject": event["subject"], "member_id": member_id, "notification_id": notification_id,
            "status": status, "attempts": 0, "next_attempt_at": now, "created_at": now}


def _queue_member_deliveries(session: Session, event: dict, now: datetime) -> dict:
    columns = ["channel", "target", "source_event_id", "source_type", "subject", "member_id", "notification_id",
               "status", "attempts", "next_attempt_at", "created_at"]
    mine = Notification.source_event_id == event["id"]
    constants = (literal(event["id"], String), literal(event["type"], String), literal(event["subject"], String))
    wants_email = or_(Preference.email.is_(None), Preference.email.is_(True))
    on_digest = Preference.frequency.in_(domain.DIGEST_FREQUENCIES)  # as domain.email_status

    def emails(status: str, when):
        # Members on a digest get their e-mail deliveries held until the digest collects them.
        return (select(literal("email", String), Notification.member_id, *constants, Notification.member_id,
                       Notification.id, literal(status, String), literal(0), _ts(now), _ts(now))
                .join(Recipient, Recipient.member_id == Notification.member_id)
                .outerjoin(Preference, Preference.member_id == Notification.member_id)
                .where(mine, Recipient.consent_email.is_(True), Recipient.email.is_not(None), wants_email, when))

    pending = session.execute(insert(Delivery).from_select(
        columns, emails("pending", or_(Preference.frequency.is_(None), ~on_digest)))).rowcount
    held = session.execute(insert(Delivery).from_select(columns, emails("held", on_digest))).rowcount
    hooks = (select(literal("webhook", String), WebhookEndpoint.id, *constants, Notification.member_id,
                    Notification.id, literal("pending", String), literal(0), _ts(now), _ts(now))
             .join(WebhookEndpoint, and_(WebhookEndpoint.member_id == Notification.member_id,
                                         WebhookEndpoint.enabled.is_(True)))
             .outerjoin(Preference, Preference.member_id == Notification.member_id)
             .where(mine, or_(Preference.webhook.is_(None), Preference.webhook.is_(True))))
    webhook = session.execute(insert(Delivery).from_select(columns, hooks)).rowcount
    return {"email": pending, "held": held, "webhook": webhook}


def _queue_integrator_deliveries(conn: Connection, event: dict, now: datetime) -> int:
    rows = [_delivery(event, now, "webhook", endpoint.id, None, None)
            for endpoint in conn.execute(_INTEGRATOR_ENDPOINTS)
            if any(domain.type_matches(pattern, event["type"])
                   for pattern in json.loads(endpoint.event_types or '["#"]'))]
    if rows:
        conn.execute(_NEW_DELIVERIES, rows)
    return len(rows)


# --- preferences -----------------------------------------------------------------------------------

def _own(principal: Principal, member_id: str, what: str) -> None:
    if not (principal.is_admin or principal.is_member(member_id)):
        raise Forbidden(f"you may see and change your own {what} only")


def _preferences_view(session: Session, member_id: str) -> dict:
    preference = session.get(Preference, member_id)
    recipient = session.get(Recipient, member_id)
    topics = sorted(session.execute(select(PreferenceTopic.topic).where(
        PreferenceTopic.member_id == member_id)).scalars())
    email = preference.email if preference else True
    return {
        "member_id": member_id,
        "channels": {"inbox": True, "email": email, "webhook": preference.webhook if preference else True},
        "frequency": preference.frequency if preference else "immediately",
        "topics": topics if preference and preference.topics_filter else None,
        "language": preference.language if preference else None,
        "effective_language": domain.language(preference.language if preference else None,
                                              recipient.language if recipient else None),
        # E-mail also needs the consent given in the member profile and its contact address.
        "email_consent": bool(recipient and recipient.consent_email),
        "email_address": recipient.email if recipient else None,
    }


def get_preferences(session: Session, principal: Principal, member_id: str) -> dict:
    _own(principal, member_id, "preferences")
    _live_recipient(session, member_id)
    return _preferences_view(session, member_id)


def set_preferences(session: Session, principal: Principal, member_id: str, data: dict) -> dict:
    _own(principal, member_id, "preferences")
    changes = PreferencesSchema().load(data)
    _live_recipient(session, member_id)
    now = _now()
    preference = session.get(Preference, member_id, with_for_update=True)
    if preference is None:
        preference = Preference(member_id=member_id, email=True, webhook=True, frequency="immediately",
                                topics_filter=False, updated_at=now)
        session.add(preference)
    before = preference.frequency
    channels = changes.get("channels", {})
    if "email" in channels:
        preference.email = channels["email"]
    if "webhook" in channels:
        preference.webhook = channels["webhook"]
    if "language" in changes:
        preference.language = changes["language"]
    if "frequency" in changes:
        preference.frequency = changes["frequency"]
        if preference.frequency in domain.DIGEST_FREQUENCIES and before not in domain.DIGEST_FREQUENCIES:
            preference.last_digest_at = now  # the first digest comes at the next slot, not at once
    if "topics" in changes:
        session.execute(delete(PreferenceTopic).where(PreferenceTopic.member_id == member_id))
        preference.topics_filter = changes["topics"] is not None
        if changes["topics"]:
            session.execute(insert(PreferenceTopic), [{"member_id": member_id, "topic": topic}
                                                      for topic in dict.fromkeys(changes["topics"])])
    preference.updated_at = now
    session.flush()
    if not preference.email:
        _cancel_pending_emails(session, member_id, "the member turned e-mail off")
    elif preference.frequency == "immediately":
        # Entries waiting for a digest go out now.
        session.execute(update(Delivery).where(Delivery.channel == "email", Delivery.target == member_id,
                                               Delivery.status == "held")
                        .values(status="pending", next_attempt_at=now))
    return _preferences_view(session, member_id)


def unsubscribe(session: Session, token: str, secret: str) -> str:
    """Turn e-mail off for the member the token was made for; returns its id."""
    member_id = domain.member_of_unsubscribe_token(token, secret)
    if member_id is None:
        raise NotFound("this unsubscribe link is not valid")
    recipient = session.get(Recipient, member_id)
    if recipient is None or recipient.deleted:
        raise NotFound("this unsubscribe link is not valid any more")
    set_preferences(session, Principal("unsubscribe", "member", member_id=member_id), member_id,
                    {"channels": {"email": False}})
    return member_id


# --- the inbox -------------------------------------------------------------------------------------

def render_entry(renderer: Renderer, source: SourceEvent | None, source_type: str, lang: str) -> dict:
    """Title and summary of an inbox entry in the reader's language; a broken template
    shows the event type rather than failing the whole page."""
    if source is None:
        return {"title": source_type, "summary": None, "kind": domain.KINDS.get(source_type)}
    body = json.loads(source.body)
    kind = domain.KINDS[source_type]
    try:
        rendered = renderer.render(kind, lang, context_for(source_type, body["data"], lang))
        return {"title": rendered.subject, "summary": rendered.summary, "kind": kind}
    except RenderError:
        return {"title": source_type, "summary": None, "kind": kind}


def _entry(renderer: Renderer, notification: Notification, source: SourceEvent | None, lang: str) -> dict:
    return {
        "id": notification.id,
        "type": notification.source_type,
        "source_event_id": notification.source_event_id,
        "subject": source.subject if source else None,
        **render_entry(renderer, source, notification.source_type, lang),
        "created_at": _iso(notification.created_at),
        "read": notification.read_at is not None,
        "read_at": _iso(notification.read_at) if notification.read_at else None,
    }


def _reader_language(session: Session, member_id: str) -> str:
    preference, recipient = session.get(Preference, member_id), session.get(Recipient, member_id)
    return domain.language(preference.language if preference else None, recipient.language if recipient else None)


def inbox(session: Session, principal: Principal, member_id: str, query: dict, renderer: Renderer) -> dict:
    """A member's notifications, newest first, a page at a time."""
    _own(principal, member_id, "inbox")
    _live_recipient(session, member_id)
    conditions = [Notification.member_id == member_id]
    if query["unread"]:
        conditions.append(Notification.read_at.is_(None))
    total = session.execute(select(func.count()).select_from(Notification).where(*conditions)).scalar_one()
    unread = session.execute(select(func.count()).select_from(Notification).where(
        Notification.member_id == member_id, Notification.read_at.is_(None))).scalar_one()
    page, per_page = query["page"], query["per_page"]
    rows = session.execute(
        select(Notification, SourceEvent).outerjoin(SourceEvent, SourceEvent.id == Notification.source_event_id)
        .where(*conditions).order_by(Notification.created_at.desc(), Notification.id.desc())
        .offset((page - 1) * per_page).limit(per_page)).all()
    lang = _reader_language(session, member_id)
    return {"items": [_entry(renderer, notification, source, lang) for notification, source in rows],
            "page": page, "per_page": per_page, "total": total, "unread": unread}


def mark_read(session: Session, principal: Principal, member_id: str, notification_id: int,
              renderer: Renderer) -> dict:
    _own(principal, member_id, "inbox")
    notification = session.execute(select(Notification).where(
        Notification.id == notification_id, Notification.member_id == member_id).with_for_update()).scalar()
    if notification is None:
        raise NotFound(f"no notification {notification_id} in this inbox")
    if notification.read_at is None:
        notification.read_at = _now()
    source = session.get(SourceEvent, notification.source_event_id)
    return _entry(renderer, notification, source, _reader_language(session, member_id))


def mark_all_read(session: Session, principal: Principal, member_id: str) -> dict:
    _own(principal, member_id, "inbox")
    marked = session.execute(update(Notification).where(
        Notification.member_id == member_id, Notification.read_at.is_(None)).values(read_at=_now())).rowcount
    return {"marked": marked}


# --- webhook endpoints -----------------------------------------------------------------------------

def _endpoint_view(endpoint: WebhookEndpoint, secret: bool = False) -> dict:
    view = {
        "id": endpoint.id,
        "url": endpoint.url,
        "owner": {"role": endpoint.owner_role, "member_id": endpoint.member_id},
        "event_types": json.loads(endpoint.event_types) if endpoint.event_types else None,
        "description": endpoint.description,
        "allow_private": endpoint.allow_private,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": _iso(endpoint.created_at),
    }
    if secret:
        view["secret"] = endpoint.secret  # shown once, when the endpoint is made
    return view


def _check_url(url: str, allow_private: bool) -> None:
    try:
        webhooks.check_url(url, allow_private=allow_private)
    except webhooks.UnsafeUrl as exc:
        raise Unprocessable("validation failed", fields={"url": [str(exc)]}) from None


def create_webhook(session: Session, principal: Principal, data: dict) -> dict:
    body = WebhookSchema().load(data)
    if body.get("allow_private") and not principal.is_admin:
        raise Forbidden("only an admin may allow private or loopback webhook addresses")
    if principal.role == "member":
        member_id = body.get("member_id", principal.member_id)
        if member_id != principal.member_id:
            raise Forbidden("you may register webhooks for your own member only")
    elif principal.role == "integrator":
        if "member_id" in body:
            raise Unprocessable("validation failed", fields={"member_id": ["integrators receive platform events, "
                                                                           "not a member's notifications"]})
        member_id = None
    elif principal.is_admin:
        member_id = body.get("member_id")
    else:
        raise Forbidden("organizers do not register webhooks")
    if member_id is not None:
        if body.get("event_types"):
            raise Unprocessable("validation failed", fields={"event_types": [
                "a member's webhook receives all its notifications; choose topics in the preferences"]})
        _live_recipient(session, member_id)
    _check_url(body["url"], bool(body.get("allow_private")))
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()), owner_role="member" if member_id else principal.role,
        owner_subject=principal.subject, member_id=member_id, url=body["url"], secret=webhooks.new_secret(),
        event_types=None if member_id else json.dumps(body.get("event_types") or ["#"]),
        description=body.get("description"), allow_private=bool(body.get("allow_private")), enabled=True,
        created_at=_now())
    session.add(endpoint)
    session.flush()
    return _endpoint_view(endpoint, secret=True)


def _may_manage(principal: Principal, endpoint: WebhookEndpoint) -> bool:
    if principal.is_admin:
        return True
    if endpoint.member_id is not None:
        return principal.is_member(endpoint.member_id)
    return principal.role == endpoint.owner_role and principal.subject == endpoint.owner_subject


def _endpoint(session: Session, principal: Principal, endpoint_id: str, for_update: bool = False) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    endpoint = session.execute(query.with_for_update() if for_update else query).scalar()
    if endpoint is None or not _may_manage(principal, endpoint):
        raise NotFound(f"no webhook {endpoint_id}")
    return endpoint


def list_webhooks(session: Session, principal: Principal) -> dict:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if principal.role == "member":
        query = query.where(WebhookEndpoint.member_id == principal.member_id)
    elif not principal.is_admin:
        query = query.where(WebhookEndpoint.member_id.is_(None), WebhookEndpoint.owner_role == principal.role,
                            WebhookEndpoint.owner_subject == principal.subject)
    return {"items": [_endpoint_view(endpoint) for endpoint in session.execute(query).scalars()]}


def get_webhook(session: Session, principal: Principal, endpoint_id: str) -> dict:
    return _endpoint_view(_endpoint(session, principal, endpoint_id))


def update_webhook(session: Session, principal: Principal, endpoint_id: str, data: dict) -> dict:
    changes = WebhookPatchSchema().load(data)
    endpoint = _endpoint(session, principal, endpoint_id, for_update=True)
    if "allow_private" in changes and changes["allow_private"] != endpoint.allow_private and not principal.is_admin:
        raise Forbidden("only an admin may allow private or loopback webhook addresses")
    if "event_types" in changes and endpoint.member_id is not None:
        raise Unprocessable("validation failed", fields={"event_types": ["only integrator webhooks filter types"]})
    for name in ("url", "description", "allow_private"):
        if name in changes:
            setattr(endpoint, name, changes[name])
    if "event_types" in changes:
        endpoint.event_types = json.dumps(changes["event_types"])
    _check_url(endpoint.url, endpoint.allow_private)
    if changes.get("enabled") is True and not endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason = True, None
    elif changes.get("enabled") is False and endpoint.enabled:
        disable_endpoint(session, endpoint, "disabled by its owner")
    return _endpoint_view(endpoint)


def delete_webhook(session: Session, principal: Principal, endpoint_id: str) -> None:
    endpoint = _endpoint(session, principal, endpoint_id, for_update=True)
    ids = select(Delivery.id).where(Delivery.channel == "webhook", Delivery.target == endpoint.id)
    session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)))
    session.execute(delete(Delivery).where(Delivery.channel == "webhook", Delivery.target == endpoint.id))
    session.delete(endpoint)


def disable_endpoint(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to an endpoint; what was still waiting for it is reported as failed."""
    from notifications import dispatch  # the outcome events live there

    endpoint.enabled, endpoint.disabled_reason = False, reason
    waiting = session.execute(select(Delivery).where(
        Delivery.channel == "webhook", Delivery.target == endpoint.id,
        Delivery.status.in_(("pending", "sending"))).with_for_update()).scalars().all()
    for delivery in waiting:
        dispatch.fail(session, delivery, f"endpoint disabled: {reason}")


def _attempt_view(attempt: DeliveryAttempt) -> dict:
    return {"number": attempt.number, "at": _iso(attempt.at), "duration_ms": attempt.duration_ms,
            "status_code": attempt.status_code, "outcome": attempt.outcome, "error": attempt.error}


def delivery_view(delivery: Delivery, attempts: list[DeliveryAttempt]) -> dict:
    return {
        "id": delivery.id, "channel": delivery.channel, "target": delivery.target,
        "source_event_id": delivery.source_event_id, "source_type": delivery.source_type,
        "member_id": delivery.member_id, "notification_id": delivery.notification_id, "status": delivery.status,
        "attempts": delivery.attempts, "last_error": delivery.last_error,
        "next_attempt_at": _iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "created_at": _iso(delivery.created_at),
        "finished_at": _iso(delivery.finished_at) if delivery.finished_at else None,
        "log": [_attempt_view(attempt) for attempt in attempts],
    }


def _deliveries_page(session: Session, conditions, query: dict) -> dict:
    total = session.execute(select(func.count()).select_from(Delivery).where(*conditions)).scalar_one()
    page, per_page = query["page"], query["per_page"]
    deliveries = session.execute(select(Delivery).where(*conditions).order_by(Delivery.id.desc())
                                 .offset((page - 1) * per_page).limit(per_page)).scalars().all()
    attempts: dict[int, list] = {}
    if deliveries:
        logged = select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_([d.id for d in deliveries]))
        for attempt in session.execute(logged.order_by(DeliveryAttempt.number)).scalars():
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return {"items": [delivery_view(d, attempts.get(d.id, [])) for d in deliveries],
            "page": page, "per_page": per_page, "total": total}


def webhook_deliveries(session: Session, principal: Principal, endpoint_id: str, query: dict) -> dict:
    """The delivery log of an endpoint: every delivery, newest first, with every attempt."""
    endpoint = _endpoint(session, principal, endpoint_id)
    return _deliveries_page(session, [Delivery.channel == "webhook", Delivery.target == endpoint.id], query)


def failures(session: Session, query: dict) -> dict:
    """The failure log: deliveries that gave up (after retries, a refusal, or a template that failed)."""
    return _deliveries_page(session, [Delivery.status == "failed"], query)
