"""No RPC while a consumed batch holds the database: events- and notifications-service fetch the
members' keys a batch of member.* v2 events needs before the batch's transaction opens.

The services run as real processes on SQLite (where a transaction holds the one write lock from its
BEGIN IMMEDIATE) against the real broker. members-service's key RPC (``members.member_key``) is
answered by a stand-in on the same broker that knows the keys the events were encrypted with, and
that looks, while each request waits for its answer, whether the consumer's database is write-locked:
a consumer that asks from inside its transaction keeps the lock until the answer comes, so the probe
cannot take it; one that asked before its transaction opened leaves it free."""
import sqlite3
import threading
import time

import pytest
import requests
from kombu import Connection, Consumer, Exchange, Producer, Queue

from verbund import broker, envelope, personal
from verbund.testing import ServiceProcess, member_event_v2, member_profile, wait_for

pytestmark = pytest.mark.integration

MEMBERS = 40
# Where each consumer keeps the contact person it decrypted.
CONTACTS = {"events": "SELECT id, contact_name FROM members",
            "notifications": "SELECT member_id, contact_name FROM recipients"}


def write_locked(path, patience: float = 1.0) -> bool:
    """True if nobody let go of ``path``'s SQLite write lock for ``patience`` seconds (someone holds it
    across this wait); False as soon as the lock could be taken (and given back at once)."""
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        deadline = time.monotonic() + patience
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    return True
            time.sleep(0.01)
    finally:
        connection.close()


class KeyService:
    """members-service's ``member_key`` and ``member_keys`` RPCs (nameko's protocol: a request on the
    ``nameko-rpc`` exchange, the answer to its ``reply_to`` with its ``correlation_id``), answered from
    ``keys``; records, for every member asked for, whether ``database`` was write-locked while its
    request waited."""

    def __init__(self, amqp_uri: str, keys: dict[str, bytes], database, batched: bool = True):
        self.amqp_uri, self.keys, self.database = amqp_uri, keys, database
        self.batched = batched  # False: a members-service from before ``member_keys`` (MethodNotFound)
        self.requests: list[tuple[str, bool]] = []
        self.calls = 0  # RPC requests answered (one per batch with ``member_keys``)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10), "the key stand-in did not start"
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _serve(self):
        exchange = Exchange("nameko-rpc", type="topic", durable=True)
        queue = Queue("rpc-members", exchange, routing_key="members.*", durable=True)
        with Connection(self.amqp_uri) as connection:
            channel = connection.channel()
            producer = Producer(channel)

            def answer(body, message):
                locked = write_locked(self.database)
                error = None
                if message.delivery_info["routing_key"] == "members.member_keys" and not self.batched:
                    kids, result = [], None  # nameko's answer for a method the service does not have
                    error = {"exc_type": "MethodNotFound", "exc_path": "nameko.exceptions.MethodNotFound",
                             "exc_args": ["member_keys"], "value": "member_keys"}
                elif message.delivery_info["routing_key"] == "members.member_keys":  # a batch's keys at once
                    kids = body["args"][0]
                    result = {kid: personal.jwk(kid, self.keys[kid]) for kid in kids}
                else:
                    kids = [body["args"][0]]
                    result = personal.jwk(kids[0], self.keys[kids[0]])
                self.requests.extend((kid, locked) for kid in kids)
                self.calls += 1
                producer.publish({"result": result, "error": error}, exchange=exchange,
                                 routing_key=message.properties["reply_to"], serializer="json",
                                 correlation_id=message.properties.get("correlation_id"))
                message.ack()

            with Consumer(channel, queues=[queue], callbacks=[answer], accept=["json"]):
                self._ready.set()
                while not self._stop.is_set():
                    try:
                        connection.drain_events(timeout=0.2)
                    except TimeoutError:
                        pass


def batches(url: str) -> tuple[int, int]:
    """(batches, events in them) of verbund_consumed_batch_size."""
    import re

    body = requests.get(f"{url}/metrics", timeout=10).text
    count = re.search(r'^verbund_consumed_batch_size_count\{[^}]*\} (\S+)$', body, re.MULTILINE)
    total = re.search(r'^verbund_consumed_batch_size_sum\{[^}]*\} (\S+)$', body, re.MULTILINE)
    return int(float(count.group(1))) if count else 0, int(float(total.group(1))) if total else 0


@pytest.mark.parametrize("service, batch_size, batched", [("events", 50, True), ("notifications", 50, True),
                                                      ("events", 1, True), ("events", 50, False)],
                         ids=["events-batches", "notifications-batches", "events-one-by-one",
                              "events-batches-older-members-service"])
def test_a_consumer_asks_for_keys_only_while_it_holds_no_write_lock(service, batch_size, batched, fresh_amqp_uri,
                                                                    tmp_path):
    profiles = [member_profile(contact={"name": f"Kontakt {n:02d}", "email": f"k{n:02d}@beispiel.example",
                                        "language": "de"}) for n in range(MEMBERS)]
    keys = {profile["id"]: personal.new_key() for profile in profiles}
    database = tmp_path / f"{service}.db"
    with Connection(fresh_amqp_uri) as connection:  # the events wait in the consumer's queue: full batches
        broker.declare_topology(connection)
    publisher = broker.Publisher(fresh_amqp_uri)
    for profile in profiles:
        event = member_event_v2(profile, keys[profile["id"]])
        publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])
    publisher.close()

    with KeyService(fresh_amqp_uri, keys, database, batched) as members:
        process = ServiceProcess(service, fresh_amqp_uri, f"sqlite:///{database}", tmp_path,
                                 {"CONSUME_BATCH_SIZE": str(batch_size), "OUTBOX_SWEEP_SECONDS": "60"})
        try:
            process.start(timeout=120)

            def contacts():
                with sqlite3.connect(database, timeout=5) as connection:
                    return dict(connection.execute(CONTACTS[service]).fetchall())

            wait_for(lambda: len(contacts()) == MEMBERS, timeout=120, interval=0.3,
                     message=f"{service}-service to hold every member")
            # Every contact person decrypted with its member's key, each key asked for once ...
            assert contacts() == {profile["id"]: profile["contact"]["name"] for profile in profiles}
            assert sorted(kid for kid, _ in members.requests) == sorted(keys)
            # ... and never while the consumer's transaction held the database.
            held = [kid for kid, locked in members.requests if locked]
            assert not held, f"{len(held)} of {len(members.requests)} key requests waited inside a transaction"
            if batch_size > 1:  # it was batches that asked: fewer batches than events, a call per batch
                count, total = batches(process.url)
                assert total == MEMBERS and count < MEMBERS, (count, total)
                # (an older members-service: one refused member_keys call per batch, then key by key)
                assert members.calls <= (count if batched else count + MEMBERS), (members.calls, count)
        finally:
            process.stop()
