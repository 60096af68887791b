"""Platform events consumed in one batch (the kit's subscriber with CONSUME_BATCH_SIZE > 1: the handler
runs per event inside the batch's one transaction, ``Store(batch=…)``) leave the read model and the
meetings they cancel as the same events one by one do. Several events of a batch change the same rows
(a member registered and updated, a registration confirmed and cancelled, an event scheduled again)."""
import json
import shutil

from sqlalchemy import inspect, select

from meetings import services
from meetings.models import Base
from meetings.schemas import ParticipationSchema, SetupSchema
from verbund import envelope, outbox
from verbund.database import Batch, Store
from verbund.testing import FixedClock, member_registered, use_case_store

from .conftest import joint_event, registration, setup_body
from .test_use_cases import ORGANIZER, ask, feed, member, run


def _in_one_batch(store, events) -> list[bool]:
    """What ``Database.batch`` and the subscriber do: one unit of work, one claim, each event's handler in it."""
    with store.unit_of_work() as uow:
        batch = Batch(uow, outbox.claim_many(uow.session, events))
        joined = Store(store.engine, store.relay, source=store.source, clock=store.clock, batch=batch)
        return [joined.handle(event, services.on_platform_event) for event in events]


def _dump(store) -> dict:
    with store.unit_of_work() as uow:
        conn = uow.session.connection()
        tables = {name: sorted(repr(sorted(row.items())) for row in conn.execute(select(table)).mappings())
                  for name, table in Base.metadata.tables.items() if inspect(conn).has_table(name)}
        emitted = sorted(json.dumps([json.loads(body)["type"], json.loads(body)["data"]], sort_keys=True)
                         for body in conn.execute(select(outbox.outbox_table.c.body)).scalars())
    return {"tables": tables, "emitted": emitted}


def test_a_batch_of_platform_events_leaves_what_they_leave_one_by_one(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "batch").mkdir()
    clock = FixedClock()
    fair = joint_event()
    event_id = fair["data"]["event"]["id"]
    with use_case_store("meetings", tmp_path / "one", clock=clock) as one:
        feed(one, fair)
        run(one, services.set_up, ORGANIZER, event_id, SetupSchema().load(setup_body()))
        ids = []
        for sector in ("automotive", "it", "logistics"):
            profile = member_registered(sector=sector)["data"]["profile"]
            feed(one, member_registered(id=profile["id"], sector=sector, name=f"{sector} GmbH"))
            feed(one, registration(fair, profile["id"]))
            run(one, services.opt_in, member(profile["id"]), event_id, ParticipationSchema().load({}))
            ids.append(profile["id"])
        a, b, c = ids
        ask(one, event_id, a, b)
        ask(one, event_id, c, a)
    shutil.copy(tmp_path / "one" / "meetings.db", tmp_path / "batch" / "meetings.db")

    newcomer = member_registered(sector="it", name="Neu AG")
    d = newcomer["data"]["profile"]["id"]
    late = registration(fair, d)
    b_registration = registration(fair, b, status="cancelled", version=2, type="registration.cancelled")
    events = [
        member_registered(id=a, sector="automotive", name="Umbenannt GmbH", version=2),
        newcomer,
        member_registered(id=d, sector="logistics", name="Neu AG", version=2),  # the same member twice
        late,
        registration(fair, d, status="cancelled", version=2, type="registration.cancelled"),
        b_registration,  # cancels a's request to b
        joint_event(event_id, version=2, type="event.updated"),
        envelope.new_event("member.deleted", "/verbund/members", a,
                           {"id": a, "version": 3, "deleted_at": "2026-06-01T08:00:00Z"}),  # cancels c's request
    ]
    same = "5b7e1c1a-0000-4000-8000-00000000d1d1"  # d's registration, confirmed then cancelled
    for event in (late, events[4]):
        event["data"]["registration"]["id"] = event["subject"] = same

    with use_case_store("meetings", tmp_path / "one", clock=clock) as one:
        for event in events:
            feed(one, event)
        expected = _dump(one)
    with use_case_store("meetings", tmp_path / "batch", clock=clock) as batch:
        assert all(_in_one_batch(batch, events))
        got = _dump(batch)
        assert not any(_in_one_batch(batch, events))  # redelivered: nothing runs twice
        assert _dump(batch) == got

    assert sum('"meeting.cancelled"' in line for line in expected["emitted"]) == 2
    assert got == expected
