"""The retrying subscriber in a real service process on the real broker:
retries with backoff, dead-lettering with the reason, no second effect;
each one event at a time and in batches (tests/test_batches.py: what only batches do)."""
import pytest
import requests
from kombu import Connection, Queue
from sqlalchemy import create_engine, select

from probe.models import effects
from verbund import envelope
from verbund.broker import Publisher, declare_topology
from verbund.subscriber import ATTEMPTS_HEADER, ERROR_HEADER
from verbund.testing import member_registered, wait_for

pytestmark = pytest.mark.integration

DEAD = "probe.events.dead"


@pytest.fixture
def broker(fresh_amqp_uri):
    publisher = Publisher(fresh_amqp_uri, subscriptions={"probe": ["member.registered"]})
    connection = Connection(fresh_amqp_uri)
    yield publisher, connection
    publisher.close()
    connection.release()


@pytest.fixture(params=[1, 50], ids=["one-by-one", "batches"])
def batch_size(request):
    return request.param


@pytest.fixture
def probe(fresh_amqp_uri, database_url, start_service, batch_size):  # the vhost outlives the process
    return start_service("probe", database_url=database_url, amqp=fresh_amqp_uri,
                         env={"CONSUME_BATCH_SIZE": str(batch_size)})


def publish(publisher, event_or_body, routing_key="member.registered"):
    body = envelope.dumps(event_or_body) if isinstance(event_or_body, dict) else event_or_body
    publisher.publish(routing_key, body, message_id=getattr(event_or_body, "get", lambda _: "raw")("id"))


def effects_of(database_url, event_id=None):
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as conn:
            query = select(effects.c.member_name)
            if event_id:
                query = query.where(effects.c.event_id == event_id)
            return conn.execute(query).scalars().all()
    finally:
        engine.dispose()


def dead_letters(connection, expected):
    """Wait until the dead-letter queue holds ``expected`` messages and take them."""
    queue = Queue(DEAD)(connection.default_channel)
    taken = []

    def collect():
        while (message := queue.get(no_ack=True)) is not None:
            taken.append(message)
        return len(taken) >= expected

    wait_for(collect, timeout=15, message=f"{expected} dead letter(s)")
    return taken


def test_a_valid_event_takes_effect(probe, broker, database_url):
    publisher, _ = broker
    event = member_registered(name="Gute Firma GmbH")
    publish(publisher, event)
    wait_for(lambda: effects_of(database_url, event["id"]) == ["Gute Firma GmbH"], message="the effect")


def test_poisoned_messages_are_dead_lettered_and_consuming_goes_on(probe, broker, database_url):
    publisher, connection = broker
    invalid = member_registered()
    invalid["data"]["profile"]["sector"] = "aerospace"
    publish(publisher, b"\x00\x01 this is not json")
    publish(publisher, invalid)
    after = member_registered(name="Danach GmbH")
    publish(publisher, after)

    wait_for(lambda: effects_of(database_url, after["id"]) == ["Danach GmbH"], message="the later event's effect")
    dead = dead_letters(connection, 2)
    reasons = sorted(message.headers[ERROR_HEADER] for message in dead)
    assert "body is not JSON" in reasons[1] or "body is not JSON" in reasons[0]
    assert any("sector" in reason for reason in reasons)
    assert all(message.headers[ATTEMPTS_HEADER] == 0 for message in dead)  # not retried: it cannot get better
    assert effects_of(database_url) == ["Danach GmbH"]
    exposed = requests.get(f"{probe.url}/metrics", timeout=10).text
    assert 'verbund_messages_dead_lettered_total{reason="invalid",service="probe"} 2.0' in exposed
    assert 'verbund_messages_consumed_total{service="probe",type="member.registered"} 1.0' in exposed
    assert 'verbund_outbox_backlog{service="probe"} 0.0' in exposed


def test_hostile_messages_are_dead_lettered_with_their_reason(probe, broker, database_url):
    publisher, connection = broker
    unknown = member_registered()
    unknown["type"] = "member.promoted"
    huge = member_registered(name="Riesig GmbH")
    huge["data"]["profile"]["offers"] = [{"term": None, "label": "x" * 1000, "description": None}] * 3000
    publish(publisher, unknown)
    publish(publisher, huge)
    after = member_registered(name="Normal GmbH")
    publish(publisher, after)
    wait_for(lambda: effects_of(database_url, after["id"]) == ["Normal GmbH"], message="the later event's effect")
    reasons = sorted(message.headers[ERROR_HEADER] for message in dead_letters(connection, 2))
    assert "larger than" in reasons[0] and "unknown event type 'member.promoted'" in reasons[1]


def test_a_failing_handler_is_retried_then_dead_lettered_with_the_error(probe, broker, database_url):
    publisher, connection = broker
    failing = member_registered(name="fail-always GmbH")
    publish(publisher, failing)
    healthy = member_registered(name="Gesund GmbH")
    publish(publisher, healthy)

    [dead] = dead_letters(connection, 1)
    assert dead.headers[ATTEMPTS_HEADER] == 3  # the first try and two retries (RETRY_DELAYS_MS=100,200)
    assert "RuntimeError: cannot handle fail-always GmbH" in dead.headers[ERROR_HEADER]
    assert dead.headers["x-verbund-routing-key"] == "member.registered"
    assert envelope.loads(dead.body)["id"] == failing["id"]  # the original event, ready to replay
    assert effects_of(database_url, healthy["id"]) == ["Gesund GmbH"]
    assert effects_of(database_url, failing["id"]) == []
    retries = [line for line in probe.log_lines() if "retrying via" in line["message"]]
    assert [line["correlation_id"] for line in retries] == [failing["id"]] * 2


