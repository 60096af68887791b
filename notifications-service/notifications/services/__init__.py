"""The use cases of notifications, by concern: ``read_model`` (member.* → recipients),
``fanout`` (consumed events → inbox entries and deliveries), ``preferences``, ``inbox`` and
``webhooks``. Each takes a unit of work (``verbund.database.UnitOfWork``) and validated input."""
from __future__ import annotations

from collections.abc import Callable

from notifications import domain, meetings
from notifications.services import fanout, inbox, preferences, read_model, webhooks
from verbund.database import UnitOfWork


def on_event(uow: UnitOfWork, event: dict, keys: Callable[[str], bytes | None] | None = None,
             policy: domain.MailPolicy | None = None, rows: fanout.Rows | None = None) -> dict:
    """What consuming one event does (inside the inbox claim's unit of work): ``member.*`` keep
    the read model (``keys`` as for ``read_model.apply_member_event``), then the fan-out under
    the operator's ``policy`` (default: ``domain.MailPolicy()``). Returns the fan-out's counts
    (``fanout.notify``). ``integrator.revoked`` only disables that integrator's webhooks
    (``webhooks.revoke_integrator``). ``rows``: a batch's ``fanout.Rows`` (``on_events``)."""
    if rows is not None and (event["type"] == "integrator.revoked" or event["type"].startswith("member.")):
        # These read or delete deliveries and source events (an erasure, failing what waits for a
        # revoked integrator): what the batch collected so far must be in the tables first.
        rows.write(uow.session.connection())
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
    return fanout.notify(uow, event, policy, rows)


def on_events(uow: UnitOfWork, events: list[dict], keys: Callable[[str], bytes | None] | None = None,
              policy: domain.MailPolicy | None = None) -> dict:
    """``on_event`` for a consumed batch, in order, in one unit of work: each event exactly as
    ``on_event`` handles it, with the deliveries and source events of the batch written with one
    insert each (``fanout.Rows``; written early before an event that reads or deletes them).
    Returns the summed counts (keys as the events' own counts)."""
    rows = fanout.Rows()
    totals: dict[str, int] = {}
    for event in events:
        for key, value in on_event(uow, event, keys, policy, rows).items():
            totals[key] = totals.get(key, 0) + value
    rows.write(uow.session.connection())
    return totals


__all__ = ["fanout", "inbox", "on_event", "on_events", "preferences", "read_model", "webhooks"]
