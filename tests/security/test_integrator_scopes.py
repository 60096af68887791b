"""Integrator scopes on the real broker: RabbitMQ's topic permissions let a scoped integrator bind
its queues to verbund.events only with binding keys inside its scope, and nothing else changes for
an integrator without a scope."""
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import requests
from amqp.exceptions import AccessRefused, ConnectionForced
from kombu import Connection, Exchange, Queue, binding

from verbund import auth, envelope
from verbund.broker import Publisher, declare_topology, events_exchange
from verbund.testing import TEST_AUTH_SECRET, ServiceProcess, member_registered
from verbund.tools import integrators

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(subprocess.run(["which", "rabbitmqctl"], capture_output=True).returncode != 0,
                                 reason="needs rabbitmqctl")]


def an_event(type_: str, **data) -> dict:
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/verbund/events", "type": type_,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "subject": str(uuid.uuid4()),
            "datacontenttype": "application/json", "dataschema": f"urn:verbund:schema:{type_}:v1", "data": data}


class Broker:
    """A vhost with the platform's topology, a publisher like the services', and integrator users."""

    def __init__(self, amqp_uri: str):
        self.admin_uri = amqp_uri
        self.vhost = unquote(amqp_uri.rsplit("/", 1)[1])
        with Connection(amqp_uri) as connection:
            declare_topology(connection)  # as the services do before anything is published
        self.publisher = Publisher(amqp_uri)
        self.users: list[str] = []

    def integrator(self, scope: str | None = None, **kwargs) -> tuple[str, str]:
        name = f"t{uuid.uuid4().hex[:8]}"
        password = integrators.create(name, vhost=self.vhost, scope=integrators.parse_scope(scope),
                                      admin_uri=self.admin_uri, **kwargs)
        self.users.append(integrators.user_name(name))
        return name, self.uri(name, password)

    def uri(self, name: str, password: str) -> str:
        return f"amqp://{integrators.user_name(name)}:{quote(password, safe='')}@127.0.0.1:5672/" \
               f"{quote(self.vhost, safe='')}"

    def publish(self, event: dict) -> None:
        self.publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])

    def close(self):
        self.publisher.close()
        for user in self.users:
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True)


