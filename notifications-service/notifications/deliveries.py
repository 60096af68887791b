"""A delivery's life cycle, in one place: claimed with a lease (``sending``),
then delivered, retried later, failed, or cancelled; and disabling a webhook
endpoint, which fails what was waiting for it. Fan-out, the webhook use cases
and the senders (``dispatch``) all import this module; it imports none of them.

Every function works inside a unit of work (``verbund.database.UnitOfWork``):
its clock dates the outcome, and ``notification.delivered``/``notification.failed``
are emitted through it (the outbox, same transaction).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from notifications import domain
from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint
from verbund import personal
from verbund.database import UnitOfWork


def _announce(uow: UnitOfWork, delivery: Delivery, type_: str, error: str | None = None) -> None:
    data = {
        "notification_id": str(delivery.notification_id) if delivery.notification_id else f"delivery-{delivery.id}",
        "member_id": delivery.member_id,
        "channel": delivery.channel,
        "source_event_id": delivery.source_event_id,
        "source_type": delivery.source_type,
        "attempts": max(delivery.attempts, 1),
        "error": personal.redact_addresses(error),  # a mail server's refusal names the recipient
        "delivery_id": delivery.id,
        "endpoint_id": delivery.target if delivery.channel == "webhook" else None,
    }
    uow.emit(type_, delivery.member_id or delivery.target, data)


def _log_attempt(uow: UnitOfWork, delivery: Delivery, outcome: str, *, status_code: int | None = None,
                 duration_ms: int = 0, error: str | None = None) -> None:
    uow.session.add(DeliveryAttempt(delivery_id=delivery.id, number=max(delivery.attempts, 1), at=uow.now(),
                                    duration_ms=duration_ms, status_code=status_code, outcome=outcome,
                                    error=error))


def due(session: Session, channel: str, now: datetime, limit: int) -> list[Delivery]:
    """Up to ``limit`` deliveries of ``channel`` to send now, locked (SKIP LOCKED on PostgreSQL):
    first those whose sender's lease ran out (it died), then pending ones whose time has come."""
    stalled = (select(Delivery).where(Delivery.channel == channel, Delivery.status == "sending",
                                      Delivery.lease_until < now)
               .order_by(Delivery.lease_until).limit(limit).with_for_update(skip_locked=True))
    found = list(session.execute(stalled).scalars())
    if len(found) < limit:
        pending = (select(Delivery).where(Delivery.channel == channel, Delivery.status == "pending",
                                          Delivery.next_attempt_at <= now)
                   .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit - len(found))
                   .with_for_update(skip_locked=True))
        found += session.execute(pending).scalars()
    return found


STALLED = "the previous attempt did not finish before its lease ran out (the sender stopped or crashed)"


def claim(uow: UnitOfWork, channel: str, limit: int, lease_until: datetime,
          delays: tuple[float, ...]) -> list[Delivery]:
    """Take up to ``limit`` due deliveries of ``channel`` (:func:`due`) and lease them (:func:`take`)."""
    return take(uow, due(uow.session, channel, uow.now(), limit), lease_until, delays)


def take(uow: UnitOfWork, found: list[Delivery], lease_until: datetime, delays: tuple[float, ...]) -> list[Delivery]:
    """Lease ``found`` (from :func:`due`) until ``lease_until``; returns those leased. A delivery
    whose lease ran out counts that attempt as failed: it is logged with the reason, and once
    ``delays`` (seconds, ``domain.retry_delay``) are used up it fails into the failure log
    instead of being sent again, so nothing stays ``sending`` for ever."""
    taken = []
    for delivery in found:
        if delivery.status == "sending":
            if domain.retry_delay(delays, delivery.attempts) is None:
                fail(uow, delivery, f"gave up after {delivery.attempts} attempts: {STALLED}", log_attempt=True)
                continue
            _log_attempt(uow, delivery, "retry", error=STALLED)
        taken.append(delivery)
    lease(taken, lease_until)
    return taken


