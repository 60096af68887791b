"""The outbox and inbox against the real broker, on SQLite and PostgreSQL."""
import subprocess
import sys
import textwrap

import pytest
from amqp.exceptions import ChannelError
from kombu.exceptions import OperationalError
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from verbund import envelope, outbox
from verbund.broker import Outgoing, Publisher
from verbund.database import Store, make_engine
from verbund.testing import member_registered

pytestmark = pytest.mark.integration

things = Table("things", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(50)))


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    outbox.messaging_metadata.create_all(engine)
    things.create(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def relay(engine, amqp_uri):
    relay = outbox.Relay(engine, Publisher(amqp_uri), batch_size=7)
    yield relay
    relay.close()


def _published(engine):
    with engine.connect() as conn:
        return conn.execute(select(outbox.outbox_table.c.event_id)
                            .where(outbox.outbox_table.c.published_at.is_not(None))).scalars().all()


def test_state_and_event_commit_together_and_leave_in_order(engine, relay, event_tap):
    tap = event_tap("member.*")
    store = Store(engine, relay)
    sent = []
    for i in range(20):  # more than one relay batch
        with store.transaction() as session:
            session.execute(insert(things).values(name=f"thing {i}"))
            event = member_registered(name=f"Firma {i}")
            outbox.add(session, event)
            sent.append(event["id"])
    received = tap.wait("member.registered", count=20)
    assert [event["id"] for event in received] == sent
    assert sorted(_published(engine)) == sorted(sent)
    assert outbox.pending_count(engine) == 0
    message = tap.messages[0]
    assert message.properties["message_id"] == sent[0]
    assert message.content_type == "application/cloudevents+json"
    assert message.delivery_info["routing_key"] == "member.registered"


def test_several_events_added_at_once_leave_in_the_order_given(engine, relay, fresh_amqp_uri, event_tap):
    tap = event_tap("member.*", uri=fresh_amqp_uri)
    relay = outbox.Relay(engine, Publisher(fresh_amqp_uri))
    events = [member_registered(name=f"Firma {i}") for i in range(30)]
    with Store(engine, relay).transaction() as session:
        outbox.add(session, *events[:10])
        outbox.add(session, events[10])
        outbox.add(session, *events[11:])
    received = tap.wait("member.registered", count=30, timeout=30)
    relay.close()
    assert [event["id"] for event in received] == [event["id"] for event in events]
    with pytest.raises(envelope.InvalidEvent):  # one bad event in a batch: none of it is written
        with Store(engine, relay).transaction() as session:
            outbox.add(session, member_registered(), {**member_registered(), "type": "member.promoted"})
    assert outbox.pending_count(engine) == 0


def test_a_rolled_back_transaction_leaves_neither_state_nor_event(engine, relay):
    store = Store(engine, relay)
    with pytest.raises(RuntimeError):
        with store.transaction() as session:
            session.execute(insert(things).values(name="half"))
            outbox.add(session, member_registered())
            raise RuntimeError("the use case failed after writing")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(things)).scalar() == 0
    assert outbox.pending_count(engine) == 0


def test_an_invalid_event_is_refused_before_anything_is_written(engine, relay):
    event = member_registered()
    event["data"]["profile"]["contact"] = "not an object"
    with pytest.raises(ValueError):
        with Store(engine, relay).transaction() as session:
            outbox.add(session, event)
    assert outbox.pending_count(engine) == 0


