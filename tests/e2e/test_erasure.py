"""Erasure reaches every copy (GDPR art. 17), proven end to end on SQLite and on PostgreSQL.

All four services run as real processes on their own databases and a vhost of their own; an
integrator's queue is bound to every event. A member registers with a contact person whose name and
e-mail address appear nowhere else, changes its profile, registers the contact person for a joint
event, and every service and the integrator consume its events (events-service and notifications
decrypt the contact person with the member's key over RPC, the integrator with the key endpoint's
JWK, which proves both key paths). Then the member is
erased, with a change still on its way. Afterwards no readable copy of the name or the address is
left anywhere the platform controls:

- every row of every table of every service database, outbox history and inbox included;
- every message of every queue of the vhost (read without acking: subscriber, retry and dead-letter
  queues, the integrator's queue, RPC queues), and the replay stream read back from its start;
- the services' logs;

while ciphertext of them may remain (in the integrator's queue and the replay stream), and the key
that would open it is gone: the key endpoint answers 410 and the RPC refuses. Mail already sent (the
mail catcher's files) is out of reach and not examined; so are bytes a database has not yet
overwritten (SQLite's write-ahead log, PostgreSQL's dead tuples before VACUUM), which no query returns.
"""
import json
import subprocess
import threading
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlparse

import pytest
import requests
from kombu import Connection, Consumer, Queue, binding
from sqlalchemy import MetaData, select, text

from verbund import broker, personal
from verbund.database import make_engine
from verbund.testing import ServiceProcess, bearer, free_port, wait_for

pytestmark = pytest.mark.integration

SERVICES = ("members", "events", "matching", "notifications")
ADMIN = bearer("admin")


def entitled_integrator(members_url: str) -> dict:
    """An integrator's token under a grant of member.* with personal data, recorded at members-service
    as `verbund integrator e2e-crm --events 'member.*' --personal` does."""
    granted = requests.put(f"{members_url}/integrators/e2e-crm/grant", json={"events": ["member.*"], "personal": True},
                           headers=bearer("admin"), timeout=10)
    assert granted.status_code == 200, granted.text
    return bearer("integrator", subject="e2e-crm", events=("member.*",), personal=True,
                  grant=granted.json()["serial"])


INTEGRATOR_QUEUE = "integrator.e2e-crm.everything"


@pytest.fixture(params=["sqlite", "postgresql"])
def platform(request, fresh_amqp_uri, tmp_path):
    if request.param == "sqlite":
        urls = {service: f"sqlite:///{tmp_path / (service + '.db')}" for service in SERVICES}
    else:
        postgres = request.getfixturevalue("postgres")
        urls = {service: postgres.create() for service in SERVICES}
    env = {"RETRY_DELAYS_MS": "200,500", "SMTP_PORT": str(free_port())}
    processes = {service: ServiceProcess(service, fresh_amqp_uri, urls[service], tmp_path, env)
                 for service in SERVICES}
    errors = []

    def start(process):
        try:
            process.start(timeout=90)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(p,)) for p in processes.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors, errors
        yield processes, urls, fresh_amqp_uri
    finally:
        for process in processes.values():
            process.stop()


# --- reading back every copy ----------------------------------------------------------------------

def database_dump(url: str) -> dict[str, str]:
    """Every value of every row of every table, as text, by table."""
    engine = make_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        dump = {}
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                values = []
                for row in conn.execute(select(table)):
                    for value in row:
                        if isinstance(value, (bytes, bytearray, memoryview)):
                            value = bytes(value).decode("latin-1")
                        values.append(value if isinstance(value, str) else json.dumps(value, default=str))
                dump[table.name] = "\n".join(values)
        return dump
    finally:
        engine.dispose()


def row_count(url: str, sql: str, **params) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def vhost_queues(amqp_uri: str) -> list[tuple[str, str]]:
    """(name, type) of every queue of the vhost, as the broker lists them."""
    vhost = unquote(urlparse(amqp_uri).path.lstrip("/")) or "/"
    listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers", "name", "type"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    return [tuple(line.split("\t")[:2]) for line in listed.stdout.splitlines() if line.strip()]