def lease(deliveries: list[Delivery], lease_until: datetime) -> None:
    """Claim deliveries for sending until ``lease_until``; each claim counts as an attempt."""
    for delivery in deliveries:
        delivery.status, delivery.lease_until, delivery.attempts = "sending", lease_until, delivery.attempts + 1


def locked(session: Session, delivery_id: int) -> Delivery | None:
    """The delivery to complete, locked, unless erasure removed it meanwhile."""
    return session.execute(select(Delivery).where(Delivery.id == delivery_id).with_for_update()).scalar()


def succeed(uow: UnitOfWork, delivery: Delivery, *, status_code: int | None = None, duration_ms: int = 0) -> None:
    """Delivered: logged, finished, and ``notification.delivered`` emitted."""
    _log_attempt(uow, delivery, "delivered", status_code=status_code, duration_ms=duration_ms)
    delivery.status, delivery.finished_at, delivery.lease_until, delivery.last_error = \
        "delivered", uow.now(), None, None
    _announce(uow, delivery, "notification.delivered")


def fail(uow: UnitOfWork, delivery: Delivery, error: str, *, status_code: int | None = None,
         duration_ms: int = 0, log_attempt: bool = False) -> None:
    """Give up on a delivery: it lands in the failure log and ``notification.failed`` says so
    (``error`` cut to 2000 characters, e-mail addresses redacted in the event)."""
    if log_attempt:
        _log_attempt(uow, delivery, "failed", status_code=status_code, duration_ms=duration_ms, error=error)
    delivery.status, delivery.finished_at, delivery.lease_until, delivery.last_error = \
        "failed", uow.now(), None, error[:2000]
    _announce(uow, delivery, "notification.failed", error[:2000])


def retry_or_fail(uow: UnitOfWork, delivery: Delivery, error: str, delays: tuple[float, ...], *,
                  status_code: int | None = None, duration_ms: int = 0) -> None:
    """Back to ``pending`` after the next of ``delays`` (seconds, ``domain.retry_delay``), or
    failed once they are used up."""
    wait = domain.retry_delay(delays, delivery.attempts)
    if wait is None:
        fail(uow, delivery, f"gave up after {delivery.attempts} attempts: {error}", status_code=status_code,
             duration_ms=duration_ms, log_attempt=True)
        return
    _log_attempt(uow, delivery, "retry", status_code=status_code, duration_ms=duration_ms, error=error)
    delivery.status, delivery.lease_until, delivery.last_error = "pending", None, error[:2000]
    delivery.next_attempt_at = uow.now() + timedelta(seconds=wait)


def cancel(uow: UnitOfWork, delivery: Delivery, reason: str) -> None:
    """Nothing to send any more (consent withdrawn, e-mail off): cancelled, no event."""
    delivery.status, delivery.finished_at, delivery.lease_until, delivery.last_error = \
        "cancelled", uow.now(), None, reason


def cancel_pending_emails(uow: UnitOfWork, member_id: str, reason: str) -> None:
    """Cancel the member's e-mails not yet sent (pending or held for a digest)."""
    uow.session.execute(update(Delivery).where(Delivery.channel == "email", Delivery.target == member_id,
                                               Delivery.status.in_(("pending", "held")))
                        .values(status="cancelled", last_error=reason, finished_at=uow.now()))


def disable_endpoint(uow: UnitOfWork, endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to an endpoint; what was still waiting for it is reported as failed."""
    endpoint.enabled, endpoint.disabled_reason = False, reason
    waiting = uow.session.execute(select(Delivery).where(
        Delivery.channel == "webhook", Delivery.target == endpoint.id,
        Delivery.status.in_(("pending", "sending"))).with_for_update()).scalars().all()
    for delivery in waiting:
        fail(uow, delivery, f"endpoint disabled: {reason}")
