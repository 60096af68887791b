"""The read side of notifications: preferences, inbox pages, webhook endpoints and their
delivery logs, the failure log. Functions take a Session and change nothing."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifications import domain
from notifications.models import (
    Delivery,
    DeliveryAttempt,
    Notification,
    Preference,
    PreferenceKind,
    PreferenceTopic,
    Recipient,
    SourceEvent,
    WebhookEndpoint,
)
from notifications.rendering import Renderer, RenderError, context_for
from verbund import envelope
from verbund.auth import Principal
from verbund.errors import Gone, NotFound


def _iso(moment: datetime) -> str:
    return envelope.isoformat(domain.utc(moment))


INVALID_UNSUBSCRIBE_LINK = (
    "Dieser Abmeldelink ist ungültig oder unvollständig. Öffnen Sie den Link aus der E-Mail vollständig, "
    "oder melden Sie sich an und ändern Sie Ihre Einstellungen. / This unsubscribe link is invalid or "
    "incomplete. Open the whole link from the e-mail, or sign in and change your settings.")
EXPIRED_UNSUBSCRIBE_LINK = (
    "Dieser Abmeldelink gilt nicht mehr: das Mitglied ist nicht mehr auf der Plattform. / "
    "This unsubscribe link is no longer valid: the member is no longer on the platform.")


def unsubscribe_member(session: Session, token: str, secret: str) -> str:
    """The member an unsubscribe link (``domain.unsubscribe_token``) was made for, checked before
    the page with the button is shown and again when it is used. NotFound (404) with a message in
    German and English for a forged, garbled or cut-off token and for a member erased or unknown."""
    member_id = domain.member_of_unsubscribe_token(token, secret)
    if member_id is None:
        raise NotFound(INVALID_UNSUBSCRIBE_LINK)
    recipient = session.get(Recipient, member_id)
    if recipient is None or recipient.deleted:
        raise NotFound(EXPIRED_UNSUBSCRIBE_LINK)
    return member_id


def live_recipient(session: Session, member_id: str) -> Recipient | None:
    """The member's recipient row; Gone after erasure; None while its registration has not arrived."""
    recipient = session.get(Recipient, member_id)
    if recipient is not None and recipient.deleted:
        raise Gone(f"member {member_id} was deleted")
    return recipient


def preferences_view(session: Session, member_id: str, default_frequency: str = domain.DEFAULT_FREQUENCY) -> dict:
    """A member's preferences as the API shows them; ``default_frequency`` for a member that chose none."""
    preference = session.get(Preference, member_id)
    recipient = session.get(Recipient, member_id)
    topics = sorted(session.execute(select(PreferenceTopic.topic).where(
        PreferenceTopic.member_id == member_id)).scalars())
    email = preference.email if preference else True
    frequency = preference.frequency if preference else default_frequency
    chosen = dict(session.execute(select(PreferenceKind.kind, PreferenceKind.mode).where(
        PreferenceKind.member_id == member_id)).all())
    return {
        "member_id": member_id,
        "channels": {"inbox": True, "email": email, "webhook": preference.webhook if preference else True},
        "frequency": frequency,
        "kinds": {kind: domain.mail_mode(kind, chosen.get(kind), frequency) for kind in domain.POLICY},
        "kinds_changed": sorted(kind for kind in chosen if kind in domain.POLICY),
        "topics": topics if preference and preference.topics_filter else None,
        "language": preference.language if preference else None,
        "effective_language": domain.language(preference.language if preference else None,
                                              recipient.language if recipient else None),
        # E-mail also needs the consent given in the member profile and its contact address.
        "email_consent": bool(recipient and recipient.consent_email),
        "email_address": recipient.email if recipient else None,
    }


def get_preferences(session: Session, principal: Principal, member_id: str,
                    default_frequency: str = domain.DEFAULT_FREQUENCY) -> dict:
    """A member's preferences (defaults until it sets some); 403 for another member, 410 erased."""
    domain.check_own(principal, member_id, "preferences")
    live_recipient(session, member_id)
    return preferences_view(session, member_id, default_frequency)


