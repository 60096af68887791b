"""Faults while the platform works: every service killed with SIGKILL once
and restarted, RabbitMQ restarted, PostgreSQL stopped for seconds, all in
the middle of a steady stream of member registrations and event
registrations. Afterwards every event took effect exactly once: counted,
not eyeballed.

This suite restarts the machine's RabbitMQ and PostgreSQL; it needs root
(rabbitmqctl, pg_ctlcluster) and runs in `make test` (CI runs as root).
"""
import os
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from kombu import Connection
from sqlalchemy import func, select

from verbund import catalogue
from verbund.database import make_engine
from verbund.outbox import outbox_table
from verbund.testing import ServiceProcess, bearer, wait_for
from verbund.tools.cli import SERVICES

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("rabbitmqctl") or not shutil.which("pg_ctlcluster"),
                       reason="restarts RabbitMQ and PostgreSQL: needs root, rabbitmqctl and pg_ctlcluster"),
]

ADMIN = bearer("admin")
ORGANIZER = bearer("organizer", association="logistics-network")


def restart_rabbitmq():
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)


def pause_postgresql(seconds: float):
    version = os.listdir("/etc/postgresql")[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast"],
                   check=True, capture_output=True)
    time.sleep(seconds)  # the fault itself: the database is away for this long
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                   check=True, capture_output=True)


class Stream:
    """Registers members and signs them up for an event, one after another,
    retrying each step until the platform answers it (a client would too)."""

    def __init__(self, urls: dict[str, str], event_id: str):
        self.urls, self.event_id = urls, event_id
        self.members: list[str] = []
        self.registered: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @staticmethod
    def _until_answered(send, done=lambda response: response.status_code < 500):
        """Send again until ``done``: through connection errors, 5xx and, for a
        registration, the moment before events-service heard of the new member (422)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = send()
                if done(response):
                    return response
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("the platform did not answer for two minutes")

    def run(self):
        number = 0
        while not self.stop.is_set():
            number += 1
            name = f"Stromfirma {number:04d} GmbH"
            body = {"name": name, "sector": ["automotive", "it", "logistics"][number % 3],
                    "region": {"state": "SN", "postcode": f"{1000 + number:05d}", "city": "Leipzig"},
                    "size": {"employees": 10 + number}, "topics": ["digital-logistics"],
                    "contact": {"name": "K", "email": f"k{number}@strom.example", "language": "de"},
                    "offers": [{"label": "Kontraktlogistik"}], "needs": [{"label": "Telematik"}],
                    "consent": {"suggest_as_partner": True, "email": False}}
            response = self._until_answered(
                lambda body=body: requests.post(f"{self.urls['members']}/members", json=body, timeout=10))
            if response.status_code == 409:  # the first try went through before the fault hit
                member_id = requests.get(f"{self.urls['members']}/members", params={"q": name}, headers=ADMIN,
                                         timeout=10).json()["items"][0]["id"]
            else:
                assert response.status_code == 201, response.text
                member_id = response.json()["id"]
            self.members.append(member_id)
            if number % 2 == 0:  # every second member signs up for the event
                token = {"Authorization": f"Bearer {bearer_token(member_id)}"}
                self._until_answered(lambda token=token: requests.post(
                    f"{self.urls['events']}/events/{self.event_id}/registrations", json={"seats": 1},
                    headers=token, timeout=10), done=lambda response: response.status_code in (201, 409))
                self.registered.append(member_id)
            time.sleep(0.05)


def bearer_token(member_id: str) -> str:
    from verbund.testing import token

    return token("member", member_id=member_id)


@pytest.fixture
def platform(fresh_amqp_uri, postgres, tmp_path):
    processes = {service: ServiceProcess(service, fresh_amqp_uri, postgres.create(), tmp_path,
                                         env={"RETRY_DELAYS_MS": "200,1000,3000"})
                 for service in SERVICES}
    for process in processes.values():
        process.start()
    yield processes
    for process in processes.values():
        process.stop()


def test_every_event_takes_effect_exactly_once_through_kills_and_restarts(platform, fresh_amqp_uri):
    urls = {service: process.url for service, process in platform.items()}
    starts = datetime.now(UTC) + timedelta(days=30)
    event = requests.post(f"{urls['events']}/events", headers=ORGANIZER, timeout=10, json={
        "title": "Störungsfest", "kind": "meetup", "organizers": ["logistics-network"],
        "target_sectors": ["logistics"], "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(), "capacity": 10_000,
        "online_url": "https://meet.example/stoerungsfest"})
    assert event.status_code == 201, event.text
    stream = Stream(urls, event.json()["id"])
    stream.thread.start()

    def progress(count):
        wait_for(lambda: len(stream.members) >= count, timeout=120, message=f"{count} members through the stream")

    progress(10)
    for process in platform.values():  # each service dies once, mid-stream, and comes back
        process.kill()
        time.sleep(1)  # the outage: the stream keeps sending meanwhile
        process.start()
        progress(len(stream.members) + 5)
    restart_rabbitmq()
    progress(len(stream.members) + 10)
    pause_postgresql(8)  # longer than the retry schedule (4.2 s): an outage must not spend attempts
    progress(len(stream.members) + 10)
    stream.stop.set()
    stream.thread.join(timeout=60)

    members, registered = stream.members, set(stream.registered)
    assert len(members) == len(set(members))  # no organisation was registered twice

    # Every member reached every read model, once.
    if "notifications" in urls:
        wait_for(lambda: all(requests.get(f"{urls['notifications']}/members/{m}/preferences", headers=ADMIN,
                                          timeout=10).status_code == 200 for m in members),
                 timeout=120, interval=1, message="every member in notifications' read model")
    if "matching" in urls:
        wait_for(lambda: all(requests.get(f"{urls['matching']}/members/{m}/suggestions", headers=ADMIN,
                                          timeout=10).status_code == 200 for m in members),
                 timeout=120, interval=1, message="every member in matching's read model")

    # Every registration confirmed exactly once, and its notification in the member's inbox exactly once.
    attendees = requests.get(f"{urls['events']}/events/{stream.event_id}/registrations", headers=ADMIN,
                             timeout=10).json()
    confirmed = [item["member_id"] for item in attendees["items"] if item["status"] == "confirmed"]
    assert sorted(confirmed) == sorted(registered)
    if "notifications" in urls:
        def inbox_counts():
            counts = {}
            for member in registered:
                items = requests.get(f"{urls['notifications']}/members/{member}/notifications",
                                     params={"per_page": 100}, headers=ADMIN, timeout=10).json()["items"]
                counts[member] = sum(1 for item in items if item["type"] == "registration.confirmed")
            return counts

        wait_for(lambda: all(count >= 1 for count in inbox_counts().values()), timeout=120, interval=1,
                 message="every confirmation in its inbox")
        assert set(inbox_counts().values()) == {1}

    # Nothing left behind: outboxes empty, dead-letter queues empty (nothing was poisoned on purpose).
    for service, process in platform.items():
        engine = make_engine(process.database_url)
        wait_for(lambda engine=engine: engine.connect().execute(
            select(func.count()).where(outbox_table.c.published_at.is_(None))).scalar() == 0,
                 timeout=60, message=f"{service}'s outbox to drain")
        engine.dispose()
    with Connection(fresh_amqp_uri) as connection:
        channel = connection.channel()
        for service in catalogue.SUBSCRIPTIONS:
            if service in urls:
                dead = channel.queue_declare(queue=f"{service}.events.dead", passive=True).message_count
                assert dead == 0, f"{service} dead-lettered {dead} messages"