def test_the_outbox_survives_a_crash_between_commit_and_publish(engine, relay, database_url, event_tap, tmp_path):
    tap = event_tap("member.*")
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(f"""
        import os
        from verbund import outbox
        from verbund.database import Store, make_engine
        from verbund.testing import member_registered

        engine = make_engine({database_url!r})
        event = member_registered(name="Crash Test GmbH")
        print(event["id"], flush=True)
        # The process dies right after the commit, before the relay could publish.
        store = Store(engine, relay=None, after_commit=lambda: os._exit(9))
        with store.transaction() as session:
            outbox.add(session, event)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 9, result.stderr
    event_id = result.stdout.strip()
    assert outbox.pending_count(engine) == 1
    assert tap.drain() == []  # nothing was published: no relay ran

    assert relay.relay() == 1  # the sweep of the restarted service
    assert [event["id"] for event in tap.wait("member.registered")] == [event_id]
    assert outbox.pending_count(engine) == 0


def test_a_broker_outage_keeps_events_pending_until_it_is_over(engine, amqp_uri, event_tap):
    tap = event_tap("member.*")
    unreachable = outbox.Relay(engine, Publisher("amqp://guest:guest@127.0.0.1:1/"))
    with Store(engine, unreachable).transaction() as session:  # relay_quietly logs the failure
        outbox.add(session, member_registered())
    assert outbox.pending_count(engine) == 1
    with pytest.raises(OperationalError):
        unreachable.relay()
    assert outbox.pending_count(engine) == 1

    recovered = outbox.Relay(engine, Publisher(amqp_uri))
    assert recovered.relay() == 1
    tap.wait("member.registered")
    recovered.close()


def test_published_events_are_purged_after_the_retention_period(engine, relay):
    from datetime import timedelta

    with Store(engine, relay).transaction() as session:
        outbox.add(session, member_registered())
    assert relay.purge_published() == 0  # still within retention
    relay.retention = timedelta(seconds=-1)
    assert relay.purge_published() == 1


def test_the_inbox_lets_an_event_take_effect_once(engine, relay):
    store = Store(engine, relay)
    event = member_registered()

    def handler(uow, event):
        uow.session.execute(insert(things).values(name=event["id"][:50]))

    assert store.handle(event, handler) is True
    assert store.handle(event, handler) is False  # redelivered
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(things)).scalar() == 1


def test_a_failing_handler_leaves_no_inbox_record(engine, relay):
    store = Store(engine, relay)
    event = member_registered()

    def failing(uow, event):
        uow.session.execute(insert(things).values(name="partial"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.handle(event, failing)
    assert store.handle(event, lambda uow, event: None) is True  # the retry is not skipped


def test_a_mandatory_publish_to_no_queue_fails_instead_of_vanishing(amqp_uri):
    publisher = Publisher(amqp_uri)
    try:
        with pytest.raises(ChannelError, match="NO_ROUTE"):
            publisher.publish("no-such-queue-anywhere", b"{}", message_id="x", exchange="", mandatory=True)
    finally:
        publisher.close()


def test_batches_go_out_in_order_each_returning_once_the_broker_confirmed_it_all(fresh_amqp_uri, event_tap):
    amqp_uri = fresh_amqp_uri  # a vhost of its own: only this test's events reach the tap
    tap = event_tap("member.*", uri=amqp_uri)
    publisher = Publisher(amqp_uri)
    publisher.CONFIRM_TIMEOUT = 10  # a lost confirm fails the test instead of hanging it
    padding = "x" * 10_000  # big bodies: the broker confirms in several acks, some while we still publish
    sent = []
    try:
        for size in (1, 10, 100, 100, 500, 1, 250) * 4:
            batch = [member_registered(name=f"Firma {len(sent) + i}") for i in range(size)]
            publisher.publish_many([Outgoing("member.registered", envelope.dumps({**event, "padding": padding}),
                                             event["id"]) for event in batch])
            assert not publisher._unconfirmed  # it returned only once the broker had confirmed every message
            sent += [event["id"] for event in batch]
    finally:
        publisher.close()
    received = tap.wait("member.registered", count=len(sent), timeout=60)
    assert [event["id"] for event in received] == sent
    assert [message.properties["message_id"] for message in tap.messages] == sent


def test_a_batch_with_an_unroutable_mandatory_message_fails_and_the_publisher_recovers(fresh_amqp_uri, event_tap):
    amqp_uri = fresh_amqp_uri
    tap = event_tap("member.*", uri=amqp_uri)
    event = member_registered()
    good = Outgoing("member.registered", envelope.dumps(event), event["id"])
    publisher = Publisher(amqp_uri)
    try:
        with pytest.raises(ChannelError, match="NO_ROUTE"):
            publisher.publish_many([good, Outgoing("no-such-queue-anywhere", b"{}", "x", exchange="", mandatory=True)])
        publisher.publish_many([good])  # a fresh channel after the failure
    finally:
        publisher.close()
    assert len(tap.wait("member.registered", count=2, timeout=60)) == 2  # at least once: the batch may be resent whole