def test_a_handler_that_fails_once_succeeds_on_retry_with_one_effect(probe, broker, database_url, batch_size):
    publisher, _ = broker
    event = member_registered(name="fail-once GmbH")
    publish(publisher, event)
    wait_for(lambda: effects_of(database_url, event["id"]) == ["fail-once GmbH"], message="the retried effect")
    if batch_size > 1:
        # The batch failed, and its second try, one by one, worked: no trip through the retry queue.
        assert any("handling them one by one" in line["message"] for line in probe.log_lines())
        assert not [line for line in probe.log_lines() if "retrying via" in line["message"]]
        exposed = requests.get(f"{probe.url}/metrics", timeout=10).text
        assert 'verbund_batch_fallbacks_total{service="probe"} 1.0' in exposed
        assert 'verbund_messages_consumed_total{service="probe",type="member.registered"} 1.0' in exposed
        return
    # The effect came from a second attempt through the retry queue, not from the first delivery.
    retries = [line for line in probe.log_lines() if "retrying via" in line["message"]]
    assert [line["correlation_id"] for line in retries] == [event["id"]]
    assert "(attempt 1)" in retries[0]["message"] and "probe.events.retry.100ms" in retries[0]["message"]
    exposed = requests.get(f"{probe.url}/metrics", timeout=10).text
    assert 'verbund_messages_failed_total{service="probe",type="member.registered"} 1.0' in exposed
    assert 'verbund_messages_consumed_total{service="probe",type="member.registered"} 1.0' in exposed


def test_a_redelivered_event_has_no_second_effect(probe, broker, database_url):
    publisher, _ = broker
    event = member_registered(name="Doppelt GmbH")
    publish(publisher, event)
    publish(publisher, event)
    marker = member_registered(name="Marker GmbH")
    publish(publisher, marker)
    wait_for(lambda: effects_of(database_url, marker["id"]), message="the marker")
    assert effects_of(database_url, event["id"]) == ["Doppelt GmbH"]


def test_an_event_published_before_its_consumer_ever_started_is_not_lost(fresh_amqp_uri, broker, start_service,
                                                                         tmp_path):
    publisher, connection = broker
    declare_topology(connection, {"probe": ["member.registered"]})  # what every publisher does first
    event = member_registered(name="Frühstarter GmbH")
    publish(publisher, event)
    url = f"sqlite:///{tmp_path / 'late.db'}"
    start_service("probe", database_url=url, amqp=fresh_amqp_uri)
    wait_for(lambda: effects_of(url, event["id"]) == ["Frühstarter GmbH"], message="the early event's effect")


def test_an_outage_of_the_database_spends_no_attempts_and_loses_nothing(fresh_amqp_uri, broker, postgres,
                                                                       start_service, batch_size):
    """The database away for longer than the whole retry schedule (100 ms + 200 ms): the event waits
    in the delay queues, attempts unspent, and takes effect once when the database is back."""
    publisher, connection = broker
    url = postgres.create()
    probe = start_service("probe", database_url=url, amqp=fresh_amqp_uri,
                          env={"CONSUME_BATCH_SIZE": str(batch_size)})
    event = member_registered(name="Geduldig GmbH")

    def held():
        return [line for line in probe.log_lines() if "a dependency is away" in line["message"]]

    with postgres.away(url):
        publish(publisher, event)
        wait_for(lambda: len(held()) >= 5, timeout=30, message="the event held back more often than it has attempts")
        assert Queue(DEAD)(connection.default_channel).queue_declare(passive=True).message_count == 0
    wait_for(lambda: effects_of(url, event["id"]) == ["Geduldig GmbH"], timeout=30, message="the effect after")
    assert {line["correlation_id"] for line in held()} == {event["id"]}
    assert "(held 1 times, attempts unspent)" in held()[0]["message"]
    assert "not currently accepting connections" in held()[0]["message"]
    assert Queue(DEAD)(connection.default_channel).queue_declare(passive=True).message_count == 0
    exposed = requests.get(f"{probe.url}/metrics", timeout=10).text
    assert 'verbund_messages_consumed_total{service="probe",type="member.registered"} 1.0' in exposed
    assert "verbund_messages_dead_lettered_total{" not in exposed


def test_a_request_that_meets_an_outage_is_answered_503_with_retry_after(fresh_amqp_uri, postgres, start_service):
    url = postgres.create()
    probe = start_service("probe", database_url=url, amqp=fresh_amqp_uri)
    assert requests.get(f"{probe.url}/effects", timeout=10).json() == {"effects": 0}
    with postgres.away(url):
        response = requests.get(f"{probe.url}/effects", timeout=10)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "try again in a few seconds" in response.json()["error"]
    wait_for(lambda: requests.get(f"{probe.url}/effects", timeout=10).status_code == 200, timeout=15,
             message="an answer once the database is back")
