"""events-service fetching members' keys over RPC, as a real process on a vhost of its own: with
members-service not answering, a member.* v2 event is not held forever (which would stall the
queue) but fails after PERSONAL_KEY_RPC_TIMEOUT_SECONDS, is retried and ends in the dead-letter
queue with the reason (to be moved back once members-service is up, as any dead letter)."""
import pytest
from kombu import Connection, Exchange, Queue

from verbund import broker, envelope, personal
from verbund.testing import ServiceProcess, member_event_v2, member_profile, wait_for

pytestmark = pytest.mark.integration


def test_a_key_members_service_does_not_hand_out_in_time_is_retried_then_dead_lettered(fresh_amqp_uri, tmp_path):
    events = ServiceProcess("events", fresh_amqp_uri, f"sqlite:///{tmp_path / 'events.db'}", tmp_path,
                            {"PERSONAL_KEY_RPC_TIMEOUT_SECONDS": "0.5", "RETRY_DELAYS_MS": "100,200"}).start()
    try:
        with Connection(fresh_amqp_uri) as connection:  # members-service ran once and is stopped now
            Queue("rpc-members", Exchange("nameko-rpc", type="topic", durable=True), routing_key="members.*",
                  durable=True)(connection.channel()).declare()
        event = member_event_v2(member_profile(), personal.new_key())
        publisher = broker.Publisher(fresh_amqp_uri)
        publisher.publish("member.registered", envelope.dumps(event), message_id=event["id"])
        publisher.close()
        dead = broker.dead_queue(broker.main_queue("events").name).name
        with Connection(fresh_amqp_uri) as connection:
            channel = connection.channel()
            message = wait_for(lambda: channel.basic_get(dead, no_ack=True), timeout=30, message="a dead letter")
        assert message.headers["x-verbund-attempts"] == 3
        assert message.headers["x-verbund-error"].startswith("KeyUnavailable: members-service gave no key")
    finally:
        events.stop()
