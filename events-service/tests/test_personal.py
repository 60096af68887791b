"""events-service fetching members' keys over RPC, as a real process on a vhost of its own: with
members-service not answering, a member.* v2 event is not held in a worker forever (which would
stall the queue) but fails after PERSONAL_KEY_RPC_TIMEOUT_SECONDS. That is an outage, not a fault
of the event: it waits in the delay queues without spending its attempts, never reaches the
dead-letter queue, and takes effect once members-service answers. In batches too: the keys are
fetched before the batch's transaction opens, so a batch whose keys do not come writes nothing."""
import sqlite3

import pytest
from kombu import Connection, Exchange, Queue

from verbund import broker, envelope, personal
from verbund.testing import ServiceProcess, member_event_v2, member_profile, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("batch_size", [1, 50], ids=["one-by-one", "batches"])
def test_events_wait_for_a_members_service_that_does_not_answer_and_take_effect_when_it_does(
        batch_size, fresh_amqp_uri, tmp_path):
    database = tmp_path / "events.db"
    with Connection(fresh_amqp_uri) as connection:  # members-service ran once and is stopped now
        Queue("rpc-members", Exchange("nameko-rpc", type="topic", durable=True), routing_key="members.*",
              durable=True)(connection.channel()).declare()
        broker.declare_topology(connection)  # the events wait in the queue: one batch takes them all
    sent = [member_event_v2(member_profile(), personal.new_key()) for _ in range(3)]
    publisher = broker.Publisher(fresh_amqp_uri)
    for event in sent:
        publisher.publish("member.registered", envelope.dumps(event), message_id=event["id"])
    publisher.close()
    events = ServiceProcess("events", fresh_amqp_uri, f"sqlite:///{database}", tmp_path,
                            {"PERSONAL_KEY_RPC_TIMEOUT_SECONDS": "0.5", "RETRY_DELAYS_MS": "100,200",
                             "CONSUME_BATCH_SIZE": str(batch_size)}).start()
    members = None
    try:
        def held():
            return [line for line in events.log_lines() if "a dependency is away" in line["message"]]

        # Held more often than the retry schedule (3 attempts) would allow before dead-lettering.
        wait_for(lambda: len(held()) >= 4 * len(sent), timeout=60, message="every event held back repeatedly")
        assert all("KeyUnavailable: members-service gave no key" in line["message"] for line in held())
        assert {line["correlation_id"] for line in held()} == {event["id"] for event in sent}
        dead = broker.dead_queue(broker.main_queue("events").name).name
        with Connection(fresh_amqp_uri) as connection:
            assert connection.channel().queue_declare(dead, passive=True).message_count == 0
        with sqlite3.connect(database) as connection:  # nothing half-written: no member, no inbox claim
            assert connection.execute("SELECT count(*) FROM members").fetchone() == (0,)
            assert connection.execute("SELECT count(*) FROM inbox").fetchone() == (0,)

        # members-service is back (it knows none of these keys: the contact is unreadable, the member is not).
        members = ServiceProcess("members", fresh_amqp_uri, f"sqlite:///{tmp_path / 'members.db'}", tmp_path).start()

        def stored():
            with sqlite3.connect(database) as connection:
                return connection.execute("SELECT count(*) FROM members").fetchone()[0]

        wait_for(lambda: stored() == len(sent), timeout=60, message="every member in events' read model")
        with sqlite3.connect(database) as connection:
            assert connection.execute("SELECT count(*) FROM inbox").fetchone() == (len(sent),)
        with Connection(fresh_amqp_uri) as connection:
            assert connection.channel().queue_declare(dead, passive=True).message_count == 0
    finally:
        events.stop()
        if members is not None:
            members.stop()
