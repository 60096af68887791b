"""pytest plugin shared by every service's tests: the real broker in a
throw-away vhost, real PostgreSQL databases made per test, services started
as real processes, a tap on the event exchange, and waiting with a timeout.

Where RabbitMQ or PostgreSQL is not running locally but a Docker engine is,
pytest-docker brings up the ``docker-compose.yml`` infrastructure instead.

It needs pytest, which a running service does not: install the kit with its
``testing`` extra (``pip install -e 'kit[testing]'``, as ``make install`` does).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TEST_AUTH_SECRET = "verbund-test-secret-0123456789abcdef"
PG_ADMIN_URL = os.environ.get("VERBUND_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("VERBUND_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


_handed_out: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1, never one this process handed out before: a port is free again
    once the probe closes, until the service it was meant for binds it, and two services started
    one after the other must not be given the same one."""
    while True:
        with closing(socket.socket()) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _docker_engine() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


# --- infrastructure --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def infrastructure(request):
    """Make sure RabbitMQ and PostgreSQL answer: the local ones, or the compose stack's."""
    if _reachable("127.0.0.1", 5672) and _reachable("127.0.0.1", 5432):
        return "local"
    if not _docker_engine():
        pytest.fail("RabbitMQ (5672) and PostgreSQL (5432) are not reachable on localhost and there is no "
                    "Docker engine; start them: rabbitmq-server -detached; "
                    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
    docker_services = request.getfixturevalue("docker_services")
    docker_services.wait_until_responsive(lambda: _reachable("127.0.0.1", 5672) and _reachable("127.0.0.1", 5432),
                                          timeout=120, pause=1)
    return "docker"


@pytest.fixture(scope="session")
def docker_compose_file():
    return str(ROOT / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_setup():
    return ["up --build -d rabbitmq postgres"]


def _rabbitmqctl(*args: str) -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True).returncode == 0


class Vhost:
    """A RabbitMQ vhost of its own, so tests see only their own queues."""

    def __init__(self):
        self.name = f"verbund-test-{uuid.uuid4().hex[:10]}"
        self.created = _rabbitmqctl("add_vhost", self.name) and \
            _rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        base = AMQP_BASE.rstrip("/")
        # Without rabbitmqctl (a broker in Docker, no root) the default vhost is shared.
        self.uri = f"{base}/{quote(self.name, safe='')}" if self.created else AMQP_BASE

    def delete(self):
        if self.created:
            _rabbitmqctl("delete_vhost", self.name)


@pytest.fixture(scope="session")
def amqp_uri(infrastructure):
    vhost = Vhost()
    yield vhost.uri
    vhost.delete()


@pytest.fixture(scope="module")
def module_amqp_uri(infrastructure):
    """A vhost for one test module: its service sees no backlog of other modules' events."""
    vhost = Vhost()
    yield vhost.uri
    vhost.delete()


@pytest.fixture
def fresh_amqp_uri(infrastructure):
    """A vhost for one test, for tests that count what lands in a service's queues."""
    vhost = Vhost()
    yield vhost.uri
    vhost.delete()


class PostgresDatabases:
    """Creates empty PostgreSQL databases and drops them at the end."""

    def __init__(self):
        from verbund.database import make_engine

        self.admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def create(self) -> str:
        from sqlalchemy import text

        name = f"verbund_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    @contextmanager
    def away(self, url: str) -> Iterator[None]:
        """An outage of the database at ``url`` (one made by ``create``) for the block: it takes no new
        connections and its open ones are ended, as if its server were down; the rest of the server
        stays up for the other tests."""
        from sqlalchemy import text

        name = url.rsplit("/", 1)[1]
        assert name in self.names, "only a database made for the test is taken away"
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                         {"name": name})
        try:
            yield
        finally:
            with self.admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))

    def drop_all(self):
        from sqlalchemy import text

        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres(infrastructure):
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty database, once on SQLite and once on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres").create()


@pytest.fixture(autouse=True)
def _test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTH_SECRET", TEST_AUTH_SECRET)
    monkeypatch.setenv("VERBUND_DATA_DIR", str(tmp_path / "data"))


# --- services as real processes --------------------------------------------------------------------

SMTP_SETTINGS = ("SMTP_", "NOTIFICATIONS_SMTP_")


