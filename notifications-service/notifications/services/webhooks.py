"""Use cases of webhook endpoints: create, change, delete; an integrator's revocation disables its own."""
from __future__ import annotations

import json
import uuid

from sqlalchemy import delete, select

from notifications import deliveries, domain, queries
from notifications.channels import webhook as webhooks
from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import Forbidden, Unprocessable


def _check_url(url: str, allow_private: bool) -> None:
    try:
        webhooks.check_url(url, allow_private=allow_private)
    except webhooks.UnsafeUrl as exc:
        raise Unprocessable("validation failed", fields={"url": [str(exc)]}) from None


def create_webhook(uow: UnitOfWork, principal: Principal, body: dict) -> dict:
    """Register an endpoint (``body`` as WebhookSchema loads it); returns its view with the
    signing secret, shown this once. Who may register what: ``domain.webhook_member``; a
    non-public URL is a 422 on ``url`` unless an admin allows it; Gone (410) for an erased member;
    an integrator's ``event_types`` outside its scope are a 422 (``domain.integrator_event_types``)."""
    member_id = domain.webhook_member(principal, body)
    if member_id is not None:
        queries.live_recipient(uow.session, member_id)
    _check_url(body["url"], bool(body.get("allow_private")))
    event_types = None if member_id else domain.integrator_event_types(principal, body.get("event_types"))
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()), owner_role="member" if member_id else principal.role,
        owner_subject=principal.subject, member_id=member_id, url=body["url"], secret=webhooks.new_secret(),
        event_types=None if member_id else event_types and json.dumps(event_types),
        description=body.get("description"), allow_private=bool(body.get("allow_private")), enabled=True,
        created_at=uow.now())
    uow.session.add(endpoint)
    uow.session.flush()
    return queries.endpoint_view(endpoint, secret=True)


def update_webhook(uow: UnitOfWork, principal: Principal, endpoint_id: str, changes: dict) -> dict:
    """Change an endpoint (``changes`` as WebhookPatchSchema loads them); ``enabled: true``
    re-enables it after a 410, ``false`` disables it (what waits for it fails). NotFound (404)
    for another's endpoint; Forbidden (403) ``allow_private`` without admin rights."""
    endpoint = queries.managed_endpoint(uow.session, principal, endpoint_id, for_update=True)
    if "allow_private" in changes and changes["allow_private"] != endpoint.allow_private and not principal.is_admin:
        raise Forbidden("only an admin may allow private or loopback webhook addresses")
    if "event_types" in changes and endpoint.member_id is not None:
        raise Unprocessable("validation failed", fields={"event_types": ["only integrator webhooks filter types"]})
    for name in ("url", "description", "allow_private"):
        if name in changes:
            setattr(endpoint, name, changes[name])
    if "event_types" in changes:  # an integrator's stay within its token's scope
        endpoint.event_types = json.dumps(domain.integrator_event_types(principal, changes["event_types"]))
    _check_url(endpoint.url, endpoint.allow_private)
    if changes.get("enabled") is True and not endpoint.enabled:
        if endpoint.member_id is None:  # what was disabled as outside a narrowed scope stays off
            domain.integrator_event_types(principal, json.loads(endpoint.event_types or '["#"]'))
        endpoint.enabled, endpoint.disabled_reason = True, None
    elif changes.get("enabled") is False and endpoint.enabled:
        deliveries.disable_endpoint(uow, endpoint, "disabled by its owner")
    return queries.endpoint_view(endpoint)


def delete_webhook(uow: UnitOfWork, principal: Principal, endpoint_id: str) -> None:
    """Remove an endpoint with its deliveries and their log; NotFound (404) for another's."""
    session = uow.session
    endpoint = queries.managed_endpoint(session, principal, endpoint_id, for_update=True)
    ids = select(Delivery.id).where(Delivery.channel == "webhook", Delivery.target == endpoint.id)
    session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)))
    session.execute(delete(Delivery).where(Delivery.channel == "webhook", Delivery.target == endpoint.id))
    session.delete(endpoint)


REVOKED = "integrator revoked"


def revoke_integrator(uow: UnitOfWork, data: dict) -> dict:
    """``integrator.revoked`` (``data``: ``{name, serial, revoked_at}``): disable every webhook endpoint the
    integrator ``name`` made (``deliveries.disable_endpoint``: what still waits for one is reported failed),
    so nothing more leaves for it; its tokens are refused already, so it cannot enable them again. An
    endpoint disabled before keeps its reason. A second revocation finds nothing left to disable. Returns
    ``{"disabled": n}``."""
    endpoints = uow.session.execute(select(WebhookEndpoint).where(
        WebhookEndpoint.owner_role == "integrator", WebhookEndpoint.owner_subject == data["name"],
        WebhookEndpoint.enabled.is_(True)).with_for_update()).scalars().all()
    for endpoint in endpoints:
        deliveries.disable_endpoint(uow, endpoint, REVOKED)
    return {"disabled": len(endpoints)}