def render_entry(renderer: Renderer, source: SourceEvent | None, source_type: str, lang: str,
                 reader: str | None = None) -> dict:
    """Title and summary of an inbox entry in the reader's language, and ``link``: the portal path
    where the member acts on it (``domain.action_path``: ``/contacts``, ``/projects``,
    ``/events/<id>``, ``/suggestions``, else ``/inbox``), derived from the source event, so entries
    written before links existed have one too. A broken template shows the event type rather than
    failing the whole page."""
    if source is None:
        return {"title": source_type, "summary": None, "kind": domain.KINDS.get(source_type), "link": "/inbox"}
    body = json.loads(source.body)
    kind = domain.KINDS[source_type]
    link = domain.action_path(kind, body["data"])
    try:
        rendered = renderer.render(kind, lang, context_for(source_type, body["data"], lang, reader=reader))
        return {"title": rendered.subject, "summary": rendered.summary, "kind": kind, "link": link}
    except RenderError:
        return {"title": source_type, "summary": None, "kind": kind, "link": link}


def entry_view(renderer: Renderer, notification: Notification, source: SourceEvent | None, lang: str) -> dict:
    return {
        "id": notification.id,
        "type": notification.source_type,
        "source_event_id": notification.source_event_id,
        "subject": source.subject if source else None,
        **render_entry(renderer, source, notification.source_type, lang, notification.member_id),
        "created_at": _iso(notification.created_at),
        "read": notification.read_at is not None,
        "read_at": _iso(notification.read_at) if notification.read_at else None,
    }


def reader_language(session: Session, member_id: str) -> str:
    preference, recipient = session.get(Preference, member_id), session.get(Recipient, member_id)
    return domain.language(preference.language if preference else None, recipient.language if recipient else None)


def inbox(session: Session, principal: Principal, member_id: str, query: dict, renderer: Renderer,
          language: str | None = None) -> dict:
    """A member's notifications, newest first, a page at a time, worded in ``language`` ("de"/"en"; None:
    the member's own language, as for mails)."""
    domain.check_own(principal, member_id, "inbox")
    live_recipient(session, member_id)
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
    lang = language or reader_language(session, member_id)
    return {"items": [entry_view(renderer, notification, source, lang) for notification, source in rows],
            "page": page, "per_page": per_page, "total": total, "unread": unread}


def endpoint_view(endpoint: WebhookEndpoint, secret: bool = False) -> dict:
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


def managed_endpoint(session: Session, principal: Principal, endpoint_id: str,
                     for_update: bool = False) -> WebhookEndpoint:
    """The endpoint if the principal may manage it (``domain.may_manage_endpoint``), else NotFound (404)."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    endpoint = session.execute(query.with_for_update() if for_update else query).scalar()
    if endpoint is None or not domain.may_manage_endpoint(
            principal, endpoint.owner_role, endpoint.owner_subject, endpoint.member_id):
        raise NotFound(f"no webhook {endpoint_id}")
    return endpoint


def list_webhooks(session: Session, principal: Principal) -> dict:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if principal.role == "member":
        query = query.where(WebhookEndpoint.member_id == principal.member_id)
    elif not principal.is_admin:
        query = query.where(WebhookEndpoint.member_id.is_(None), WebhookEndpoint.owner_role == principal.role,
                            WebhookEndpoint.owner_subject == principal.subject)
    return {"items": [endpoint_view(endpoint) for endpoint in session.execute(query).scalars()]}


def get_webhook(session: Session, principal: Principal, endpoint_id: str) -> dict:
    return endpoint_view(managed_endpoint(session, principal, endpoint_id))


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
    endpoint = managed_endpoint(session, principal, endpoint_id)
    return _deliveries_page(session, [Delivery.channel == "webhook", Delivery.target == endpoint.id], query)


def failures(session: Session, query: dict) -> dict:
    """The failure log: deliveries that gave up (after retries, a refusal, or a template that failed)."""
    return _deliveries_page(session, [Delivery.status == "failed"], query)
