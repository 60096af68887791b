"""The recipients read model from ``member.*`` events: contact, language, consent, sector,
topics; erasure (``member.deleted``) leaves a tombstone and removes everything else."""
from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import and_, delete, exists, insert, or_, select
from sqlalchemy.orm import Session

from notifications import deliveries, domain
from notifications.models import (
    CalendarEntry,
    Delivery,
    DeliveryAttempt,
    Mailbox,
    Notification,
    Preference,
    PreferenceKind,
    PreferenceTopic,
    Recipient,
    RecipientTopic,
    SourceEvent,
    WebhookEndpoint,
)
from verbund import outbox, personal
from verbund.database import UnitOfWork


def apply_member_event(uow: UnitOfWork, event: dict, keys: Callable[[str], bytes | None] | None = None) -> None:
    """Keep the recipient read model; an older version than the one held is ignored.

    ``keys(member_id)`` gives the member's key for the contact person that member.* v2 carries
    encrypted (verbund.personal), or None once the member is erased: then no address is stored.
    """
    session = uow.session
    if event["type"] == "member.deleted":
        personal.forget(keys, event["data"]["id"])
        erase_member(uow, event["data"]["id"], event["data"]["version"], keep_event_id=event["id"])
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
    current.updated_at = uow.now()
    session.execute(delete(RecipientTopic).where(RecipientTopic.member_id == profile["id"]))
    if profile["topics"]:
        session.execute(insert(RecipientTopic), [{"member_id": profile["id"], "topic": topic}
                                                 for topic in dict.fromkeys(profile["topics"])])
    if not current.consent_email:
        # Consent withdrawn: mails not yet sent are not sent.
        deliveries.cancel_pending_emails(uow, profile["id"], "the member withdrew its consent to e-mail")


def erase_member(uow: UnitOfWork, member_id: str, version: int, keep_event_id: str | None = None) -> None:
    """GDPR erasure (Art. 17): everything about the member goes; a tombstone keeps its id and
    version so that a late, older ``member.*`` event cannot bring it back."""
    session = uow.session
    current = session.get(Recipient, member_id, with_for_update=True)
    if current is not None and current.version >= version:
        return
    if current is None:
        current = Recipient(member_id=member_id)
        session.add(current)
    current.version, current.deleted, current.updated_at = version, True, uow.now()
    for column in ("name", "contact_name", "email", "language", "sector", "associations"):
        setattr(current, column, None)
    current.consent_email = False
    for model in (RecipientTopic, Preference, PreferenceTopic, PreferenceKind, Mailbox, Notification, CalendarEntry):
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
