"""events-service fetching members' keys over RPC, as a real process on a vhost of its own: with
members-service not answering, a member.* v2 event is not held forever (which would stall the
queue) but fails after PERSONAL_KEY_RPC_TIMEOUT_SECONDS, is retried and ends in the dead-letter
queue with the reason (to be moved back once members-service is up, as any dead letter). In batches
too: the keys are fetched before the batch's transaction opens, so a batch whose keys do not come
writes nothing, and each of its events goes its own way to the dead-letter queue."""
import sqlite3

import pytest
from kombu import Connection, Exchange, Queue

from verbund import broker, envelope, personal
from verbund.testing import ServiceProcess, member_event_v2, member_profile, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("batch_size", [1, 50], ids=["one-by-one", "batches"])
def test_a_key_members_service_does_not_hand_out_in_time_is_retried_then_dead_lettered(batch_size, fresh_amqp_uri,
                                                                                         tmp_path):
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
    try:
        dead = broker.dead_queue(broker.main_queue("events").name).name
        letters = []
        with Connection(fresh_amqp_uri) as connection:
            channel = connection.channel()

            def all_dead():
                message = channel.basic_get(dead, no_ack=True)
                if message is not None:
                    letters.append(message)
                return len(letters) == len(sent)

            wait_for(all_dead, timeout=60, message="every event dead-lettered")
        assert sorted(m.properties["message_id"] for m in letters) == sorted(e["id"] for e in sent)
        for message in letters:
            assert message.headers["x-verbund-attempts"] == 3
            assert message.headers["x-verbund-error"].startswith("KeyUnavailable: members-service gave no key")
        with sqlite3.connect(database) as connection:  # nothing half-written: no member, no inbox claim
            assert connection.execute("SELECT count(*) FROM members").fetchone() == (0,)
            assert connection.execute("SELECT count(*) FROM inbox").fetchone() == (0,)
    finally:
        events.stop()
