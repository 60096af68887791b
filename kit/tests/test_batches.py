"""Batch consumption in a real service process on the real broker, on SQLite and PostgreSQL:
a batch is one transaction, a poisoned message is isolated, the events of one subject stay
in order, and a crash between commit and ack has no second effect."""
from itertools import groupby

import pytest
import requests
from kombu import Connection, Queue
from sqlalchemy import create_engine, func, select

from probe.models import effects
from verbund import envelope
from verbund.broker import Outgoing, Publisher, declare_topology
from verbund.outbox import inbox_table
from verbund.subscriber import ATTEMPTS_HEADER, ERROR_HEADER
from verbund.testing import ServiceProcess, member_registered, wait_for

pytestmark = pytest.mark.integration

MAIN, DEAD = "probe.events", "probe.events.dead"


@pytest.fixture
def broker(fresh_amqp_uri):
    publisher = Publisher(fresh_amqp_uri, subscriptions={"probe": ["member.registered"]})
    connection = Connection(fresh_amqp_uri)
    declare_topology(connection, {"probe": ["member.registered"]})  # events wait for a probe started later
    yield publisher, connection
    publisher.close()
    connection.release()


def publish_all(publisher, events):
    publisher.publish_many([Outgoing("member.registered", envelope.dumps(event), event["id"]) for event in events])


def rows(database_url, *columns):
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as conn:
            return conn.execute(select(*columns).order_by(effects.c.id)).all()
    finally:
        engine.dispose()


def inbox_count(database_url):
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(inbox_table)).scalar_one()
    finally:
        engine.dispose()


def queue_depth(connection, name):
    return Queue(name)(connection.default_channel).queue_declare(passive=True).message_count


def start_probe(start_service, database_url, amqp, **env):
    # A long linger: a batch that waits for messages already on their way is not what is tested here.
    return start_service("probe", database_url=database_url, amqp=amqp,
                         env={"CONSUME_BATCH_LINGER_MS": "500", **{k: str(v) for k, v in env.items()}})


def test_a_batch_is_one_transaction(fresh_amqp_uri, broker, database_url, start_service):
    publisher, connection = broker
    events = [member_registered(name=f"Firma {n} GmbH") for n in range(20)]
    publish_all(publisher, events)
    probe = start_probe(start_service, database_url, fresh_amqp_uri, CONSUME_BATCH_SIZE=50)
    wait_for(lambda: len(rows(database_url, effects.c.id)) == 20, timeout=20, message="20 effects")
    written = rows(database_url, effects.c.event_id, effects.c.tx)
    assert [row.event_id for row in written] == [event["id"] for event in events]  # in order, each once
    assert len({row.tx for row in written}) == 1  # one transaction for the twenty
    exposed = requests.get(f"{probe.url}/metrics", timeout=10).text
    assert 'verbund_consumed_batch_size_count{service="probe"} 1.0' in exposed
    assert 'verbund_consumed_batch_size_sum{service="probe"} 20.0' in exposed


def test_batches_are_no_larger_than_the_setting(fresh_amqp_uri, broker, database_url, start_service):
    publisher, _ = broker
    events = [member_registered(name=f"Firma {n} GmbH") for n in range(23)]
    publish_all(publisher, events)
    start_probe(start_service, database_url, fresh_amqp_uri, CONSUME_BATCH_SIZE=5)
    wait_for(lambda: len(rows(database_url, effects.c.id)) == 23, timeout=20, message="23 effects")
    written = rows(database_url, effects.c.event_id, effects.c.tx)
    assert [row.event_id for row in written] == [event["id"] for event in events]
    sizes = [len(list(group)) for _, group in groupby(written, key=lambda row: row.tx)]
    assert len(sizes) == len({row.tx for row in written})  # a transaction's effects are contiguous
    assert max(sizes) <= 5 and len(sizes) >= 5