def queue_messages(amqp_uri: str, name: str) -> list[tuple[bytes, dict]]:
    """Every message in a classic or quorum queue, read without acking: the broker keeps them all."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        messages = []
        while True:
            message = channel.basic_get(name, no_ack=False)
            if message is None:
                break
            messages.append((message.body, dict(message.properties.get("application_headers") or {})))
        channel.close()  # unacked: back on the queue
        return messages


def stream_messages(amqp_uri: str, name: str) -> list[tuple[bytes, dict]]:
    """A stream read back from its first message."""
    messages = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        channel.basic_qos(0, 100, False)
        queue = Queue(name, no_declare=True, consumer_arguments={"x-stream-offset": "first"})

        def on_message(message):
            messages.append((message.body, dict(message.headers or {})))
            message.ack()

        with Consumer(channel, queues=[queue], on_message=on_message, accept=None):
            while True:
                try:
                    connection.drain_events(timeout=2)
                except TimeoutError:
                    break
    return messages


def every_message(amqp_uri: str) -> dict[str, list[tuple[str, dict]]]:
    """Every message body (as text) and its headers, by queue."""
    found = {}
    for name, type_ in vhost_queues(amqp_uri):
        messages = stream_messages(amqp_uri, name) if type_ == "stream" else queue_messages(amqp_uri, name)
        found[name] = [(body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body), headers)
                       for body, headers in messages]
    return found


def readable(copies: dict[str, str], secrets: list[str]) -> dict[str, list[str]]:
    """Where each secret can be read in clear (case-insensitive)."""
    return {where: [s for s in secrets if s.lower() in content.lower()] for where, content in copies.items()
            if any(s.lower() in content.lower() for s in secrets)}


def joint_event_body() -> dict:
    day = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    return {"title": "Löschprobe: Werkstattgespräch", "description": "Ein Treffen.", "kind": "workshop",
            "organizers": ["it-cluster"], "target_sectors": ["it", "logistics"], "topics": ["ai"],
            "starts_at": f"{day}T09:00:00", "ends_at": f"{day}T12:00:00", "registration_deadline": None,
            "venue": {"name": "Haus", "address": "Weg 1", "city": "Hamburg"}, "online_url": None, "capacity": 5}


# --- the test -------------------------------------------------------------------------------------

def test_after_erasure_no_readable_copy_of_the_contact_person_is_left(platform, member_input):
    processes, urls, amqp_uri = platform
    members, events = processes["members"], processes["events"]
    token = uuid.uuid4().hex[:12]
    contact_name, email = f"Quirin Zx{token}", f"q.zx{token}@loeschprobe.example"
    secrets = [contact_name, email, f"zx{token}"]

    with Connection(amqp_uri) as connection:  # the integrator's own queue, bound to everything
        channel = connection.channel()
        Queue(INTEGRATOR_QUEUE, bindings=[binding(broker.events_exchange, routing_key="#")], durable=True)(
            channel).declare()

    body = member_input(name=f"Löschprobe {token[:6]} GmbH", sector="it", associations=["it-cluster"],
                        topics=["ai"], contact={"name": contact_name, "email": email, "language": "de"})
    created = requests.post(f"{members.url}/members", json=body, timeout=10)
    assert created.status_code == 201, created.text
    member = created.json()
    member_id, own = member["id"], {"Authorization": f"Bearer {member['access_token']}"}
    entitled = entitled_integrator(members.url)

    # events-service and notifications decrypted the contact person with the member's key (over RPC) ...
    wait_for(lambda: row_count(urls["events"], "SELECT count(*) FROM members WHERE id = :id AND contact_email = :e",
                               id=member_id, e=email) == 1, timeout=30, message="events' read model")
    wait_for(lambda: row_count(urls["notifications"], "SELECT count(*) FROM recipients WHERE member_id = :id "
                               "AND email = :e AND contact_name = :n", id=member_id, e=email, n=contact_name) == 1,
             timeout=30, message="notifications' recipient read model")
    wait_for(lambda: row_count(urls["matching"], "SELECT count(*) FROM member_profiles WHERE id = :id",
                               id=member_id) == 1, timeout=30, message="matching's read model")
    # ... the contact person comes to a joint event, and the member changes its profile.
    joint = requests.post(f"{events.url}/events", json=joint_event_body(), headers=ADMIN, timeout=10)
    assert joint.status_code == 201, joint.text
    seat = requests.post(f"{events.url}/events/{joint.json()['id']}/registrations",
                         json={"seats": 1, "attendees": [contact_name]}, headers=own, timeout=10)
    assert seat.status_code == 201, seat.text
    changed = requests.patch(f"{members.url}/members/{member_id}", json={"topics": ["ai", "hydrogen"]}, headers=own,
                             timeout=10)
    assert changed.status_code == 200, changed.text
    wait_for(lambda: row_count(urls["events"], "SELECT count(*) FROM inbox WHERE type = 'member.updated'") == 1,
             timeout=30, message="events consuming member.updated")

    # Before erasure the checks below do find the contact person: they can see.
    assert readable(database_dump(urls["events"]), secrets)
    before = {f"{queue}#{i}": m[0]
              for queue, found in every_message(amqp_uri).items() for i, m in enumerate(found)}
    assert any(member_id in content for content in before.values())
    assert not readable(before, secrets), "the contact person travels in clear"
    # An integrator entitled to personal data opens the ciphertext in its queue with the key endpoint's JWK.
    jwk = requests.get(f"{members.url}/members/{member_id}/key", headers=entitled, timeout=10)
    assert jwk.status_code == 200, jwk.text
    mine = [json.loads(body) for body in (before[k] for k in before if k.startswith(INTEGRATOR_QUEUE + "#"))]
    registered = next(e for e in mine if e["type"] == "member.registered" and e["subject"] == member_id)
    assert personal.decrypt(registered["data"]["profile"]["personal"], personal.key_from_jwk(jwk.json())) == \
        {"contact": {"name": contact_name, "email": email}}

    # Erasure, with a change still on its way (its key may be gone before it is consumed).
    requests.patch(f"{members.url}/members/{member_id}", json={"topics": ["ai"]}, headers=own, timeout=10)
    assert requests.delete(f"{members.url}/members/{member_id}", headers=own, timeout=10).status_code == 204

    def erased_everywhere():
        return all(row_count(urls[service], "SELECT count(*) FROM inbox WHERE type = 'member.deleted'") == 1
                   for service in ("events", "matching", "notifications")) and \
            row_count(urls["members"], "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0

    wait_for(erased_everywhere, timeout=60, message="every service consuming member.deleted")
    with Connection(amqp_uri) as connection:  # nothing of it still in flight in the services' queues
        channel = connection.channel()
        wait_for(lambda: all(channel.queue_declare(broker.main_queue(s).name, passive=True).message_count == 0
                             for s in ("events", "matching", "notifications")), timeout=30, message="empty queues")

    # Every table of every service database.
    tables = {f"{service}.{table}": content for service in SERVICES
              for table, content in database_dump(urls[service]).items()}
    assert {"members.outbox", "members.member_keys", "events.inbox", "notifications.source_events",
            "matching.member_profiles"} <= set(tables)
    assert member_id in tables["members.members"]  # the tombstone: the dump does see the member's rows
    assert readable(tables, secrets) == {}

    # Every message of every queue of the vhost, and the replay stream from its start.
    queues = every_message(amqp_uri)
    assert broker.REPLAY_STREAM in queues and INTEGRATOR_QUEUE in queues
    assert any(name.endswith(".dead") for name in queues) and any(".retry." in name for name in queues)
    copies = {f"{queue}#{i}": body + json.dumps(headers, default=str)
              for queue, found in queues.items() for i, (body, headers) in enumerate(found)}
    assert readable(copies, secrets) == {}

    # The services' own logs.
    logs = {f"{service}.log": process.logs() for service, process in processes.items()}
    assert readable(logs, secrets) == {}

    # Ciphertext of the contact person may remain (the integrator's queue, the replay stream) ...
    ciphertexts = [json.loads(body)["data"]["profile"]["personal"]
                   for queue in (INTEGRATOR_QUEUE, broker.REPLAY_STREAM) for body, _ in queues[queue]
                   if json.loads(body)["subject"] == member_id and json.loads(body)["type"] != "member.deleted"]
    assert len(ciphertexts) >= 4 and all(personal.kid_of(c) == member_id for c in ciphertexts)
    # ... but the key that would open it is gone: for integrators and for services.
    key = requests.get(f"{members.url}/members/{member_id}/key", headers=entitled, timeout=10)
    assert key.status_code == 410, key.text
    from nameko.standalone.rpc import ClusterRpcProxy

    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=10) as cluster:
        with pytest.raises(personal.KeyErased):
            cluster.members.member_key(member_id)