@pytest.fixture(scope="module")
def platform(module_amqp_uri):
    broker = Broker(module_amqp_uri)  # rabbitmqctl takes a second or two a call: users are made sparingly
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def members(module_amqp_uri, tmp_path_factory):
    """members-service, which holds the integrators' grants, as a real process."""
    workdir = tmp_path_factory.mktemp("members")
    process = ServiceProcess("members", module_amqp_uri, f"sqlite:///{workdir / 'members.db'}", workdir).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def notifications(module_amqp_uri, tmp_path_factory):
    """notifications-service, which holds the integrators' webhooks, as a real process."""
    workdir = tmp_path_factory.mktemp("notifications")
    process = ServiceProcess("notifications", module_amqp_uri, f"sqlite:///{workdir / 'notifications.db'}", workdir,
                             env={"SMTP_PORT": "9", "DIGEST_CHECK_SECONDS": "3600"}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def scoped(platform):
    """An integrator scoped to event.* and registration.*: (name, AMQP URI)."""
    return platform.integrator("event.*,registration.*")


def own_queue(name: str) -> str:
    return f"integrator.{name}.{uuid.uuid4().hex[:6]}"


def bind(uri: str, queue: str, *keys: str) -> None:
    with Connection(uri) as connection:
        Queue(queue, durable=True, bindings=[binding(integrators.EXISTING_EXCHANGE, routing_key=key) for key in keys])(
            connection.channel()).declare()


def refused(action) -> AccessRefused:
    with pytest.raises(AccessRefused) as caught:
        action()
    return caught.value


def test_a_scoped_integrator_binds_and_receives_its_event_types(platform, scoped):
    name, uri = scoped
    queue = own_queue(name)
    bind(uri, queue, "event.*", "registration.confirmed")
    scheduled, confirmed = an_event("event.scheduled", title="Batterietag"), an_event("registration.confirmed")
    platform.publish(member_registered(name="Nicht für dich GmbH"))
    platform.publish(scheduled)
    platform.publish(an_event("registration.waitlisted"))  # in scope, but not bound
    platform.publish(confirmed)
    received = list(integrators.follow(uri, [], queue_name=queue, idle_timeout=2))
    assert [event["id"] for event in received] == [scheduled["id"], confirmed["id"]]


@pytest.mark.parametrize("key", ["member.*", "#", "*.*", "event.#", "*.scheduled", "member.registered"])
def test_binding_outside_the_scope_is_refused_by_the_broker(platform, scoped, key):
    name, uri = scoped
    queue = own_queue(name)
    error = refused(lambda: bind(uri, queue, key))
    assert error.code == 403 and f"access to topic '{key}'" in str(error)  # a channel error: ACCESS_REFUSED
    listing = subprocess.run(["rabbitmqctl", "-q", "list_bindings", "-p", platform.vhost, "destination_name",
                              "routing_key"], capture_output=True, text=True, check=True).stdout
    assert f"{queue}\t{key}\n" not in listing  # nothing half-bound


def test_an_own_exchange_cannot_widen_the_scope(scoped):
    name, uri = scoped

    def bind_exchange(key: str):
        with Connection(uri) as connection:
            channel = connection.channel()
            Exchange(f"integrator.{name}.fanout", type="fanout", auto_delete=True)(channel).declare()
            channel.exchange_bind(f"integrator.{name}.fanout", events_exchange.name, key)

    assert refused(lambda: bind_exchange("#")).code == 403
    bind_exchange("event.*")  # inside the scope, as with a queue


@pytest.mark.parametrize("queue", ["members.events", "notifications.events", "matching.events",
                                   "notifications.events.dead", "verbund.replay"])
def test_a_scoped_integrator_cannot_read_the_services_queues_nor_the_replay_stream(scoped, queue):
    _, uri = scoped
    with Connection(uri) as connection:
        assert refused(lambda: connection.channel().basic_get(queue=queue)).code == 403
    since = datetime.now(UTC)
    assert refused(lambda: list(integrators.follow(uri, ["event.*"], since=since, idle_timeout=2))).code == 403


@pytest.mark.parametrize("key", ["event.scheduled", "member.registered"])
def test_a_scoped_integrator_cannot_publish(scoped, key):
    _, uri = scoped
    with Connection(uri, transport_options={"confirm_publish": True}) as connection:
        producer = connection.Producer(connection.channel())
        assert refused(lambda: producer.publish(b"{}", exchange=events_exchange.name, routing_key=key)).code == 403


def test_an_integrator_without_scope_keeps_everything_it_had(platform):
    name, uri = platform.integrator()  # no --events: the documented default
    queue = own_queue(name)
    bind(uri, queue, "#")
    since = datetime.now(UTC)
    events = [member_registered(name="Alles GmbH"), an_event("event.scheduled"), an_event("project.formed")]
    for event in events:
        platform.publish(event)
    assert [e["id"] for e in integrators.follow(uri, [], queue_name=queue, idle_timeout=2)] == \
        [e["id"] for e in events]
    replayed = integrators.follow(uri, ["#"], since=since, idle_timeout=3)
    assert [e["id"] for e in replayed] == [e["id"] for e in events]


def test_a_user_made_before_scopes_has_no_topic_permission_and_reads_everything(platform):
    name = f"t{uuid.uuid4().hex[:8]}"
    user, password = integrators.user_name(name), uuid.uuid4().hex
    platform.users.append(user)
    # What `verbund integrator` did before scopes: the vhost permissions only.
    for args in (["add_user", user, password], ["set_permissions", "-p", platform.vhost, user,
                                                rf"^integrator\.{name}\..*", rf"^integrator\.{name}\..*",
                                                rf"^(verbund\.events|verbund\.replay|integrator\.{name}\..*)$"]):
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)
    uri = platform.uri(name, password)
    bind(uri, f"integrator.{name}.inbox", "#", "member.*")
    event = member_registered(name="Alt GmbH")
    platform.publish(event)
    assert [e["id"] for e in integrators.follow(uri, [], queue_name=f"integrator.{name}.inbox", idle_timeout=2)] \
        == [event["id"]]


def test_narrowing_the_scope_removes_bindings_outside_it_and_closes_connections(platform):
    name, uri = platform.integrator()
    queue = own_queue(name)
    bind(uri, queue, "member.*", "event.*")
    with Connection(uri) as connection:
        connection.connect()
        password = integrators.create(name, vhost=platform.vhost, scope=integrators.parse_scope("event.*"),
                                      admin_uri=platform.admin_uri, keep_password=True)
        assert password is None  # the integrator's URI stays valid
        with pytest.raises(ConnectionForced):  # RabbitMQ caches rights per channel: open ones must go
            connection.drain_events(timeout=10)
    member, scheduled = member_registered(name="Jetzt nicht mehr GmbH"), an_event("event.scheduled")
    platform.publish(member)
    platform.publish(scheduled)
    assert [e["id"] for e in integrators.follow(uri, [], queue_name=queue, idle_timeout=2)] == [scheduled["id"]]
    assert refused(lambda: bind(uri, queue, "member.*")).code == 403


