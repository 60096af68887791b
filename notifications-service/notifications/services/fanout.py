"""Fan-out: from a consumed event to inbox entries and delivery work items, in one
transaction with the inbox claim: an announcement with set-based INSERT ... SELECT statements,
so that 100k members are a handful of statements, not 100k ORM objects; an event that names
its few members (most events) with one query for what is known of them and one bulk insert each
for their inbox entries and deliveries."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import (
    DateTime,
    String,
    and_,
    bindparam,
    case,
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
from notifications.models import (
    CalendarEntry,
    Delivery,
    Notification,
    Preference,
    PreferenceKind,
    PreferenceTopic,
    Recipient,
    RecipientTopic,
    SourceEvent,
    WebhookEndpoint,
)
from verbund import envelope
from verbund.database import UnitOfWork


def _ts(value):
    """A timestamp as SQL literal of the right type (SQLite stores them as text)."""
    return literal(value, DateTime(timezone=True))


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
           PreferenceKind.mode.label("override"), WebhookEndpoint.id.label("endpoint_id"))
    .select_from(_known)
    .outerjoin(Recipient, Recipient.member_id == _known.c.member_id)
    .outerjoin(Preference, Preference.member_id == _known.c.member_id)
    .outerjoin(PreferenceKind, and_(PreferenceKind.member_id == _known.c.member_id,
                                    PreferenceKind.kind == bindparam("kind")))
    .outerjoin(WebhookEndpoint, and_(WebhookEndpoint.member_id == _known.c.member_id,
                                     WebhookEndpoint.enabled.is_(True)))
)


_INTEGRATOR_ENDPOINTS = select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
    WebhookEndpoint.member_id.is_(None), WebhookEndpoint.enabled.is_(True))


_NEW_NOTIFICATIONS = insert(Notification.__table__).returning(Notification.member_id, Notification.id)


_NEW_DELIVERIES = insert(Delivery.__table__)


_NEW_SOURCE_EVENT = insert(SourceEvent.__table__)


class Rows:
    """Rows of a batch's fan-out written at the end with one insert per table (``write``) instead
    of one per event: the deliveries and source events of events that name their members. Nothing
    in a fan-out reads them back, so the policy sees the same as event by event; an erasure
    (``member.deleted``) must come after ``write``, so that it finds every delivery."""

    def __init__(self):
        self.deliveries: list[dict] = []
        self.source_events: list[dict] = []

    def write(self, conn: Connection) -> None:
        if self.deliveries:
            conn.execute(_NEW_DELIVERIES, self.deliveries)
        if self.source_events:
            conn.execute(_NEW_SOURCE_EVENT, self.source_events)
        self.deliveries, self.source_events = [], []


def notify(uow: UnitOfWork, event: dict, policy: domain.MailPolicy | None = None, rows: Rows | None = None) -> dict:
    """Everything a consumed event sets off: inbox entries, e-mails (or digest entries)
    and webhook deliveries of the members it concerns, and integrator webhook deliveries.
    E-mails follow the notification policy (``domain.mail_mode``; ``policy`` the operator's
    settings): what needs the member is queued to leave after ``policy.coalesce_seconds`` (more
    changes of the same topic meanwhile become one message, ``dispatch``), news are held for
    the digest. Returns how many of each were written: ``{inbox, email, held, webhook, integrator}``.
    ``rows``: a batch's ``Rows``, which takes the deliveries and the source event of an event that
    names its members, for one insert each for the batch (the caller writes them)."""
    session, now = uow.session, uow.now()
    policy = policy or domain.MailPolicy()
    plan = domain.plan(event)
    session.flush()  # the Core statements below see what the session changed before
    conn = session.connection()
    if plan is None:
        counts = {"inbox": 0, "email": 0, "held": 0, "webhook": 0}
    elif plan.announcement:
        counts = _notify_audience(session, event, plan, now, policy)
    else:
        counts = _notify_calendar_holders(session, event, plan, now, policy) if plan.calendar_holders else None
        named = _notify_members(conn, event, plan, now, policy, sink=rows)
        counts = named if counts is None else {key: counts[key] + named[key] for key in named}
    if plan is not None and plan.ics_cancel is not None and counts["inbox"]:
        _record_calendar_entries(session, event, now)
    # What this service makes itself (reminders, summaries, surveys) is no platform event.
    counts["integrator"] = (0 if event["type"] in domain.INTERNAL_TYPES
                            else _queue_integrator_deliveries(conn, event, now, rows))
    if counts["inbox"] or counts["integrator"]:
        source = {"id": event["id"], "type": event["type"], "subject": event["subject"],
                  "body": envelope.json_text(event),
                  "time": datetime.fromisoformat(event["time"].replace("Z", "+00:00"))}
        if rows is None:
            conn.execute(_NEW_SOURCE_EVENT, source)
        else:
            rows.source_events.append(source)
    return counts


def _notify_audience(session: Session, event: dict, plan: domain.Plan, now: datetime,
                     policy: domain.MailPolicy) -> dict:
    """An announcement: set-based, a handful of statements however big the audience."""
    audience = _announcement_audience(plan)
    counts = {"inbox": session.execute(insert(Notification).from_select(
        ["member_id", "source_event_id", "source_type", "created_at"],
        select(audience.subquery().c.member_id, literal(event["id"], String),
               literal(event["type"], String), _ts(now)))).rowcount, "email": 0, "held": 0, "webhook": 0}
    if counts["inbox"]:
        counts.update(_queue_member_deliveries(session, event, plan, now, policy))
    return counts


def _previous_entry(column: str, event_id: str, member_id):
    """A column of the member's newest calendar entry of the joint event ``event_id`` (None if it
    has none), as a correlated subquery: one index lookup per member, however many hold the
    event. Ties of sequence (two instances writing at once) go to one row all the same."""
    entry = aliased(CalendarEntry)
    return (select(getattr(entry, column)).where(entry.event_id == event_id, entry.member_id == member_id)
            .order_by(entry.sequence.desc(), entry.source_event_id.desc()).limit(1).scalar_subquery())


def _notify_calendar_holders(session: Session, event: dict, plan: domain.Plan, now: datetime,
                             policy: domain.MailPolicy) -> dict:
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
        # Only invited, not registered: news about the invitation (domain.holder_kind).
        counts.update(_queue_member_deliveries(session, event, plan, now, policy, domain.holder_kind(plan.kind)))
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


def _notify_members(conn: Connection, event: dict, plan: domain.Plan, now: datetime,
                    policy: domain.MailPolicy, sink: Rows | None = None) -> dict:
    """An event that names its members: what is known of them in one query, their inbox
    entries in one insert, their e-mail and webhook deliveries in another."""
    member_ids = plan.member_ids
    known: dict[str, list] = {}
    for row in conn.execute(_NAMED_MEMBERS, {"member_ids": list(member_ids), "kind": plan.kind}):
        known.setdefault(row.member_id, []).append(row)
    members = [m for m in member_ids if not (m in known and known[m][0].deleted)]  # erased: not told
    counts = {"inbox": len(members), "email": 0, "held": 0, "webhook": 0}
    if not members:
        return counts
    notification_ids = _renewed_entries(conn, event, members, now, policy) if event["type"] in RENEWED else {}
    fresh = [m for m in members if m not in notification_ids]
    if fresh:
        notification_ids.update(conn.execute(_NEW_NOTIFICATIONS, [
            {"member_id": m, "source_event_id": event["id"], "source_type": event["type"], "created_at": now}
            for m in fresh]).all())
    deliveries = []
    for member_id in members:
        rows = known.get(member_id, ())
        if not rows:
            continue
        member, notification_id = rows[0], notification_ids[member_id]
        status = domain.email_status(member.consent_email, member.email, member.email_on, member.frequency,
                                     plan.kind, member.override, policy.default_frequency)
        if status is not None:
            deliveries.append(_delivery(event, now, "email", member_id, member_id, notification_id, status,
                                        now + timedelta(seconds=policy.coalesce_seconds)))
            counts["email" if status == "pending" else "held"] += 1
        if domain.wants_webhooks(member.webhook_on):
            for row in rows:
                if row.endpoint_id is not None:
                    deliveries.append(_delivery(event, now, "webhook", row.endpoint_id, member_id,
                                                notification_id))
                    counts["webhook"] += 1
    if sink is not None:
        sink.deliveries.extend(deliveries)
    elif deliveries:
        conn.execute(_NEW_DELIVERIES, deliveries)
    return counts


# Kinds whose inbox entry is a state rather than news of its own: a new suggestion list within the
# coalescing window replaces the member's unread entry of the last one instead of adding another
# ("Neue Partnervorschläge" three times in a minute is noise; the entry shows the newest list).
RENEWED = ("match.suggested",)

_UNREAD_ENTRY = (
    select(Notification.id).where(Notification.member_id == bindparam("member_id"),
                                  Notification.source_type == bindparam("source_type"),
                                  Notification.read_at.is_(None), Notification.created_at >= bindparam("since"))
    .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(1)
)


def _renewed_entries(conn: Connection, event: dict, members: list[str], now: datetime,
                     policy: domain.MailPolicy) -> dict[str, int]:
    """The members' unread inbox entries of the same kind written within the coalescing window
    (``policy.coalesce_seconds`` before ``now``), now pointing to ``event`` and dated ``now``:
    {member id: entry id}. The e-mails keep their own source events and merge as before."""
    since = now - timedelta(seconds=policy.coalesce_seconds)
    renewed = {}
    for member_id in members:
        entry = conn.execute(_UNREAD_ENTRY, {"member_id": member_id, "source_type": event["type"],
                                             "since": since}).scalar()
        if entry is not None:
            conn.execute(update(Notification.__table__).where(Notification.id == entry)
                         .values(source_event_id=event["id"], created_at=now))
            renewed[member_id] = entry
    return renewed


def _delivery(event: dict, now: datetime, channel: str, target: str, member_id: str | None,
              notification_id: int | None, status: str = "pending", due: datetime | None = None) -> dict:
    return {"channel": channel, "target": target, "source_event_id": event["id"], "source_type": event["type"],
            "subject": event["subject"], "member_id": member_id, "notification_id": notification_id,
            "status": status, "attempts": 0, "next_attempt_at": due or now, "created_at": now,
            "topic": domain.topic_of(event) if channel == "email" else None}


def _mail_mode(kind: str, policy: domain.MailPolicy):
    """``domain.mail_mode`` as SQL over Notification, Preference and the member's PreferenceKind."""
    override = (select(PreferenceKind.mode).where(PreferenceKind.member_id == Notification.member_id,
                                                  PreferenceKind.kind == kind).scalar_subquery())
    rule = domain.POLICY.get(kind)
    if rule is None or rule.need == domain.ACTION:
        default = literal("immediately", String)
    else:
        default = case((func.coalesce(Preference.frequency, policy.default_frequency) == "immediately",
                        "immediately"), else_="digest")
    return func.coalesce(override, default)


