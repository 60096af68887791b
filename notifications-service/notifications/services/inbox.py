"""Use cases of a member's inbox: marking entries read."""
from __future__ import annotations

from sqlalchemy import select, update

from notifications import domain, queries
from notifications.models import Notification, SourceEvent
from notifications.rendering import Renderer
from verbund.auth import Principal
from verbund.database import UnitOfWork
from verbund.errors import NotFound


def mark_read(uow: UnitOfWork, principal: Principal, member_id: str, notification_id: int,
              renderer: Renderer, language: str | None = None) -> dict:
    """Mark one inbox entry read (at ``uow.now()``, once); returns the entry view, worded in ``language``
    (None: the member's own). NotFound (404)
    if it is not in this member's inbox, Forbidden (403) for another member."""
    domain.check_own(principal, member_id, "inbox")
    session = uow.session
    notification = session.execute(select(Notification).where(
        Notification.id == notification_id, Notification.member_id == member_id).with_for_update()).scalar()
    if notification is None:
        raise NotFound(f"no notification {notification_id} in this inbox")
    if notification.read_at is None:
        notification.read_at = uow.now()
    source = session.get(SourceEvent, notification.source_event_id)
    return queries.entry_view(renderer, notification, source,
                              language or queries.reader_language(session, member_id))


def mark_all_read(uow: UnitOfWork, principal: Principal, member_id: str) -> dict:
    """Mark every unread entry read; returns ``{"marked": n}``."""
    domain.check_own(principal, member_id, "inbox")
    marked = uow.session.execute(update(Notification).where(
        Notification.member_id == member_id, Notification.read_at.is_(None)).values(read_at=uow.now())).rowcount
    return {"marked": marked}
