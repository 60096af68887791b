"""The use cases of notifications, by concern: ``read_model`` (member.* → recipients),
``fanout`` (consumed events → inbox entries and deliveries), ``preferences``, ``inbox`` and
``webhooks``. Each takes a unit of work (``verbund.database.UnitOfWork``) and validated input."""
from __future__ import annotations

from collections.abc import Callable

from notifications import domain
from notifications.services import fanout, inbox, preferences, read_model, webhooks
from verbund.database import UnitOfWork


def on_event(uow: UnitOfWork, event: dict, keys: Callable[[str], bytes | None] | None = None,
             policy: domain.MailPolicy | None = None) -> dict:
    """What consuming one event does (inside the inbox claim's unit of work): ``member.*`` keep
    the read model (``keys`` as for ``read_model.apply_member_event``), then the fan-out under
    the operator's ``policy`` (default: ``domain.MailPolicy()``). Returns the fan-out's counts
    (``fanout.notify``)."""
    if event["type"].startswith("member."):
        read_model.apply_member_event(uow, event, keys)
    return fanout.notify(uow, event, policy)


def on_events(uow: UnitOfWork, events: list[dict], keys: Callable[[str], bytes | None] | None = None,
              policy: domain.MailPolicy | None = None) -> dict:
    """``on_event`` for a consumed batch, in order, in one unit of work: the same policy event by event,
    with the deliveries and source events of the batch written with one insert each (``fanout.Rows``;
    written before a ``member.*`` event changes the read model, so an erasure finds them). Returns the
    summed counts."""
    rows = fanout.Rows()
    totals: dict[str, int] = {}
    for event in events:
        if event["type"].startswith("member."):
            rows.write(uow.session.connection())
            read_model.apply_member_event(uow, event, keys)
        for key, value in fanout.notify(uow, event, policy, rows).items():
            totals[key] = totals.get(key, 0) + value
    rows.write(uow.session.connection())
    return totals


__all__ = ["fanout", "inbox", "on_event", "on_events", "preferences", "read_model", "webhooks"]