class ServiceProcess:
    """``verbund run SERVICE`` in a subprocess, with its own port and database."""

    def __init__(self, service: str, amqp_uri: str, database_url: str, workdir: Path, env: dict | None = None):
        self.service = service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log_path = workdir / f"{service}-{self.port}.log"
        self.env = {
            # Never the developer's mail settings: a test mails its own MailCatcher (SMTP_PORT in ``env``)
            # or nobody. Without one, SMTP goes to a free port nothing listens on, never to the mail
            # catcher of ``make run`` on 8025, where another run's mails would land in a person's folder.
            **{name: value for name, value in os.environ.items() if not name.startswith(SMTP_SETTINGS)},
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(free_port()),
            "AMQP_URI": amqp_uri,
            f"{service.upper()}_DATABASE_URL": database_url,
            f"{service.upper()}_PORT": str(self.port),
            "VERBUND_DATA_DIR": str(workdir / "data"),
            "AUTH_SECRET": TEST_AUTH_SECRET,
            "RETRY_DELAYS_MS": "100,200",
            "OUTBOX_SWEEP_SECONDS": "0.5",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> ServiceProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "verbund.tools.cli", "run", self.service],
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.service} exited with {self.process.returncode}:\n{self.logs()}")
            try:
                return requests.get(f"{self.url}/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout=timeout, interval=0.2, message=f"{self.service} to be ready")
        return self

    def stop(self, timeout: float = 20) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.logs().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines


@pytest.fixture
def start_service(amqp_uri, tmp_path):
    """Start services as processes; every one is stopped after the test."""
    started: list[ServiceProcess] = []

    def start(service: str, database_url: str | None = None, amqp: str | None = None, env: dict | None = None):
        url = database_url or f"sqlite:///{tmp_path / (service + '.db')}"
        process = ServiceProcess(service, amqp or amqp_uri, url, tmp_path, env)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def service_api(service: str, *, name: str | None = None, amqp_fixture: str = "amqp_uri", env: dict | None = None,
                timeout: float = 120):
    """A module-scoped pytest fixture: ``service`` ("members", ...) as a real process (a ``ServiceProcess``),
    once per database (SQLite, then a fresh PostgreSQL database), shared by a module's tests.

    Declare it in a conftest: ``members_api = service_api("members")``. ``name``: the fixture's name
    (default ``<service>_api``); ``amqp_fixture``: the fixture giving the broker URI (``module_amqp_uri``
    for a vhost of the module's own); ``env``: extra environment; ``timeout``: seconds to wait for ``/ready``.
    """
    @pytest.fixture(scope="module", params=["sqlite", "postgresql"], name=name or f"{service}_api")
    def running_service(request, tmp_path_factory):
        workdir = tmp_path_factory.mktemp(service)
        url = f"sqlite:///{workdir / (service + '.db')}" if request.param == "sqlite" \
            else request.getfixturevalue("postgres").create()
        process = ServiceProcess(service, request.getfixturevalue(amqp_fixture), url, workdir, env)
        yield process.start(timeout=timeout)
        process.stop()

    return running_service


# --- a tap on the event exchange -------------------------------------------------------------------

class EventTap:
    """A private queue bound to ``verbund.events``: what the platform published."""

    def __init__(self, amqp_uri: str, patterns=("#",)):
        from kombu import Connection, Queue, binding

        from verbund.broker import events_exchange

        self.connection = Connection(amqp_uri)
        self.channel = self.connection.channel()
        events_exchange(self.channel).declare()
        self.queue = Queue(f"tap-{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True,
                           bindings=[binding(events_exchange, routing_key=p) for p in patterns])(self.channel)
        self.queue.declare()
        self.events: list[dict] = []
        self.messages: list = []

    def _drain(self) -> None:
        while True:
            message = self.queue.get(no_ack=True)
            if message is None:
                return
            self.messages.append(message)
            self.events.append(json.loads(message.body))

    def wait(self, type: str | None = None, subject: str | None = None, count: int = 1, timeout: float = 10):
        """The first ``count`` events of this type (and subject) to arrive."""
        def matching():
            self._drain()
            found = [e for e in self.events
                     if (type is None or e["type"] == type) and (subject is None or e["subject"] == subject)]
            return found if len(found) >= count else None

        return wait_for(matching, timeout=timeout, message=f"{count} {type or 'event'}(s)")[:count]

    def drain(self) -> list[dict]:
        self._drain()
        return self.events

    def close(self):
        self.connection.release()


@pytest.fixture
def event_tap(amqp_uri):
    taps: list[EventTap] = []

    def tap(*patterns: str, uri: str | None = None) -> EventTap:
        created = EventTap(uri or amqp_uri, patterns or ("#",))
        taps.append(created)
        return created

    yield tap
    for created in taps:
        created.close()


def token(role: str, **claims) -> str:
    """A bearer token signed with the tests' secret."""
    from verbund import auth

    return auth.issue(role, claims.pop("subject", f"test-{role}"), secret=TEST_AUTH_SECRET, **claims)


def bearer(role: str, **claims) -> dict:
    return {"Authorization": f"Bearer {token(role, **claims)}"}


def member_profile(**overrides) -> dict:
    """A valid member profile as events carry it (see member-profile.v1.json)."""
    profile = {
        "id": str(uuid.uuid4()),
        "version": 1,
        "name": "Muster Antriebstechnik GmbH",
        "sector": "automotive",
        "associations": ["automotive-cluster"],
        "region": {"state": "BW", "postcode": "70173", "city": "Stuttgart"},
        "size": {"employees": 120, "turnover_eur": None, "balance_sheet_eur": None, "sme": True,
                 "category": "medium"},
        "website": "https://muster-antrieb.example",
        "contact": {"name": "Erika Muster", "email": "erika@muster-antrieb.example", "language": "de"},
        "offers": [{"term": None, "label": "Elektromotorenbau", "description": None}],
        "needs": [{"term": None, "label": "Rückverfolgbarkeit", "description": None}],
        "topics": ["e-mobility"],
        "consent": {"suggest_as_partner": True, "email": True},
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    profile.update(overrides)
    return profile


def member_registered(**overrides) -> dict:
    from verbund import envelope

    profile = member_profile(**overrides)
    return envelope.new_event("member.registered", "/verbund/members", profile["id"], {"profile": profile},
                              version=1)


def member_event_v2(profile: dict, key: bytes, type: str = "member.registered",
                    changed: list[str] | None = None) -> dict:
    """A member.registered/updated event as members-service publishes it (v2): ``profile`` (v1 shape,
    see member_profile) with its contact person encrypted under ``key``."""
    from verbund import envelope, personal

    data = {"profile": personal.conceal(profile, key)}
    if type == "member.updated":
        data["changed"] = changed or ["contact"]
    return envelope.new_event(type, "/verbund/members", profile["id"], data)


@contextmanager
def migrated_store(service: str, database_url: str, amqp_uri: str):
    """A service's database, migrated by Alembic, with its outbox relaying to the real broker."""
    from verbund import migrations, outbox
    from verbund.broker import Publisher
    from verbund.database import Store, make_engine

    migrations.upgrade(service, database_url)
    engine = make_engine(database_url)
    relay = outbox.Relay(engine, Publisher(amqp_uri))
    try:
        yield Store(engine, relay)
    finally:
        relay.close()
        engine.dispose()


def outbox_events(store, type: str | None = None) -> list[dict]:
    """Every event in ``store``'s outbox (published or not) as a CloudEvent dict, in the order they
    were written; only those of ``type`` if given."""
    from sqlalchemy import select

    from verbund import outbox

    with store.engine.connect() as conn:
        bodies = conn.execute(select(outbox.outbox_table.c.body).order_by(outbox.outbox_table.c.seq)).scalars()
        return [event for event in map(json.loads, bodies) if type is None or event["type"] == type]


# --- use-case tests: SQLite and a recording publisher, no broker -------------------------------------

class RecordingPublisher:
    """Stands in for the broker in use-case tests: the real outbox relay hands it
    the committed events, and it keeps them (as CloudEvent dicts) in order."""

    def __init__(self):
        self.published: list[dict] = []

    def publish_many(self, messages) -> None:
        from verbund import envelope

        self.published.extend(envelope.loads(message.body) for message in messages)

    def types(self) -> list[str]:
        return [event["type"] for event in self.published]

    def of_type(self, type: str) -> list[dict]:
        return [event for event in self.published if event["type"] == type]

    def close(self) -> None:
        pass


class FixedClock:
    """A clock for ``Store(clock=…)``: returns ``moment`` until moved with ``advance``."""

    def __init__(self, moment=None):
        from datetime import UTC, datetime

        self.moment = moment or datetime(2026, 6, 1, 8, 0, tzinfo=UTC)

    def __call__(self):
        return self.moment

    def advance(self, **delta):
        from datetime import timedelta

        self.moment += timedelta(**delta)
        return self.moment


@contextmanager
def use_case_store(service: str, path: Path, clock=None):
    """The service's schema migrated into a SQLite file under ``path`` and a Store on it
    whose relay publishes to a RecordingPublisher (``store.relay.publisher``) at each
    commit, with ``clock`` (default a FixedClock) as ``uow.now()``. No broker, no PostgreSQL."""
    from verbund import catalogue, migrations, outbox
    from verbund.database import Store, make_engine

    database_url = f"sqlite:///{path / (service + '.db')}"
    migrations.upgrade(service, database_url)
    engine = make_engine(database_url)
    relay = outbox.Relay(engine, RecordingPublisher())
    try:
        yield Store(engine, relay, source=catalogue.source_of(service), clock=clock or FixedClock())
    finally:
        engine.dispose()
