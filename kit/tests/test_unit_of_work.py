"""The unit of work: state and emitted events commit together, in order, with the injected clock.
SQLite and a recording publisher: no broker."""
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from verbund import outbox
from verbund.database import Store, make_engine
from verbund.testing import FixedClock, RecordingPublisher, member_profile

things = Table("things", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(50)))


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'uow.db'}")
    outbox.messaging_metadata.create_all(engine)
    things.create(engine)
    yield Store(engine, outbox.Relay(engine, RecordingPublisher()), source="/verbund/members", clock=FixedClock())
    engine.dispose()


def _count(store, table):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_emitted_events_commit_with_the_state_and_are_published_in_order(store):
    # member.deleted: an event type whose current version carries no ciphertext to make up here
    profiles = [member_profile(name=f"Firma {i}") for i in range(3)]
    with store.unit_of_work() as uow:
        uow.session.execute(insert(things).values(name="x"))
        for profile in profiles:
            uow.emit("member.deleted", profile["id"],
                     {"id": profile["id"], "version": 2, "deleted_at": "2026-06-01T08:00:00Z"})
    published = store.relay.publisher.published
    assert [event["subject"] for event in published] == [profile["id"] for profile in profiles]
    assert {event["source"] for event in published} == {"/verbund/members"}
    assert {event["time"] for event in published} == {"2026-06-01T08:00:00Z"}  # the injected clock
    assert _count(store, things) == 1


def test_a_failing_unit_of_work_leaves_neither_state_nor_events(store):
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        uow.session.execute(insert(things).values(name="x"))
        gone = member_profile()["id"]
        uow.emit("member.deleted", gone, {"id": gone, "version": 2, "deleted_at": "2026-06-01T08:00:00Z"})
        raise RuntimeError("boom")
    assert _count(store, things) == 0
    assert _count(store, outbox.outbox_table) == 0
    assert store.relay.publisher.published == []


def test_an_event_that_breaks_its_schema_is_refused_when_emitted(store):
    with pytest.raises(ValueError), store.unit_of_work() as uow:
        uow.emit("member.registered", "m1", {"profile": {"name": "no id"}})
    assert _count(store, outbox.outbox_table) == 0


def test_handle_runs_a_consumed_event_once(store):
    event = {"id": "e-1", "type": "member.deleted"}
    calls = []
    assert store.handle(event, lambda uow, e: calls.append(uow.now())) is True
    assert store.handle(event, lambda uow, e: calls.append(uow.now())) is False  # redelivered: skipped
    assert calls == [FixedClock()()]