def _queue_member_deliveries(session: Session, event: dict, plan: domain.Plan, now: datetime,
                             policy: domain.MailPolicy, kind: str | None = None) -> dict:
    columns = ["channel", "target", "source_event_id", "source_type", "subject", "member_id", "notification_id",
               "status", "attempts", "next_attempt_at", "created_at", "topic"]
    mine = Notification.source_event_id == event["id"]
    constants = (literal(event["id"], String), literal(event["type"], String), literal(event["subject"], String))
    topic = literal(domain.topic_of(event), String)
    wants_email = or_(Preference.email.is_(None), Preference.email.is_(True))
    mode = _mail_mode(kind or plan.kind, policy)  # as domain.email_status
    due = now + timedelta(seconds=policy.coalesce_seconds)

    def emails(status: str, wanted_mode: str, at: datetime):
        # News (and kinds a member put in its digest) are held until the digest collects them.
        return (select(literal("email", String), Notification.member_id, *constants, Notification.member_id,
                       Notification.id, literal(status, String), literal(0), _ts(at), _ts(now), topic)
                .join(Recipient, Recipient.member_id == Notification.member_id)
                .outerjoin(Preference, Preference.member_id == Notification.member_id)
                .where(mine, Recipient.consent_email.is_(True), Recipient.email.is_not(None), wants_email,
                       mode == wanted_mode))

    pending = session.execute(insert(Delivery).from_select(columns, emails("pending", "immediately", due))).rowcount
    held = session.execute(insert(Delivery).from_select(columns, emails("held", "digest", now))).rowcount
    hooks = (select(literal("webhook", String), WebhookEndpoint.id, *constants, Notification.member_id,
                    Notification.id, literal("pending", String), literal(0), _ts(now), _ts(now),
                    literal(None, String))
             .join(WebhookEndpoint, and_(WebhookEndpoint.member_id == Notification.member_id,
                                         WebhookEndpoint.enabled.is_(True)))
             .outerjoin(Preference, Preference.member_id == Notification.member_id)
             .where(mine, or_(Preference.webhook.is_(None), Preference.webhook.is_(True))))
    webhook = session.execute(insert(Delivery).from_select(columns, hooks)).rowcount
    return {"email": pending, "held": held, "webhook": webhook}


def _queue_integrator_deliveries(conn: Connection, event: dict, now: datetime, rows: Rows | None = None) -> int:
    deliveries = [_delivery(event, now, "webhook", endpoint.id, None, None)
                  for endpoint in conn.execute(_INTEGRATOR_ENDPOINTS)
                  if any(domain.type_matches(pattern, event["type"])
                         for pattern in json.loads(endpoint.event_types or '["#"]'))]
    if rows is not None:
        rows.deliveries.extend(deliveries)
    elif deliveries:
        conn.execute(_NEW_DELIVERIES, deliveries)
    return len(deliveries)
