"""An integrator's own RabbitMQ user on the real broker: it may declare,
bind and read its own queues and the replay stream; it may not publish, nor
read or create anything else. And catching up from a point in time."""
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

import pytest
from amqp.exceptions import AccessRefused
from kombu import Connection, Queue, binding

from verbund import broker, envelope
from verbund.broker import Publisher, events_exchange
from verbund.testing import member_registered
from verbund.tools import integrators

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not os.path.exists("/usr/sbin/rabbitmqctl") and
                                 subprocess.run(["which", "rabbitmqctl"], capture_output=True).returncode,
                                 reason="needs rabbitmqctl")]


@pytest.fixture
def integrator(fresh_amqp_uri):
    vhost = unquote(fresh_amqp_uri.rsplit("/", 1)[1])
    name = f"t{uuid.uuid4().hex[:8]}"
    password = integrators.create(name, vhost=vhost)
    publisher = Publisher(fresh_amqp_uri)  # declares the topology, as the services do
    publisher.publish("member.registered", envelope.dumps(member_registered(name="Vorher GmbH")),
                      message_id="before")
    uri = f"amqp://{integrators.user_name(name)}:{quote(password, safe='')}@127.0.0.1:5672/{quote(vhost, safe='')}"
    yield name, uri, publisher
    publisher.close()
    subprocess.run(["rabbitmqctl", "-q", "delete_user", integrators.user_name(name)], capture_output=True)


def test_its_durable_queue_keeps_events_until_it_reads_them(integrator):
    name, uri, publisher = integrator
    queue = f"integrator.{name}.inbox"
    with Connection(uri) as connection:  # declared and bound with the integrator's own rights
        Queue(queue, durable=True, bindings=[binding(integrators.EXISTING_EXCHANGE, routing_key="member.*")])(
            connection.channel()).declare()
    event = member_registered(name="Live GmbH")
    publisher.publish("event.scheduled", b"{}", message_id="not-bound")  # another pattern: never arrives
    publisher.publish("member.registered", envelope.dumps(event), message_id=event["id"])
    received = list(integrators.follow(uri, ["member.*"], queue_name=queue, idle_timeout=2))
    assert [e["id"] for e in received] == [event["id"]]


def test_it_cannot_publish(integrator):
    _, uri, _ = integrator
    with Connection(uri, transport_options={"confirm_publish": True}) as connection:
        producer = connection.Producer(connection.channel())
        with pytest.raises(AccessRefused):
            producer.publish(b"{}", exchange=events_exchange.name, routing_key="member.registered")


@pytest.mark.parametrize("queue", ["members.events", "notifications.events", "integrator.someone-else.inbox"])
def test_it_cannot_read_or_declare_other_queues(integrator, queue):
    _, uri, _ = integrator
    with Connection(uri) as connection:
        with pytest.raises(AccessRefused):
            Queue(queue, durable=True, queue_arguments={"x-queue-type": "quorum"})(connection.channel()).declare()
    with Connection(uri) as connection:
        with pytest.raises(AccessRefused):
            connection.channel().basic_get(queue=queue)


def test_it_catches_up_from_a_point_in_time_through_the_replay_stream(integrator):
    _, uri, publisher = integrator
    since = datetime.now(UTC) - timedelta(minutes=5)
    later = member_registered(name="Später GmbH")
    publisher.publish("member.registered", envelope.dumps(later), message_id=later["id"])
    replayed = list(integrators.follow(uri, ["member.*"], since=since, idle_timeout=3))
    names = [event["data"]["profile"]["name"] for event in replayed]
    assert names == ["Vorher GmbH", "Später GmbH"]  # published before the integrator ever connected
    assert list(integrators.follow(uri, ["event.*"], since=since, idle_timeout=2)) == []  # patterns apply


def test_verbund_tail_prints_events_readably(integrator, fresh_amqp_uri):
    env = {**os.environ, "AMQP_URI": fresh_amqp_uri}
    result = subprocess.run([sys.executable, "-m", "verbund.tools.cli", "tail", "member.*", "--since", "10m",
                             "--idle", "2"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "member.registered" in result.stdout and "Vorher GmbH" in result.stdout


@pytest.mark.parametrize("key, pattern, expected", [
    ("member.registered", "member.*", True), ("member.registered", "member.#", True), ("member", "member.#", True),
    ("registration.confirmed", "event.#", False), ("a.b.c", "a.*", False), ("a.b.c", "#", True),
    ("a.b.c", "*.b.*", True),
])
def test_topic_matching_as_rabbitmq_does_it(key, pattern, expected):
    assert broker.topic_matches(pattern, key) is expected
