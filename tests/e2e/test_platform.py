"""The platform as `make run` starts it: `verbund up` with the embedded
defaults (SQLite under the data folder), a member registered over HTTP,
its member.registered CloudEvent on RabbitMQ."""
import os
import re
import signal
import subprocess
import sys

import pytest
import requests

from verbund.testing import free_port, wait_for
from verbund.tools import demo
from verbund.tools.cli import SERVICES

pytestmark = pytest.mark.integration


@pytest.fixture
def platform(amqp_uri, tmp_path):
    ports = {service: free_port() for service in SERVICES}
    portal_port = free_port()
    env = {**os.environ, "AMQP_URI": amqp_uri, "VERBUND_DATA_DIR": str(tmp_path / "data"),
           "SMTP_PORT": str(free_port()), "PORTAL_PORT": str(portal_port),
           "PORTAL_URL": f"http://127.0.0.1:{portal_port}",
           **{f"{service.upper()}_PORT": str(port) for service, port in ports.items()}}
    env.pop("AUTH_SECRET", None)  # embedded default: a secret generated into the data folder
    env.pop("DATABASE_URL", None)
    log = open(tmp_path / "up.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "verbund.tools.cli", "up", "--demo"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, cwd=tmp_path)
    def ready(service):
        assert process.poll() is None, (tmp_path / "up.log").read_text()
        try:
            return requests.get(f"http://127.0.0.1:{ports[service]}/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    for service in SERVICES:  # every installed service comes up
        wait_for(lambda service=service: ready(service), timeout=180, interval=0.2,
                 message=f"{service}-service via verbund up")
    wait_for(lambda: "Press Ctrl-C" in (tmp_path / "up.log").read_text(), timeout=60, message="the demo seeding")
    yield f"http://127.0.0.1:{ports['members']}", tmp_path / "data", env
    process.send_signal(signal.SIGTERM)
    # verbund up gives each of its children up to 60 s to stop (matching ends its model's warm-up first)
    assert process.wait(timeout=120) == 0
    log.close()
    # Every service stopped the normal way: nameko had no thread of ours left to kill.
    assert "killing managed thread" not in (tmp_path / "up.log").read_text()


def test_a_member_registered_over_http_appears_as_a_cloudevent(platform, event_tap, member_input):
    url, data_dir, env = platform
    tap = event_tap("member.*")
    # an address of its own: the demo data holds member_input's, and an address serves one organisation
    contact = {"name": "Jonas Weber", "email": "j.weber@havel-spedition.example", "language": "de"}
    response = requests.post(f"{url}/members", json=member_input(name="Havel Spedition KG", contact=contact),
                             timeout=10)
    assert response.status_code == 201, response.text
    member = response.json()
    [event] = tap.wait("member.registered", subject=member["id"])
    assert {event["specversion"], event["type"], event["datacontenttype"]} == {"1.0", "member.registered",
                                                                             "application/json"}
    assert (data_dir / "members.db").exists()  # the embedded SQLite default

    # An admin issues a token from the command line and lists members with it.
    token = subprocess.run([sys.executable, "-m", "verbund.tools.cli", "token", "admin", "--subject", "e2e"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    listed = requests.get(f"{url}/members", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert listed.status_code == 200 and listed.json()["total"] == len(demo.load()["members"]) + 1


def test_make_run_seeds_demo_data_and_says_where_to_look(platform):
    url, data_dir, _ = platform
    # matching started on an empty read model and filled it from members-service: the engine is
    # announced once, after that rebuild, not once for the empty model and again after it.
    wait_for(lambda: "matching engine loaded" in (data_dir.parent / "up.log").read_text()
             and "read model rebuilt from members-service" in (data_dir.parent / "up.log").read_text(),
             timeout=90, message="matching's engine and read model")
    log = (data_dir.parent / "up.log").read_text()
    assert log.count("matching engine loaded") == 1, log
    assert "demo data not seeded" not in log
    assert f"{len(demo.load()['members'])} demo members" in log and "joint events" in log
    # A box closes the output (after the demo's lines): the portal, how to sign in, where the link
    # arrives, how to stop, in this order.
    box = log[log.index("all services ready"):]
    portal = box.split("Open the portal:")[1].split()[0]
    assert portal.startswith("http://127.0.0.1:")
    order = [box.index(text) for text in ("Open the portal:", "Sign in with the demo e-mail",
                                           "The sign-in link arrives", "Press Ctrl-C")]
    assert order == sorted(order) and box.index("joint events") < order[0]
    # the demo member, the demo admin and the demo organizer, each by e-mail, inside the box
    emails = [demo.load()["members"][0]["contact"]["email"]] + [a["email"] for a in demo.load()["staff"]]
    assert all(email in box[order[1]:order[2]] for email in emails)
    assert "Anmelden" in requests.get(f"{portal}/sign-in", headers={"Accept-Language": "de"}, timeout=10).text
    email = demo.load()["members"][0]["contact"]["email"]
    assert f"with the e-mail {email}: in the portal ({portal})" in log
    token = log.split("export TOKEN=")[1].split()[0]
    member_id = jwt_member_id(token)
    own = requests.get(f"{url}/members/{member_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert own.status_code == 200 and own.json()["name"] == demo.load()["members"][0]["name"]
    assert f"with the e-mail {demo.load()['members'][0]['contact']['email']}" in log  # how to sign in
    # A demo admin and a demo organizer sign in by link out of the box: their accounts exist.
    for account in demo.load()["staff"]:
        assert f"at {portal} with the e-mail {account['email']}" in log
    secret = (data_dir / "auth-secret").read_text().strip()
    from verbund import auth
    admin = {"Authorization": f"Bearer {auth.issue('admin', 'e2e', secret=secret)}"}
    staff = requests.get(f"{url}/staff", headers=admin, timeout=10).json()["items"]
    assert {(item["email"], item["role"], item["status"]) for item in staff} == {
        (account["email"], account["role"], "active") for account in demo.load()["staff"]}


def jwt_member_id(token: str) -> str:
    import base64
    import json

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["member_id"]


def test_without_a_broker_verbund_up_says_so_and_how_to_start_one(tmp_path):
    env = {**os.environ, "AMQP_URI": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
           "VERBUND_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "verbund.tools.cli", "up"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "RabbitMQ is not reachable" in result.stderr and "rabbitmq-server -detached" in result.stderr


def _consumed(url: str) -> int:
    """verbund_messages_consumed_total of one process, all event types together."""
    import re

    body = requests.get(f"{url}/metrics", timeout=10).text
    return sum(int(float(value)) for value in
               re.findall(r"^verbund_messages_consumed_total\{[^}]*\} (\S+)$", body, re.MULTILINE))


def test_verbund_up_starts_two_instances_of_a_service_on_postgresql_and_both_consume(fresh_amqp_uri, postgres,
                                                                                      tmp_path):
    from kombu import Connection
    from sqlalchemy import text

    from verbund import broker, envelope
    from verbund.database import make_engine
    from verbund.testing import member_registered

    database_url, port = postgres.create(), free_port()
    env = {**os.environ, "AMQP_URI": fresh_amqp_uri, "VERBUND_DATA_DIR": str(tmp_path / "data"),
           "EVENTS_DATABASE_URL": database_url, "EVENTS_PORT": str(port),
           "MAX_WORKERS": "1"}  # prefetch 1: the broker hands the events out to both in turn
    log_path, urls = tmp_path / "up.log", {}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "verbund.tools.cli", "up", "events", "--instances",
                                    "events=2"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for(lambda: process.poll() is None and "all services ready" in log_path.read_text(), timeout=120,
                 interval=0.3, message="two events-service instances via verbund up")
        lines = log_path.read_text()
        # The console names each instance and where it listens: the first on the service's port.
        urls = dict(re.findall(r"^\s+(events#[12])\s+(http://\S+)", lines, re.MULTILINE))
        assert urls["events#1"] == f"http://127.0.0.1:{port}" and urls["events#2"] != urls["events#1"], lines
        assert "events#2 listening on" in lines and "events#1 listening on" in lines
        with Connection(fresh_amqp_uri) as connection:
            queue = broker.main_queue("events").name
            wait_for(lambda: connection.channel().queue_declare(queue, passive=True).consumer_count == 2,
                     timeout=30, message="both instances consuming events.events")
        sent = [member_registered() for _ in range(20)]
        publisher = broker.Publisher(fresh_amqp_uri)
        for event in sent:
            publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])
        publisher.close()
        engine = make_engine(database_url)
        try:
            def members():
                with engine.connect() as conn:
                    return {row[0] for row in conn.execute(text("SELECT id FROM members"))}

            wait_for(lambda: members() == {event["subject"] for event in sent}, timeout=60, interval=0.3,
                     message="every member in the read model")
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM inbox")).scalar() == len(sent)  # each once
        finally:
            engine.dispose()
        counts = [_consumed(urls[name]) for name in ("events#1", "events#2")]
        assert all(count > 0 for count in counts) and sum(counts) == len(sent), counts
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log_path.read_text()
    for url in urls.values():  # stopping verbund up stopped every instance
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/health", timeout=2)


@pytest.mark.parametrize("how", ["option", "setting"])
def test_several_instances_on_the_embedded_sqlite_are_refused_naming_postgresql(how, tmp_path):
    env = {**os.environ, "VERBUND_DATA_DIR": str(tmp_path / "data"),
           "AMQP_URI": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}  # refused before the broker is asked
    for name in [name for name in env if name.endswith("DATABASE_URL") or name.endswith("INSTANCES")]:
        del env[name]
    argv = [sys.executable, "-m", "verbund.tools.cli", "up", "matching"]
    if how == "option":
        argv += ["--instances", "matching=2"]
    else:
        env["MATCHING_INSTANCES"] = "2"
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "matching: 2 instances" in result.stderr and "SQLite" in result.stderr
    assert "PostgreSQL" in result.stderr and "MATCHING_DATABASE_URL (or DATABASE_URL)" in result.stderr
    assert "RabbitMQ" not in result.stderr and not list((tmp_path / "data").glob("*.db"))  # nothing started


def _processes_with(data_dir) -> set[int]:
    """The PIDs of live processes started with VERBUND_DATA_DIR=data_dir: `verbund up` and its children,
    found through /proc even once they are orphans under PID 1."""
    marker = f"VERBUND_DATA_DIR={data_dir}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker in environ.read().split(b"\0"):
                    with open(f"/proc/{entry}/stat") as stat:
                        if stat.read().rsplit(")", 1)[1].split()[0] != "Z":  # a zombie is gone, not yet reaped
                            found.add(int(entry))
        except OSError:  # ended meanwhile, or not ours
            continue
    return found


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("how, moment", [
    ("SIGINT to the group of a background job", r"^\s+members\s+http://"),  # Ctrl-C; `verbund up &` ignores it
    ("SIGINT to verbund up", r"members-service listening on"),  # timeout -s INT
    ("SIGTERM to verbund up", r"^\s+members\s+http://"),  # kill
    ("SIGTERM to verbund up with two instances", r"^\s+members#2\s+http://"),
], ids=["ctrl-c-background-job", "sigint-while-starting", "sigterm-after-spawn", "sigterm-second-instance"])
def test_a_signal_during_start_up_stops_every_child_and_frees_the_port(how, moment, amqp_uri, tmp_path, request):
    data_dir, port = tmp_path / "data", free_port()
    env = {**os.environ, "AMQP_URI": amqp_uri, "VERBUND_DATA_DIR": str(data_dir), "MEMBERS_PORT": str(port),
           "MATCHING_PORT": str(free_port())}
    argv = [sys.executable, "-m", "verbund.tools.cli", "up", "members", "matching"]
    for name in [name for name in env if name.endswith("DATABASE_URL") or name.endswith("INSTANCES")]:
        del env[name]
    if "two instances" in how:
        env["MEMBERS_DATABASE_URL"] = request.getfixturevalue("postgres").create()
        argv = [sys.executable, "-m", "verbund.tools.cli", "up", "members", "--instances", "members=2"]
    # A shell starts a background job with SIGINT ignored; `verbund up` must still stop on it.
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if "background" in how else None
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                                   start_new_session=True, preexec_fn=ignore_sigint)
    try:
        wait_for(lambda: re.search(moment, log_path.read_text(), re.MULTILINE), timeout=120, interval=0.05,
                 message=f"{moment!r} in the console")
        started = _processes_with(data_dir) - {process.pid}
        assert started, log_path.read_text()  # a child runs (or starts) when the signal comes
        if "group" in how:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT if how.startswith("SIGINT") else signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log_path.read_text()
        left = _processes_with(data_dir)
    finally:
        for pid in _processes_with(data_dir):  # whatever the outcome, leave no process behind
            os.kill(pid, signal.SIGKILL)
        process.wait()
    lines = log_path.read_text()
    assert "stopping (" in lines
    assert left == set(), lines  # no child outlived verbund up, started or starting
    assert not _listening(port), lines  # nothing holds the service's port
    assert "all services ready" not in lines.split("stopping (")[1]  # nothing started after the stop