@pytest.mark.parametrize("batch_form", [False, True], ids=["per-event-handler", "batch-form-handler"])
def test_a_poisoned_message_is_dead_lettered_alone_and_the_others_take_effect_once(
        fresh_amqp_uri, broker, database_url, start_service, batch_form):
    publisher, connection = broker
    events = [member_registered(name=f"Firma {n} GmbH") for n in range(12)]
    events[5] = member_registered(name="fail-always GmbH")
    publish_all(publisher, events)
    probe = start_probe(start_service, database_url, fresh_amqp_uri, CONSUME_BATCH_SIZE=50,
                        **({"PROBE_BATCH_FORM": 1} if batch_form else {}))

    def dead_letter():
        return Queue(DEAD)(connection.default_channel).get(no_ack=True)

    dead = []
    wait_for(lambda: dead.append(message) or True if (message := dead_letter()) else False, timeout=20,
             message="the poisoned message dead-lettered")
    [poisoned] = dead
    assert envelope.loads(poisoned.body)["id"] == events[5]["id"]
    assert "RuntimeError: cannot handle fail-always GmbH" in poisoned.headers[ERROR_HEADER]
    assert poisoned.headers[ATTEMPTS_HEADER] == 3  # the first try one by one and two retries
    good = [event["id"] for n, event in enumerate(events) if n != 5]
    assert [row.event_id for row in rows(database_url, effects.c.event_id)] == good  # each once, in order
    assert inbox_count(database_url) == 11  # the poisoned one is not marked as processed
    assert queue_depth(connection, DEAD) == 0  # nothing else went there
    exposed = requests.get(f"{probe.url}/metrics", timeout=10).text
    assert 'verbund_messages_consumed_total{service="probe",type="member.registered"} 11.0' in exposed


def test_the_events_of_one_subject_stay_in_order(fresh_amqp_uri, broker, database_url, start_service):
    publisher, _ = broker
    subjects = [f"member-{n}" for n in range(4)]
    events = []
    for step in range(15):
        for subject in subjects:
            event = member_registered(name=f"{subject} step {step:02d}")
            event["subject"] = subject
            events.append(event)
    events[17] = {**member_registered(name="fail-once GmbH"), "subject": "member-1"}  # a batch falls back
    publish_all(publisher, events)
    start_probe(start_service, database_url, fresh_amqp_uri, CONSUME_BATCH_SIZE=8, CONSUME_BATCH_LINGER_MS=5)
    wait_for(lambda: len(rows(database_url, effects.c.id)) == len(events), timeout=30, message="every effect")
    written = rows(database_url, effects.c.subject, effects.c.event_id)
    for subject in subjects:
        assert ([row.event_id for row in written if row.subject == subject]
                == [event["id"] for event in events if event["subject"] == subject])


def test_a_crash_between_commit_and_ack_has_no_second_effect(fresh_amqp_uri, broker, database_url, start_service,
                                                             tmp_path):
    publisher, connection = broker
    events = [member_registered(name=f"Firma {n} GmbH") for n in range(10)]
    publish_all(publisher, events)
    # This one dies (exit code 9) right after its first batch committed, before the ack.
    crashing = ServiceProcess("probe", fresh_amqp_uri, database_url, tmp_path,
                              {"CONSUME_BATCH_SIZE": "50", "CONSUME_BATCH_LINGER_MS": "500",
                               "PROBE_CRASH_BEFORE_ACK": "1"})
    try:
        crashing.start(timeout=30)
    except AssertionError:
        pass  # it died before it answered /ready, as it may
    wait_for(lambda: crashing.process.poll() is not None, timeout=30, message="the crash before the ack")
    assert crashing.process.returncode == 9
    assert len(rows(database_url, effects.c.id)) == 10  # committed ...
    wait_for(lambda: queue_depth(connection, MAIN) == 10, message="the unacked batch back on the queue")

    probe = start_probe(start_service, database_url, fresh_amqp_uri, CONSUME_BATCH_SIZE=50)

    def handled():  # the redelivered batch went through (its metric is set after the commit)
        return 'verbund_consumed_batch_size_sum{service="probe"} 10.0' in requests.get(
            f"{probe.url}/metrics", timeout=10).text

    wait_for(handled, timeout=20, message="the redelivered batch handled")
    assert [row.event_id for row in rows(database_url, effects.c.event_id)] == [e["id"] for e in events]
    skipped = [line["message"] for line in probe.log_lines() if "already processed" in line["message"]]
    # the inbox knew them: no handler ran, and each is logged with its id
    assert skipped == [f"event {e['id']} already processed, skipped" for e in events]
    assert queue_depth(connection, MAIN) == 0


def test_a_normal_stop_ends_the_batch_loop_without_killing_it(fresh_amqp_uri, broker, database_url, start_service):
    publisher, connection = broker
    events = [member_registered(name=f"Firma {n} GmbH") for n in range(10)]
    publish_all(publisher, events)
    probe = start_probe(start_service, database_url, fresh_amqp_uri, CONSUME_BATCH_SIZE=50)
    wait_for(lambda: len(rows(database_url, effects.c.id)) == 10, timeout=20, message="10 effects")
    probe.stop()
    assert probe.process.returncode == 0, probe.logs()
    assert "stopping services: probe" in probe.logs()  # it did stop the normal way ...
    assert "killing" not in probe.logs()  # ... and nameko had no managed thread (subscriber.batches) left to kill
    assert queue_depth(connection, MAIN) == 0  # what it handled was acked