def test_a_scoped_integrator_catches_up_through_verbund_replay_within_its_scope_only(platform, scoped):
    name, uri = scoped  # event.*, registration.*
    since = datetime.now(UTC)
    scheduled, confirmed = an_event("event.scheduled", title="Vorher"), an_event("registration.confirmed")
    platform.publish(member_registered(name="Nicht im Umfang GmbH"))
    platform.publish(scheduled)
    platform.publish(confirmed)
    env = {**os.environ, "AMQP_URI": platform.admin_uri}
    # Its queues exist only after those events. '#' cannot widen the scope the broker holds; event.* narrows it.
    for events, expected in (("#", [scheduled, confirmed]), ("event.*", [scheduled])):
        queue = own_queue(name)
        bind(uri, queue, "event.*")
        result = subprocess.run([sys.executable, "-m", "verbund.tools.cli", "replay", name, "--events", events,
                                 "--since", since.isoformat(), "--queue", queue.rsplit(".", 1)[1], "--idle", "2"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"copied {len(expected)} event(s)" in result.stdout
        assert list(integrators.follow(uri, [], queue_name=queue, idle_timeout=2)) == expected


def test_verbund_replay_into_a_missing_queue_or_for_nobody_is_a_clear_error(platform, scoped):
    env = {**os.environ, "AMQP_URI": platform.admin_uri}
    for name, queue in ((scoped[0], "nothere"), ("nobody-here", "inbox")):
        result = subprocess.run([sys.executable, "-m", "verbund.tools.cli", "replay", name, "--since", "1m",
                                 "--queue", queue, "--idle", "1"], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr


def test_verbund_integrator_prints_a_working_uri_and_a_scoped_token(platform, members, notifications):
    name = f"t{uuid.uuid4().hex[:8]}"
    platform.users.append(integrators.user_name(name))
    env = {**os.environ, "AMQP_URI": platform.admin_uri, "MEMBERS_URL": members.url,
           "NOTIFICATIONS_URL": notifications.url, "AUTH_SECRET": TEST_AUTH_SECRET}
    result = subprocess.run([sys.executable, "-m", "verbund.tools.cli", "integrator", name, "--vhost", platform.vhost,
                             "--events", "event.*,registration.*", "--personal"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    uri = re.search(r"^AMQP_URI=(\S+)$", result.stdout, re.M).group(1)
    token = re.search(r"^TOKEN=(\S+)$", result.stdout, re.M).group(1)
    principal = auth.verify(token)
    assert (principal.role, principal.subject) == ("integrator", name)
    assert principal.events == ("event.*", "registration.*") and principal.personal is True
    bind(uri, f"integrator.{name}.inbox", "registration.*")
    assert refused(lambda: bind(uri, f"integrator.{name}.inbox", "member.*")).code == 403
    # The same command again without a scope: the documented default, and a token without personal data.
    result = subprocess.run([sys.executable, "-m", "verbund.tools.cli", "integrator", name, "--vhost", platform.vhost,
                             "--keep-password"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    principal = auth.verify(re.search(r"^TOKEN=(\S+)$", result.stdout, re.M).group(1))
    assert principal.events == ("#",) and principal.personal is False
    bind(uri, f"integrator.{name}.inbox", "member.*")
    # Narrowing while the broker's AMQP port is out of reach: said plainly, and the old password still works.
    result = subprocess.run([sys.executable, "-m", "verbund.tools.cli", "integrator", name, "--vhost", platform.vhost,
                             "--events", "event.*"], env={**env, "AMQP_URI": "amqp://guest:guest@127.0.0.1:1/"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "could not be removed" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    bind(uri, f"integrator.{name}.inbox", "event.scheduled")


def verbund_integrator(platform, members_url: str, name: str, *options: str,
                       notifications_url: str = "http://127.0.0.1:1") -> subprocess.CompletedProcess:
    env = {**os.environ, "AMQP_URI": platform.admin_uri, "MEMBERS_URL": members_url,
           "NOTIFICATIONS_URL": notifications_url, "AUTH_SECRET": TEST_AUTH_SECRET}
    command = Path(sys.executable).with_name("verbund")  # the installed command, wherever its module lives
    return subprocess.run([str(command), "integrator", name, "--vhost", platform.vhost, *options], env=env,
                          capture_output=True, text=True, timeout=60)


def test_narrowing_with_verbund_integrator_takes_back_the_old_token(platform, members, notifications, member_input):
    """Tester's no. 5: the token of a personal grant loses the key and the contact persons when the
    integrator is made again with a narrower scope and without --personal."""
    name = f"t{uuid.uuid4().hex[:8]}"
    platform.users.append(integrators.user_name(name))
    first = verbund_integrator(platform, members.url, name, "--events", "member.registered", "--personal",
                               notifications_url=notifications.url)
    assert first.returncode == 0, first.stderr
    old = {"Authorization": "Bearer " + re.search(r"^TOKEN=(\S+)$", first.stdout, re.M).group(1)}
    member = requests.post(f"{members.url}/members", json=member_input(name=f"Firma {uuid.uuid4().hex[:8]}"),
                           timeout=10).json()
    key, profile = f"{members.url}/members/{member['id']}/key", f"{members.url}/members/{member['id']}"
    assert requests.get(key, headers=old, timeout=10).status_code == 200
    assert requests.get(profile, headers=old, timeout=10).json()["contact"]["email"] == member["contact"]["email"]

    second = verbund_integrator(platform, members.url, name, "--events", "event.*", "--keep-password",
                                notifications_url=notifications.url)
    assert second.returncode == 0, second.stderr
    refused = requests.get(key, headers=old, timeout=10)
    assert refused.status_code == 403 and "changed" in refused.json()["error"]
    assert requests.get(profile, headers=old, timeout=10).status_code == 403
    assert requests.get(f"{members.url}/members", params={"q": member["name"]}, headers=old,
                        timeout=10).status_code == 403
    new = {"Authorization": "Bearer " + re.search(r"^TOKEN=(\S+)$", second.stdout, re.M).group(1)}
    assert requests.get(key, headers=new, timeout=10).status_code == 403
    assert requests.get(profile, headers=new, timeout=10).json()["contact"]["email"] is None


def test_verbund_integrator_without_members_service_changes_nothing(platform):
    name = f"t{uuid.uuid4().hex[:8]}"
    platform.users.append(integrators.user_name(name))
    result = verbund_integrator(platform, "http://127.0.0.1:1", name, "--events", "event.*")
    assert result.returncode == 1 and "nothing changed" in result.stderr and "MEMBERS_URL" in result.stderr
    assert "Traceback" not in result.stderr and "TOKEN=" not in result.stdout
    users = subprocess.run(["rabbitmqctl", "-q", "list_users"], capture_output=True, text=True).stdout.split()
    assert integrators.user_name(name) not in users


def test_narrowing_with_verbund_integrator_brings_its_webhooks_within_the_scope(platform, members, notifications):
    """A webhook made under a wide scope does not keep delivering what a narrowed scope refuses."""
    name = f"t{uuid.uuid4().hex[:8]}"
    platform.users.append(integrators.user_name(name))
    first = verbund_integrator(platform, members.url, name, notifications_url=notifications.url)  # everything
    assert first.returncode == 0, first.stderr
    wide = {"Authorization": "Bearer " + re.search(r"^TOKEN=(\S+)$", first.stdout, re.M).group(1)}
    hooks = {}
    for types in (["#"], ["member.*"], ["event.scheduled", "member.registered"]):
        made = requests.post(f"{notifications.url}/webhooks", json={"url": "https://93.184.215.14/crm",
                                                                    "event_types": types}, headers=wide, timeout=10)
        assert made.status_code == 201, made.text
        hooks[made.json()["id"]] = types

    second = verbund_integrator(platform, members.url, name, "--events", "event.*", "--keep-password",
                                notifications_url=notifications.url)
    assert second.returncode == 0, second.stderr
    narrow = {"Authorization": "Bearer " + re.search(r"^TOKEN=(\S+)$", second.stdout, re.M).group(1)}
    now = {hook["id"]: (hook["event_types"], hook["enabled"]) for hook in
           requests.get(f"{notifications.url}/webhooks", headers=narrow, timeout=10).json()["items"]}
    by_types = {tuple(types): now[hook_id] for hook_id, types in hooks.items()}
    assert by_types == {("#",): (["event.*"], True), ("member.*",): (["member.*"], False),
                        ("event.scheduled", "member.registered"): (["event.scheduled"], True)}
    # What was disabled as outside the scope cannot be switched back on with the narrow token.
    [off] = [hook_id for hook_id, types in hooks.items() if types == ["member.*"]]
    again = requests.patch(f"{notifications.url}/webhooks/{off}", json={"enabled": True}, headers=narrow, timeout=10)
    assert again.status_code == 422 and "event_types" in again.json()["fields"]
    # notifications-service out of reach: the command says so and exits non-zero after the rest.
    third = verbund_integrator(platform, members.url, name, "--events", "event.*", "--keep-password")
    assert third.returncode == 1 and "NOTIFICATIONS_URL" in third.stderr and "Traceback" not in third.stderr
