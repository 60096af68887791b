"""Consumed in one batch (``services.on_events``, what the subscriber does with CONSUME_BATCH_SIZE > 1)
or one by one (``services.on_event``): the same events must leave the same tables and emit the same
events. The sequence mixes every kind of consumed event notifications handles, with the ones that
read or delete what earlier events of the same batch wrote (an integrator revoked after deliveries for
it were queued, a member erased after it was notified) in the middle of the batch. SQLite with a
recording publisher and a fixed clock (verbund.testing.use_case_store)."""
import json

import pytest
from sqlalchemy import inspect, select, text

from notifications import services
from notifications.models import Base
from notifications.services.webhooks import create_webhook
from notifications.testing import (
    event_changed,
    joint_event,
    match_suggested,
    member,
    member_deleted,
    member_updated,
    profile_of,
    project,
    registration,
    scheduled,
)
from verbund import envelope, outbox
from verbund.auth import Principal
from verbund.testing import FixedClock, use_case_store

ADMIN = Principal("admin", "admin")
CRM = Principal("crm", "integrator")


def _meeting(type_, joint, requester, recipient, version, **changes):
    body = {"id": "3f0c9a52-7d1e-4c55-9a57-0c1f1b1e0001", "event_id": joint["id"], "requester_id": requester,
            "recipient_id": recipient, "status": "pending", "slot": None, "starts_at": None, "ends_at": None,
            "table": None, "version": version, **changes}
    return envelope.new_event(type_, "/verbund/meetings", body["id"], {"meeting": body})


def _revoked(name):
    return envelope.new_event("integrator.revoked", "/verbund/members", name,
                              {"name": name, "serial": 1, "revoked_at": "2026-12-06T09:30:00Z"})


def _sequence():
    """Events as the platform would deliver them: members, two joint events, registrations and a move,
    suggestions and a project, a meeting from request to schedule, an integrator revoked and a member
    erased in the middle, then more for the rest."""
    a, b, c = (member(sector="automotive", topics=["battery-value-chain"]), member(sector="logistics"),
               member(sector="it"))
    ids = [profile_of(m)["id"] for m in (a, b, c)]
    here, there = joint_event(), joint_event(title="Logistik-Forum", kind="meetup")
    starts = {"slot": 3, "table": 7, "starts_at": "2027-03-03T09:00:00Z", "ends_at": "2027-03-03T09:20:00Z"}
    return [
        a, b, c, scheduled(here), scheduled(there),
        registration("registration.confirmed", ids[0], here),
        registration("registration.waitlisted", ids[2], here),
        registration("registration.cancelled", ids[1], here, reason="moved", moved_to=there["id"]),
        registration("registration.confirmed", ids[1], there),
        match_suggested(ids[0], ids[1]),
        _meeting("meeting.requested", here, ids[0], ids[1], 1),
        _meeting("meeting.accepted", here, ids[0], ids[1], 2, status="accepted"),
        _revoked("crm"),  # deliveries for crm queued above in this batch are failed
        _meeting("meeting.scheduled", here, ids[0], ids[1], 3, status="accepted", **starts),
        project("project.proposed", ids),
        member_updated(a, 2, name="Alpha Zulieferer AG"),
        member_deleted(ids[2]),  # erasure finds what this batch wrote for it
        event_changed("event.updated", here, ids[:2]),
        registration("registration.promoted", ids[1], there),
        event_changed("event.cancelled", there, ids[1:2]),
    ]


def _dump(store) -> dict:
    """Every table's rows, comparable between two stores: autoincrement ids of deliveries (written in
    another order by a batch) and webhook secrets left out, endpoint ids replaced by their URL."""
    with store.unit_of_work() as uow:
        conn = uow.session.connection()
        urls = dict(conn.execute(text("select id, url from webhook_endpoints")).all())
        tables = {}
        for name in sorted(Base.metadata.tables):
            columns = [c["name"] for c in inspect(conn).get_columns(name)]
            drop = {"deliveries": {"id"}, "delivery_attempts": {"id", "delivery_id"},
                    "webhook_endpoints": {"secret", "id"}}.get(name, set())
            rows = []
            for row in conn.execute(select(Base.metadata.tables[name])).mappings():
                rows.append(repr(sorted((k, urls.get(v, v) if isinstance(v, str) else v)
                                        for k, v in row.items() if k in columns and k not in drop)))
            tables[name] = sorted(rows)
    return {"tables": tables, "outbox": _outbox(store, urls)}


def _outbox(store, urls) -> list:
    with store.unit_of_work() as uow:
        rows = uow.session.execute(select(outbox.outbox_table)).mappings().all()
    found = []
    for row in rows:
        event = json.loads(row["body"])
        data = {k: urls.get(v, v) if isinstance(v, str) else v for k, v in event.get("data", {}).items()
                if k != "delivery_id" and not str(v).startswith("delivery-")}  # named after a delivery's id
        found.append((event.get("type"), json.dumps(data, sort_keys=True)))
    return sorted(found)


@pytest.fixture
def stores(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "batch").mkdir()
    with use_case_store("notifications", tmp_path / "one", clock=FixedClock()) as one, \
            use_case_store("notifications", tmp_path / "batch", clock=FixedClock()) as batch:
        for store in (one, batch):
            with store.unit_of_work() as uow:
                create_webhook(uow, CRM, {"url": "https://93.184.215.14/crm", "event_types": ["#"]})
                create_webhook(uow, ADMIN, {"url": "https://93.184.215.14/erp", "event_types": ["event.*"]})
        yield one, batch


def test_a_batch_leaves_what_the_same_events_one_by_one_leave(stores):
    one, batch = stores
    events = _sequence()
    handled = [one.handle(event, services.on_event) for event in events]
    fresh = batch.handle_batch(events, services.on_events)

    assert all(handled) and [e["id"] for e in fresh] == [e["id"] for e in events]
    expected, got = _dump(one), _dump(batch)
    assert expected["tables"]["deliveries"], "the sequence queues deliveries"
    assert any("integrator revoked" in row for row in expected["tables"]["deliveries"])
    assert any("notification.failed" == type_ for type_, _ in expected["outbox"])
    for name, rows in expected["tables"].items():
        assert got["tables"][name] == rows, name
    assert got["outbox"] == expected["outbox"]


def test_a_batch_handed_again_changes_nothing(stores):
    _, batch = stores
    events = _sequence()
    batch.handle_batch(events, services.on_events)
    before = _dump(batch)
    assert batch.handle_batch(events, services.on_events) == []  # a redelivered batch: all skipped
    assert _dump(batch) == before
