"""The use cases of notifications, by concern: ``read_model`` (member.* → recipients),
``fanout`` (consumed events → inbox entries and deliveries), ``preferences``, ``inbox`` and
``webhooks``. Each takes a unit of work (``verbund.database.UnitOfWork``) and validated input."""
from __future__ import annotations

from collections.abc import Callable

from notifications import domain, meetings
from notifications.services import fanout, inbox, preferences, read_model, webhooks
from verbund.database import UnitOfWork


def on_event(uow: UnitOfWork, event: dict, keys: Callable[[str], bytes | None] | None = None,
             policy: domain.MailPolicy | None = None) -> dict:
    """What consuming one event does (inside the inbox claim's unit of work): ``member.*`` keep
    the read model (``keys`` as for ``read_model.apply_member_event``), then the fan-out under
    the operator's ``policy`` (default: ``domain.MailPolicy()``). Returns the fan-out's counts
    (``fanout.notify``). ``integrator.revoked`` only disables that integrator's webhooks
    (``webhooks.revoke_integrator``)."""
    if event["type"] == "integrator.revoked":  # an admin matter: disables webhooks, delivered to nobody
        return webhooks.revoke_integrator(uow, event["data"])
    if event["type"].startswith("member."):
        read_model.apply_member_event(uow, event, keys)
        if event["type"] == "member.deleted":
            meetings.forget_member(uow, event["data"]["id"])
    elif event["type"].startswith("event."):
        meetings.keep_event(uow, event)
    elif event["type"] in domain.MEETING_STEPS:
        meetings.keep_meeting(uow, event)
        event = meetings.enrich(uow, event)  # names and the event's title for the mails
    return fanout.notify(uow, event, policy)


__all__ = ["fanout", "inbox", "on_event", "preferences", "read_model", "webhooks"]
