"""Benchmark of the whole platform (``make bench``; not part of ``make test``).

Starts members-, events-, matching-, notifications- and meetings-service as real
processes (``verbund run``), each on its own SQLite file (or, with ``--database
postgresql``, its own PostgreSQL database, and then ``--instances`` processes of a
service as competing consumers), in a throw-away RabbitMQ vhost, with a mail
catcher for the e-mails, and measures:

* the floor: a bare publish-with-confirm and consume round trip through the
  same RabbitMQ with kombu (one message at a time: latency; a burst: rate);
* end to end, with N members already in the system: members registered over
  HTTP (``POST /members``) at rising offered load, each step for a fixed
  time, until the pipeline saturates. For each step the offered and achieved
  rate and the latency from the HTTP request to the new member's first
  ``match.suggested`` entry in its notifications-service inbox (the row's
  ``created_at`` in that service's database), p50/p95/p99; that every
  registered member got its entry; where the time of one registration goes
  (each hop, from the services' outbox and inbox timestamps) and how much
  CPU each process spent per registration;
* a profile (py-spy) of every service at the saturating load;
* imports of ``--import-sizes`` members (e.g. 1,000, 10,000, 50,000) through
  ``POST /members/import`` into a fresh platform per consumer batch size
  (``--import-batch-sizes``), timed until every service has settled, with the CPU
  each service spent per member.

Writes docs/bench/platform.md and docs/bench/platform.png.

    .venv/bin/python bench/platform.py [--members 10000] [--rates 10,25,50,...] [--step-seconds 15] [--quick]
        [--import-only] [--import-sizes 1000,10000] [--import-batch-sizes 1,50] [--announce-window 10]
        [--database postgresql] [--instances matching=2,notifications=2]
"""
from __future__ import annotations

import os
import sys

# This file is called platform.py: without this, its own folder on sys.path would shadow the
# standard library's ``platform`` for every library that imports it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform as host  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "bench" / "platform.md"
PLOT = ROOT / "docs" / "bench" / "platform.png"
SERVICES = ("members", "events", "matching", "notifications", "meetings")  # every consumer of member.*
TARGET_RATE = 200  # registrations/s sustained through the whole pipeline, 10,000 members preloaded
TARGET_IMPORT_S = 60  # until a 10,000-member import has settled everywhere
TARGET_P99_MS = 250  # from request to inbox, at half of TARGET_RATE
SATURATED = 0.9  # a step whose end-to-end rate falls below this share of the offered rate is saturated
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- small helpers ---------------------------------------------------------------------------------

def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(values_s: list[float]) -> dict:
    return {name: (None if percentile(values_s, q) is None else percentile(values_s, q) * 1000)
            for name, q in (("p50", 50), ("p95", 95), ("p99", 99))}


def db_time(text: str | None) -> float | None:
    """A timestamp column as SQLAlchemy writes it to SQLite (UTC wall time) -> epoch seconds."""
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def rabbitmq_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"beam.smp" in (entry / "cmdline").read_bytes() and b"rabbit" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    return None


def machine_facts() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), host.processor())
    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    rabbit = subprocess.run(["rabbitmqctl", "-q", "version"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("rabbitmqctl") else "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": memory, "python": host.python_version(),
            "system": f"{host.system()} {host.release()}", "rabbitmq": rabbit or "?",
            "sqlite": sqlite3.sqlite_version, "load_start": os.getloadavg()}


# --- the floor -------------------------------------------------------------------------------------

def measure_floor(amqp_uri: str, body: bytes, singles: int, burst: int) -> dict:
    """Publish with confirms to a durable quorum queue (as the services' queues are) through the default
    exchange and consume with a prefetch of 10 (as the services do), in the same RabbitMQ."""
    from kombu import Connection, Consumer, Producer, Queue

    from verbund import outbox
    from verbund.broker import Outgoing, Publisher

    queue = Queue(f"bench.floor.{uuid.uuid4().hex[:6]}", durable=True, queue_arguments={"x-queue-type": "quorum"})
    arrived: dict[str, float] = {}
    got = threading.Condition()
    stop = threading.Event()

    def consume():
        with Connection(amqp_uri) as connection:
            channel = connection.channel()

            def on_message(message):
                now = time.perf_counter()
                message.ack()
                with got:
                    arrived[message.properties["message_id"]] = now
                    got.notify_all()

            with Consumer(channel, queues=[queue], callbacks=[], on_message=on_message, prefetch_count=10):
                while not stop.is_set():
                    try:
                        connection.drain_events(timeout=0.2)
                    except TimeoutError:
                        continue

    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel())
        queue(producer.channel).declare()
        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        time.sleep(0.5)

        def publish(message_id: str) -> None:
            producer.publish(body, exchange="", routing_key=queue.name, serializer=None, delivery_mode=2,
                             content_type="application/cloudevents+json", content_encoding="utf-8",
                             message_id=message_id)

        for n in range(50):  # warm up the connections
            publish(f"warm-{n}")
        with got:
            got.wait_for(lambda: len(arrived) >= 50, timeout=30)
        round_trips, confirms = [], []
        for n in range(singles):  # one at a time: the latency of one hop
            message_id = f"single-{n}"
            started = time.perf_counter()
            publish(message_id)
            confirms.append(time.perf_counter() - started)
            with got:
                got.wait_for(lambda message_id=message_id: message_id in arrived, timeout=30)
            round_trips.append(arrived[message_id] - started)
        ids = [f"burst-{n}" for n in range(burst)]
        started = time.perf_counter()
        for message_id in ids:  # back to back, each confirmed before the next, as the outbox relay does
            publish(message_id)
        published = time.perf_counter()
        with got:
            got.wait_for(lambda: all(message_id in arrived for message_id in ids), timeout=120)
        last = max(arrived[message_id] for message_id in ids)
        # The same burst as the outbox relay now sends it: the kit's publisher, 100 messages, then their confirms.
        batched_ids = [f"batched-{n}" for n in range(burst)]
        publisher = Publisher(amqp_uri)
        batched_started = time.perf_counter()
        for start in range(0, burst, outbox.PUBLISH_CHUNK):
            publisher.publish_many([Outgoing(queue.name, body, message_id, exchange="")
                                    for message_id in batched_ids[start:start + outbox.PUBLISH_CHUNK]])
        batched_published = time.perf_counter()
        publisher.close()
        with got:
            got.wait_for(lambda: all(message_id in arrived for message_id in batched_ids), timeout=120)
        batched_last = max(arrived[message_id] for message_id in batched_ids)
        stop.set()
        consumer.join(timeout=5)
        queue(producer.channel).delete()
    return {"singles": singles, "burst": burst, "body_bytes": len(body), "round_trip": summary_ms(round_trips),
            "confirm": summary_ms(confirms), "single_burst_rate": burst / (last - started),
            "single_publish_rate": burst / (published - started),
            "burst_rate": burst / (batched_last - batched_started),
            "publish_rate": burst / (batched_published - batched_started)}


# --- the platform as processes ---------------------------------------------------------------------

class Platform:
    """The five services as real processes on one machine: ``instances`` of each (competing consumers of
    the service's queue, on one database), each service on its own SQLite file or, with ``databases``
    (``verbund.testing.PostgresDatabases``), its own PostgreSQL database."""

    def __init__(self, workdir: Path, amqp_uri: str, env: dict | None = None, databases=None,
                 instances: dict[str, int] | None = None):
        from sqlalchemy import create_engine

        from notifications.testing import MailCatcher
        from verbund.database import make_engine
        from verbund.testing import ServiceProcess

        self.workdir = workdir
        self.amqp_uri = amqp_uri
        self.mail = MailCatcher(workdir / "mail")
        # The embedded defaults of production (not the tests' short retry delays and sweep).
        env = {"RETRY_DELAYS_MS": "1000,5000,30000", "OUTBOX_SWEEP_SECONDS": "5", "LOG_LEVEL": "INFO",
               "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.mail.port), **(env or {})}
        self.database_urls = {service: databases.create() if databases else f"sqlite:///{workdir / (service + '.db')}"
                              for service in SERVICES}
        # Read side of the benchmark: SQLite files opened read-only, PostgreSQL as the services open it.
        self.readers = {service: create_engine(url.replace("sqlite:///", "sqlite:///file:") + "?mode=ro&uri=true")
                        if url.startswith("sqlite") else make_engine(url)
                        for service, url in self.database_urls.items()}
        self.postgres = databases is not None
        self.processes = {service: [ServiceProcess(service, amqp_uri, self.database_urls[service], workdir, env)
                                    for _ in range((instances or {}).get(service, 1))] for service in SERVICES}
        self.urls = {service: processes[0].url for service, processes in self.processes.items()}
        self.rabbitmq = rabbitmq_pid()

    def start(self, *services: str, timeout: float = 120) -> None:
        for service in services:
            for process in self.processes[service]:
                process.start(timeout=timeout)

    def stop(self) -> None:
        for processes in self.processes.values():
            for process in processes:
                process.stop()
        for reader in self.readers.values():
            reader.dispose()
        if self.mail.process.poll() is None:
            self.mail.process.terminate()
            self.mail.process.wait(timeout=10)

    def running(self) -> list[str]:
        return [s for s, processes in self.processes.items()
                if any(p.process and p.process.poll() is None for p in processes)]

    def query(self, service: str, sql: str, params=()) -> list[tuple]:
        """Rows of ``sql`` in a service's database; ``?`` marks the parameters on both databases."""
        with self.readers[service].connect() as connection:
            cursor = connection.connection.cursor()
            cursor.execute(sql.replace("?", "%s") if self.postgres else sql, tuple(params))
            return [tuple(row) for row in cursor.fetchall()]

    def pids(self) -> dict[str, list[int]]:
        pids = {service: [p.process.pid for p in processes if p.process and p.process.poll() is None]
                for service, processes in self.processes.items()}
        pids = {service: found for service, found in pids.items() if found}
        if self.rabbitmq:
            pids["rabbitmq"] = [self.rabbitmq]
        pids["load generator (this script)"] = [os.getpid()]
        return pids

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far, summed over each service's instances."""
        return {name: sum(cpu_seconds(pid) for pid in found) for name, found in self.pids().items()}

    def queue_depths(self) -> dict[str, int]:
        """Ready messages in every subscriber queue (unacknowledged ones are not counted)."""
        from kombu import Connection
        from kombu.exceptions import OperationalError

        from verbund import catalogue

        depths = {}
        try:
            with Connection(self.amqp_uri, connect_timeout=5) as connection:
                channel = connection.channel()
                for service in catalogue.SUBSCRIPTIONS:
                    try:
                        depths[service] = channel.queue_declare(f"{service}.events", passive=True).message_count
                    except Exception:  # not declared yet
                        channel = connection.channel()
                        depths[service] = 0
        except (OSError, OperationalError) as exc:  # the broker restarts (other work on this machine)
            log(f"  RabbitMQ not reachable ({exc}); waiting")
            return {"broker unreachable": 1}
        return depths

    def outbox_backlog(self) -> int:
        return sum(self.query(s, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0]
                   for s in self.running())

    def consumed(self) -> int:
        """Events consumed so far by every running service (from their inbox tables)."""
        return sum(self.query(s, "SELECT count(*) FROM inbox")[0][0] for s in self.running() if s != "members")

    def held_back(self) -> int:
        """Suggestion lists matching-service holds back for its announcement window (pending_announcements)."""
        if "matching" not in self.running():
            return 0
        return self.query("matching", "SELECT count(*) FROM pending_announcements")[0][0]

    def settle(self, quiet_seconds: float, timeout: float, what: str) -> float:
        """Wait until no queue holds a message, no outbox an unpublished event, matching holds back no
        list, and nothing was consumed for ``quiet_seconds``; return how long it took."""
        started = time.monotonic()
        last, quiet_since = None, time.monotonic()
        while True:
            state = (sum(self.queue_depths().values()), self.outbox_backlog() + self.held_back(), self.consumed())
            if state != last or state[0] or state[1]:
                quiet_since = time.monotonic()
                last = state
            if time.monotonic() - quiet_since >= quiet_seconds:
                return time.monotonic() - started - quiet_seconds
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{what}: the platform did not settle within {timeout:.0f}s: "
                                   f"queued {state[0]}, outboxes {state[1]}")
            time.sleep(1)


# --- members ---------------------------------------------------------------------------------------

CSV_COLUMNS = ("name", "sector", "associations", "state", "postcode", "city", "employees", "contact_name",
               "contact_email", "language", "offers", "needs", "topics", "suggest_as_partner", "email_consent")


def registration(profile: dict) -> dict:
    """A synthetic profile (matching.synthetic) as the body of POST /members."""
    def items(entries):
        return [{"term": e["term"]} if e["term"] else {"label": e["label"]} for e in entries]

    return {"name": profile["name"], "sector": profile["sector"], "associations": profile["associations"],
            "region": profile["region"], "size": {"employees": profile["size"]["employees"]},
            "contact": profile["contact"], "offers": items(profile["offers"]), "needs": items(profile["needs"]),
            "topics": profile["topics"], "consent": profile["consent"]}


def csv_chunk(profiles: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for p in profiles:
        writer.writerow([p["name"], p["sector"], ";".join(p["associations"]), p["region"]["state"],
                         p["region"]["postcode"], p["region"]["city"], p["size"]["employees"], p["contact"]["name"],
                         p["contact"]["email"], p["contact"]["language"], ";".join(o["label"] for o in p["offers"]),
                         ";".join(n["label"] for n in p["needs"]), ";".join(p["topics"]),
                         "yes" if p["consent"]["suggest_as_partner"] else "no",
                         "yes" if p["consent"]["email"] else "no"])
    return out.getvalue().encode("utf-8")


def preload(platform: Platform, count: int, admin: dict, email: bool, chunk: int = 1000) -> dict:
    """N members in members-service through POST /members/import (CSV, 1,000 rows a file); matching-service
    starts afterwards and fills its read model from members-service (its rebuild over RPC), as a newly
    deployed matching-service does; events- and notifications-service consume the member.registered
    events. Waits until everything is processed."""
    from matching.synthetic import ProfileFactory

    factory = ProfileFactory(seed=11)
    started = time.monotonic()
    imported = 0
    for first in range(0, count, chunk):
        profiles = factory.profiles(min(chunk, count - first))
        for profile in profiles:
            profile["consent"]["email"] = email
        response = requests.post(f"{platform.urls['members']}/members/import", data=csv_chunk(profiles),
                                 headers={**admin, "Content-Type": "text/csv"}, timeout=300)
        response.raise_for_status()
        report = response.json()
        if report["errors"]:
            raise RuntimeError(f"import refused rows: {report['errors'][:3]}")
        imported += len(report["imported"])
    import_seconds = time.monotonic() - started
    log(f"imported {imported} members in {import_seconds:.1f}s; starting matching-service")
    # Its rebuild runs in the service's one OS thread: it answers slowly until it is done.
    platform.start("matching", timeout=1800)
    prober = Prober(f"{platform.urls['matching']}/health")
    settle_seconds = platform.settle(quiet_seconds=5, timeout=1800, what="loading the members")
    health = prober.stop()
    total = time.monotonic() - started
    counts = {
        "members": platform.query("members", "SELECT count(*) FROM members WHERE deleted_at IS NULL")[0][0],
        "matching": platform.query("matching", "SELECT count(*) FROM member_profiles WHERE NOT deleted")[0][0],
        "notifications": platform.query("notifications", "SELECT count(*) FROM recipients WHERE NOT deleted")[0][0],
        "events": platform.query("events", "SELECT count(*) FROM members")[0][0],
        "match.suggested inbox entries": platform.query(
            "notifications", "SELECT count(*) FROM notifications WHERE source_type = 'match.suggested'")[0][0],
    }
    log(f"loaded in {total:.0f}s: {counts}")
    return {"count": imported, "import_seconds": import_seconds, "settle_seconds": settle_seconds,
            "total_seconds": total, "counts": counts,
            "matching_health_s": {"max": max(health, default=0), "p50": percentile(health, 50) or 0,
                                  "probes": len(health)}}


def measure_import(workdir: Path, amqp_uri: str, count: int, batch_size: int, admin: dict, databases=None,
                   instances: dict[str, int] | None = None, window: float | None = None) -> dict:
    """A fresh platform (all five services running, consuming in batches of ``batch_size``, ``instances``
    of each, on SQLite or the ``databases``): ``count`` members imported through POST /members/import
    (1,000 rows a file), timed until every service has consumed everything (no queue, no outbox backlog,
    nothing consumed for 3 s), with the CPU seconds each service spent per imported member. ``window``:
    matching's ANNOUNCE_WINDOW_SECONDS (None: the service's default)."""
    from matching.synthetic import ProfileFactory

    folder = workdir / (f"import-{count}-batch-{batch_size}" + ("" if window is None else f"-window-{window:g}"))
    folder.mkdir()
    env = {"CONSUME_BATCH_SIZE": str(batch_size)}
    if window is not None:
        env["ANNOUNCE_WINDOW_SECONDS"] = str(window)
    platform = Platform(folder, amqp_uri, env=env, databases=databases, instances=instances)
    try:
        platform.start(*SERVICES, timeout=1800)  # matching loads its embedding model first
        factory = ProfileFactory(seed=41)
        files = [csv_chunk(factory.profiles(min(1000, count - first))) for first in range(0, count, 1000)]
        cpu_before = platform.cpu()
        started = time.monotonic()
        for body in files:
            response = requests.post(f"{platform.urls['members']}/members/import", data=body,
                                     headers={**admin, "Content-Type": "text/csv"}, timeout=600)
            response.raise_for_status()
        imported_s = time.monotonic() - started
        settle_s = platform.settle(quiet_seconds=3, timeout=3600, what=f"importing with batches of {batch_size}")
        total_s = time.monotonic() - started - 3
        cpu_after = platform.cpu()
        cpu = {name: (cpu_after[name] - cpu_before.get(name, 0)) / count * 1000 for name in cpu_after
               if name in cpu_before}
        consumed = {s: platform.query(s, "SELECT count(*) FROM inbox")[0][0] for s in SERVICES if s != "members"}
        suggested = platform.query("notifications", "SELECT count(*) FROM inbox WHERE type = 'match.suggested'")[0][0]
        proposed = platform.query("notifications", "SELECT count(*) FROM inbox WHERE type = 'project.proposed'")[0][0]
        result = {"batch_size": batch_size, "members": count, "import_s": imported_s, "settled_s": total_s,
                  "database": "postgresql" if databases else "sqlite", "instances": dict(instances or {}),
                  "after_import_s": settle_s, "cpu_ms_per_member": cpu, "consumed": consumed,
                  "match_suggested": suggested, "project_proposed": proposed, "window": window}
        log(f"import of {count} with batches of {batch_size}: HTTP {imported_s:.1f}s, settled after {total_s:.1f}s, "
            f"consumed {consumed}, CPU ms/member " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
        return result
    finally:
        platform.stop()


class Prober:
    """Asks a service GET /health every ``interval`` seconds in the background, as a load balancer
    would, and keeps how long each answer took."""

    def __init__(self, url: str, interval: float = 2.0):
        self.url, self.interval = url, interval
        self.durations: list[float] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopped.is_set():
            started = time.monotonic()
            try:
                requests.get(self.url, timeout=300)
            except requests.RequestException:
                pass
            self.durations.append(time.monotonic() - started)
            self.stopped.wait(self.interval)

    def stop(self) -> list[float]:
        self.stopped.set()
        self.thread.join(timeout=310)
        return self.durations


# --- one step of offered load ----------------------------------------------------------------------

class LoadGenerator:
    """Open loop: request i is due at t0 + i/rate; a pool of threads sends them (one HTTP
    keep-alive session each) and records when each really went out and came back."""

    def __init__(self, url: str, workers: int):
        self.url = url
        self.workers = workers
        self.local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def run(self, bodies: list[bytes], rate: float) -> list[dict]:
        t0 = time.time() + 0.5
        results: list[dict] = [{} for _ in bodies]

        def send(i: int) -> None:
            due = t0 + i / rate
            if due > time.time():
                time.sleep(due - time.time())
            sent = time.time()
            try:
                response = self.session().post(self.url, data=bodies[i], timeout=120,
                                                headers={"Content-Type": "application/json"})
                status, member_id = response.status_code, (response.json().get("id")
                                                           if response.status_code == 201 else None)
            except requests.RequestException as exc:
                status, member_id = type(exc).__name__, None
            results[i] = {"due": due, "sent": sent, "answered": time.time(), "status": status, "id": member_id}

        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(send, range(len(bodies))))
        return results


def inbox_entries_after(platform: Platform, first_id: int) -> dict[str, tuple[str, float]]:
    """member id -> (source event id, created_at) of its first match.suggested entry with id > first_id."""
    rows = platform.query("notifications", "SELECT member_id, source_event_id, created_at, id FROM notifications "
                          "WHERE id > ? AND source_type = 'match.suggested' ORDER BY id", (first_id,))
    first: dict[str, tuple[str, float]] = {}
    for member_id, event_id, created_at, _ in rows:
        first.setdefault(member_id, (event_id, db_time(created_at)))
    return first


def first_written(platform: Platform, members: list[str]) -> dict[str, float]:
    """member id -> when notifications-service first wrote the member's suggestions entry: the earliest
    ``processed_at`` of a consumed ``match.suggested`` about the member's own list. The entry's own
    ``created_at`` is no witness for this: a newer list within ``COALESCE_SECONDS`` renews the unread
    entry and dates it anew (the member saw it since the first)."""
    about: dict[str, str] = {}
    for first in range(0, len(members), 500):
        chunk = members[first:first + 500]
        about.update(platform.query("matching", "SELECT event_id, subject FROM outbox WHERE type = 'match.suggested' "
                                    f"AND subject IN ({','.join('?' * len(chunk))})", chunk))
    written: dict[str, float] = {}
    events = list(about)
    for first in range(0, len(events), 500):
        chunk = events[first:first + 500]
        for event_id, processed_at in platform.query(
                "notifications", f"SELECT event_id, processed_at FROM inbox WHERE event_id IN "
                f"({','.join('?' * len(chunk))})", chunk):
            member_id, moment = about[event_id], db_time(processed_at)
            written[member_id] = min(written.get(member_id, moment), moment)
    return written


def matching_announced(platform: Platform) -> Counter:
    return Counter(dict(platform.query("matching", "SELECT type, count(*) FROM outbox GROUP BY type")))


def idle_cpu(platform: Platform, seconds: float) -> dict[str, float]:
    """CPU each process burns with no load (timers, heartbeats, polling), in ms per second."""
    before, started = platform.cpu(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = platform.cpu(), time.monotonic() - started
    return {name: (after[name] - before.get(name, 0)) * 1000 / elapsed for name in after}


def run_step(platform: Platform, generator: LoadGenerator, bodies: list[bytes], rate: float, admin: dict,
             drain_timeout: float, idle: dict[str, float]) -> dict:
    last_entry = platform.query("notifications", "SELECT coalesce(max(id), 0) FROM notifications")[0][0]
    announced_before = matching_announced(platform)
    cpu_before, busy_before, wall_before = platform.cpu(), machine_busy(), time.monotonic()
    results = generator.run(bodies, rate)
    sent_all = time.time()
    created = {r["id"]: r for r in results if r["id"]}
    # Wait until every new member has its entry, or the platform has gone quiet without it.
    deadline = time.monotonic() + drain_timeout
    while True:
        entries = inbox_entries_after(platform, last_entry)
        if all(member_id in entries for member_id in created):
            break
        if time.monotonic() > deadline:
            log(f"  {sum(m not in entries for m in created)} of {len(created)} without an inbox entry after "
                f"{drain_timeout:.0f}s")
            break
        if not sum(platform.queue_depths().values()) and not platform.outbox_backlog():
            try:
                platform.settle(quiet_seconds=3, timeout=30, what="the step")
                break
            except RuntimeError:
                pass
        time.sleep(1)
    # Then the rest of what the step set off (the other members' lists, proposals), so that the CPU
    # counted below is all the step's work.
    try:
        platform.settle(quiet_seconds=2, timeout=drain_timeout, what="the step's fan-out")
    except RuntimeError as exc:
        log(f"  {exc}")
    cpu_after, busy_after, wall = platform.cpu(), machine_busy(), time.monotonic() - wall_before
    entries = inbox_entries_after(platform, last_entry)
    announced = matching_announced(platform) - announced_before
    new_entries = platform.query("notifications", "SELECT count(*) FROM notifications WHERE id > ?",
                                 (last_entry,))[0][0]
    delivered = {m: entries[m] for m in created if m in entries}
    written = first_written(platform, list(delivered))
    delivered = {m: (event_id, min(at, written.get(m, at))) for m, (event_id, at) in delivered.items()}
    latencies = [delivered[m][1] - created[m]["sent"] for m in delivered]
    http_times = [r["answered"] - r["sent"] for r in results]
    late = [r["sent"] - r["due"] for r in results]
    first_sent = min(r["sent"] for r in results)
    last_answer = max(r["answered"] for r in results)
    last_delivery = max((entry[1] for entry in delivered.values()), default=first_sent)
    # Members without an entry: did matching have nobody to suggest (nothing to tell), or was it lost?
    nobody_to_suggest, lost = [], []
    for member_id in created:
        if member_id in delivered:
            continue
        answer = requests.get(f"{platform.urls['matching']}/members/{member_id}/suggestions", headers=admin,
                              timeout=30)
        if answer.status_code == 200 and not answer.json()["suggestions"]:
            nobody_to_suggest.append(member_id)
        else:
            lost.append(member_id)
    duration = len(bodies) / rate
    step = {
        "offered": rate, "seconds": duration, "requests": len(bodies),
        "statuses": dict(Counter(str(r["status"]) for r in results)),
        "created": len(created), "delivered": len(delivered), "nobody_to_suggest": len(nobody_to_suggest),
        "lost": len(lost), "lost_ids": lost[:5],
        "http_rate": len(created) / (last_answer - first_sent),
        "e2e_rate": len(delivered) / (last_delivery - first_sent) if delivered else 0.0,
        "latency": summary_ms(latencies), "latency_mean_ms": statistics.fmean(latencies) * 1000 if latencies else None,
        "http": summary_ms(http_times), "late_p99_ms": percentile(late, 99) * 1000,
        "drain_seconds": max(0.0, last_delivery - sent_all),
        "cpu_ms_per_registration": {name: (cpu_after[name] - cpu_before.get(name, 0)) * 1000 / max(1, len(created))
                                    for name in cpu_after},
        # The same without what the process burns when idle (timers, polling) over the step's duration.
        "cpu_net_ms_per_registration": {
            name: max(0.0, (cpu_after[name] - cpu_before.get(name, 0)) * 1000 - idle.get(name, 0) * wall)
            / max(1, len(created)) for name in cpu_after},
        "step_wall_seconds": wall,
        "fanout": {"match.suggested": announced["match.suggested"] / max(1, len(created)),
                   "project.*": sum(v for k, v in announced.items() if k.startswith("project.")) / max(1, len(created)),
                   "inbox entries": new_entries / max(1, len(created))},
        "machine_busy": (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1]),
        "stages": stages(platform, {m: created[m] for m in delivered}, delivered),
        "latencies": latencies,
    }
    step["saturated"] = step["e2e_rate"] < SATURATED * rate or step["lost"] > 0
    return step


def stages(platform: Platform, created: dict[str, dict], delivered: dict[str, tuple[str, float]]) -> dict:
    """Where one registration's time goes, from the timestamps the services wrote: medians in ms."""
    if not created:
        return {}
    ids = list(created)
    marks: dict[str, dict[str, float]] = defaultdict(dict)

    def rows(service: str, sql: str, values: list[str]):
        for first in range(0, len(values), 500):
            chunk = values[first:first + 500]
            yield from platform.query(service, sql.format(marks=",".join("?" * len(chunk))), chunk)

    registered = {}
    for subject, event_id, created_at, published_at in rows(
            "members", "SELECT subject, event_id, created_at, published_at FROM outbox "
                       "WHERE type = 'member.registered' AND subject IN ({marks})", ids):
        registered[event_id] = subject
        marks[subject]["committed"] = db_time(created_at)
        marks[subject]["published"] = db_time(published_at)
    for event_id, processed_at in rows("matching", "SELECT event_id, processed_at FROM inbox "
                                                   "WHERE event_id IN ({marks})", list(registered)):
        marks[registered[event_id]]["matching_claimed"] = db_time(processed_at)
    suggested = {entry[0]: member_id for member_id, entry in delivered.items()}
    for event_id, created_at, published_at in rows("matching", "SELECT event_id, created_at, published_at "
                                                               "FROM outbox WHERE event_id IN ({marks})",
                                                   list(suggested)):
        marks[suggested[event_id]]["suggested"] = db_time(created_at)
        marks[suggested[event_id]]["suggested_published"] = db_time(published_at)
    for event_id, processed_at in rows("notifications", "SELECT event_id, processed_at FROM inbox "
                                                        "WHERE event_id IN ({marks})", list(suggested)):
        marks[suggested[event_id]]["notifications_claimed"] = db_time(processed_at)
    for member_id, (_, at) in delivered.items():
        marks[member_id]["inbox"] = at
        marks[member_id]["sent"] = created[member_id]["sent"]
        marks[member_id]["answered"] = created[member_id]["answered"]
    hops = (("HTTP request → members commit (outbox row)", "sent", "committed"),
            ("commit → HTTP response received", "committed", "answered"),
            ("commit → member.registered confirmed by broker (members relay)", "committed", "published"),
            ("published → matching claims it (queue wait, decode, validate)", "published", "matching_claimed"),
            ("matching: claim → match.suggested in outbox (read model, engine, lists, proposals)",
             "matching_claimed", "suggested"),
            ("matching: outbox → confirmed by broker (commit, relay)", "suggested", "suggested_published"),
            ("published → notifications claims it (queue wait, decode, validate)", "suggested_published",
             "notifications_claimed"),
            ("notifications: claim → inbox entry", "notifications_claimed", "inbox"))
    result = {}
    for name, start, end in hops:
        values = [m[end] - m[start] for m in marks.values() if m.get(start) and m.get(end)]
        result[name] = {"p50": (percentile(values, 50) or 0) * 1000, "p95": (percentile(values, 95) or 0) * 1000}
    return result


def validation_cost(platform: Platform, samples: int = 200) -> dict:
    """What parsing, validating (JSON Schema) and serialising one event costs, on real events from the
    outboxes, measured in this process while the platform is idle."""
    from verbund import envelope

    result = {}
    for service, type_ in (("members", "member.registered"), ("matching", "match.suggested"),
                           ("matching", "project.proposed")):
        bodies = [row[0] for row in platform.query(
            service, "SELECT body FROM outbox WHERE type = ? ORDER BY seq DESC LIMIT ?", (type_, samples))]
        if not bodies:
            continue
        events = [json.loads(body) for body in bodies]
        envelope.validate(events[0])  # the validator is built once per process, as in a running service

        def timed(work, items) -> float:
            """The best of three rounds: the machine is shared."""
            rounds = []
            for _ in range(3):
                started = time.perf_counter()
                for item in items:
                    work(item)
                rounds.append((time.perf_counter() - started) * 1000 / len(items))
            return min(rounds)

        result[type_] = {"bytes": statistics.fmean(len(body.encode()) for body in bodies),
                         "parse_ms": timed(json.loads, bodies), "validate_ms": timed(envelope.validate, events),
                         "dumps_ms": timed(envelope.dumps, events)}
    return result


# --- profiling -------------------------------------------------------------------------------------

def package_of(filename: str, function: str = "") -> str:
    """A frame's file (and function) as the part of the system it belongs to."""
    path = filename.replace("\\", "/")
    for service in SERVICES:
        if f"/{service}-service/{service}/" in path or path.startswith(f"{service}/"):
            return f"{service}-service code"
    if "/kit/verbund/" in path or path.startswith("verbund/"):
        return "verbund kit code"
    if "sqlalchemy/engine/default.py" in path and function.startswith("do_"):
        return "SQLite (statements and commits, in C)"
    match = re.search(r"(?:site-packages/)?([A-Za-z0-9_]+)/", path.split("site-packages/")[-1])
    if "site-packages/" in path and match:
        return match.group(1)
    match = re.search(r"python3\.\d+/([A-Za-z0-9_]+)", path)
    if match:
        return f"stdlib {match.group(1)}"
    match = re.match(r"([A-Za-z0-9_]+)/", path)
    return match.group(1) if match else (Path(path).name or "?")


def is_own_code(package: str) -> bool:
    return package.endswith("-service code") or package == "verbund kit code"


def profile_services(platform: Platform, rate: float, bodies: list[bytes], generator: LoadGenerator) -> dict:
    """py-spy (sampling at 100 Hz) on every service process while a step of load runs and until the
    platform has processed all of it. py-spy pauses a process for each sample (its non-blocking mode
    cuts the deep stacks of JSON Schema validation off), so this runs after the measured steps."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return {"error": "py-spy is not installed"}
    recorders = {}
    for service in SERVICES:
        out = platform.workdir / f"profile-{service}.txt"
        recorders[service] = (out, subprocess.Popen(
            [py_spy, "record", "--full-filenames", "--format", "raw", "--rate", "100",
             "--pid", str(platform.processes[service][0].process.pid), "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    time.sleep(1)
    generator.run(bodies, rate)
    platform.settle(quiet_seconds=2, timeout=600, what="profiling")
    profiles = {}
    for service, (out, recorder) in recorders.items():
        recorder.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
        _, error = recorder.communicate(timeout=60)
        if not out.exists():
            profiles[service] = {"error": error.decode(errors="replace")[-300:]}
            continue
        profiles[service] = summarise_profile(out.read_text(errors="replace"))
    return profiles


FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def summarise_profile(raw: str) -> dict:
    """Collapsed stacks -> where the CPU is: by the package of the leaf frame, and by the deepest
    function of the service's or the kit's own code on the stack together with that package."""
    by_package: Counter = Counter()
    by_function: Counter = Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [match for match in (FRAME.match(frame) for frame in stack.split(";")) if match]
        if not frames:
            continue
        count = int(count)
        if frames[-1]["function"].endswith("do_poll") and "eventlet/hubs" in frames[-1]["file"]:
            idle += count  # the event loop waiting in epoll: not CPU, though py-spy samples it
            continue
        total += count
        leaf = package_of(frames[-1]["file"], frames[-1]["function"])
        by_package[leaf] += count
        own = next((f for f in reversed(frames) if is_own_code(package_of(f["file"]))), None)
        if own:
            where = f"{Path(own['file']).parent.name}/{Path(own['file']).name}: {own['function']}"
        elif leaf in ("jsonschema", "referencing"):
            where = "verbund/envelope.py: validate (stack cut off)"  # the one caller of jsonschema
        else:
            where = "(outside our code)"
        by_function[f"`{where}` → {leaf}"] += count
    return {"samples": total, "idle_samples": idle, "by_package": by_package.most_common(10),
            "by_function": by_function.most_common(12)}


# --- report ----------------------------------------------------------------------------------------

def fmt(value, digits=0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def write_plot(floor: dict, steps: list[dict], cores: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offered = [s["offered"] for s in steps]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    left.plot(offered, offered, "k:", label="offered")
    left.plot(offered, [s["http_rate"] for s in steps], "o-", label="accepted over HTTP")
    left.plot(offered, [s["e2e_rate"] for s in steps], "s-", label="through to the inbox")
    left.axhline(TARGET_RATE, color="red", linestyle="--", linewidth=1, label=f"target {TARGET_RATE}/s")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("offered registrations/s")
    left.set_ylabel("registrations/s")
    left.set_title("Throughput")
    left.legend(fontsize=8)
    for name, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        middle.plot(offered, [s["latency"][name] for s in steps], style, label=f"request → inbox {name}")
    middle.axhline(TARGET_P99_MS, color="red", linestyle="--", linewidth=1, label=f"target p99 {TARGET_P99_MS} ms")
    middle.axhline(floor["round_trip"]["p99"], color="grey", linestyle=":", linewidth=1,
                   label="floor: one broker round trip p99")
    middle.set_xscale("log")
    middle.set_yscale("log")
    middle.set_xlabel("offered registrations/s")
    middle.set_ylabel("ms")
    middle.set_title("Latency from the HTTP request to the inbox entry")
    middle.legend(fontsize=8)
    names = [n for n in steps[0]["cpu_net_ms_per_registration"]]
    bottom = [0.0] * len(steps)
    labels = [f"{o:g}/s" for o in offered]
    for name in names:
        values = [s["cpu_net_ms_per_registration"].get(name, 0) for s in steps]
        right.bar(labels, values, bottom=bottom, label=name.replace(" (this script)", ""))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    budget = 1000 * cores / TARGET_RATE
    right.axhline(budget, color="red", linestyle="--", linewidth=1,
                  label=f"all {TARGET_RATE}/s allows on {cores} cores: {budget:.0f} ms")
    right.set_xlabel("offered registrations/s")
    right.set_ylabel("ms CPU per registration (net of idle)")
    right.set_title("CPU per registration, by process")
    right.legend(fontsize=8, loc="upper left", framealpha=0.9)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)


def write_report(args, facts: dict, floor: dict, loaded: dict, idle: dict, steps: list[dict], validation: dict,
                 profile: dict | None, profile_rate: float | None) -> None:
    lines: list[str] = []
    add = lines.append
    good = [s for s in steps if not s["saturated"]]
    best = max(steps, key=lambda s: s["e2e_rate"])
    sustained = max((s["e2e_rate"] for s in good), default=0.0)
    half = next((s for s in steps if s["offered"] >= TARGET_RATE / 2), None)
    add("# Platform benchmark: registrations through the whole pipeline")
    add("")
    add(f"Generated by `bench/platform.py` (`make bench`) on {facts['finished']}"
        f"{' with --quick' if args.quick else ''}; the whole run took {facts['run_seconds'] / 60:.1f} min.")
    add("")
    add("## Machine")
    add("")
    add(f"{facts['cores']} cores ({facts['cpu']}), {facts['memory_mib']:,} MiB, {facts['system']}, "
        f"Python {facts['python']}, RabbitMQ {facts['rabbitmq']}, SQLite {facts['sqlite']}. "
        f"Load average {facts['load_start'][0]:.2f} at the start, {facts['load_end'][0]:.2f} at the end: "
        "the machine is shared, other work runs on the same two cores, so every figure below also "
        "carries that noise (hence the ratios to the floor, measured in the same run).")
    add("")
    add("## Method")
    add("")
    add("- All five services run as real processes (`verbund run <service>`, eventlet, `MAX_WORKERS=10`, "
        "production defaults for retries and the outbox sweep, `LOG_LEVEL=INFO`), each on its own SQLite file, "
        "in a throw-away RabbitMQ vhost (quorum queues, publisher confirms, the replay stream), with the mail "
        "catcher as SMTP server. The load generator runs on the same machine: its CPU is counted below.")
    add(f"- **Members already in the system: {loaded['count']:,}**, synthetic (`matching.synthetic`: sector-typical "
        "offers, cross-sector needs, 85% consent to partner suggestions, all to e-mail), imported into "
        "members-service with `POST /members/import` (CSV, 1,000 rows per file). matching-service starts after "
        "the import and fills its read model from members-service over RPC (its rebuild), announcing every "
        "member's suggestions; events- and notifications-service build theirs from the `member.registered` "
        f"events. Import {loaded['import_seconds']:.0f} s, everything processed after {loaded['total_seconds']:.0f} s. "
        "Read models afterwards: " + ", ".join(f"{k} {v:,}" for k, v in loaded["counts"].items()) + ". "
        "While matching-service rebuilt and caught up, `GET /health` every 2 s "
        f"({loaded['matching_health_s']['probes']} probes) took up to "
        f"{loaded['matching_health_s']['max']:.1f} s to answer (median "
        f"{loaded['matching_health_s']['p50']:.2f} s): the rebuild runs in the service's one OS thread.")
    add(f"- **Steps**: new members (other synthetic profiles, all consenting to partner suggestions) registered "
        f"with `POST /members` at a fixed offered rate for {args.step_seconds:.0f} s each (open loop: request i is "
        f"due at i/rate; {args.workers} client threads with keep-alive sessions), rising until the rate reaching "
        f"the inbox falls below {SATURATED:.0%} of the offered rate. After each step the script waits until every "
        "new member has its entry or the platform has gone quiet.")
    add("- **Latency**: from the moment the HTTP request was sent to the moment notifications-service first "
        "wrote the new member's `match.suggested` entry (the earliest `processed_at` in its inbox of a "
        "`match.suggested` about the member's own list; read from its database; same clock). The entry's own "
        "`created_at` would not do: a newer list within `COALESCE_SECONDS` renews an unread entry and dates it "
        "anew. **Achieved**: members whose entry arrived, divided by the time from the first request to "
        "the last entry; over HTTP: members created divided by the time from the first request to the last "
        "answer.")
    add("- **Nothing lost**: each member created over HTTP must have its entry; a member without one is asked "
        "of matching-service (`GET /members/{id}/suggestions`): an empty list means there was nobody to suggest "
        "(nothing to tell), anything else counts as lost.")
    add("- **Where the time goes**: the hops of each registration from the timestamps the services write "
        "(members' outbox `created_at`/`published_at`, matching's inbox `processed_at` and outbox, "
        "notifications' inbox and entry), the CPU each process spent per registration (`/proc/<pid>/stat`), "
        "and a py-spy profile of every service at the saturating rate.")
    add("")
    add("## The floor: RabbitMQ alone")
    add("")
    add(f"kombu, a durable quorum queue, persistent messages of {floor['body_bytes']:,} bytes (a real "
        "`member.registered` event), publisher confirms, a consumer with prefetch 10 in another connection.")
    add("")
    add("| measure | p50 | p95 | p99 |")
    add("|---|---:|---:|---:|")
    add(f"| publish → confirmed (one at a time, {floor['singles']:,} messages) | "
        + " | ".join(f"{floor['confirm'][q]:.2f} ms" for q in ("p50", "p95", "p99")) + " |")
    add("| publish → consumed: one broker round trip | "
        + " | ".join(f"{floor['round_trip'][q]:.2f} ms" for q in ("p50", "p95", "p99")) + " |")
    add("")
    add(f"Burst of {floor['burst']:,} messages as the outbox relay publishes them (the kit's publisher: "
        "100 messages, then one wait for their confirms): "
        f"**{floor['burst_rate']:,.0f} messages/s** end to end ({floor['publish_rate']:,.0f}/s published)."
        + (f" Each confirmed before the next: {floor['single_burst_rate']:,.0f} messages/s."
           if "single_burst_rate" in floor else ""))
    add("")
    add("## End to end: registration over HTTP → suggestions → inbox")
    add("")
    add("| offered /s | requests | created | accepted over HTTP /s | through to the inbox /s | latency p50 | p95 | p99 "
        "| HTTP p50 / p99 | entries | nobody to suggest | lost | saturated |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|")
    for s in steps:
        add(f"| {s['offered']:g} | {s['requests']:,} | {s['created']:,} | {s['http_rate']:.1f} | {s['e2e_rate']:.1f} | "
            f"{fmt(s['latency']['p50'])} ms | {fmt(s['latency']['p95'])} ms | {fmt(s['latency']['p99'])} ms | "
            f"{fmt(s['http']['p50'])} / {fmt(s['http']['p99'])} ms | {s['delivered']:,} | {s['nobody_to_suggest']} | "
            f"{s['lost']} | {'yes' if s['saturated'] else 'no'} |")
    add("")
    other = {k for s in steps for k in s["statuses"] if k != "201"}
    if other:
        add("HTTP answers other than 201: " + "; ".join(
            f"{s['offered']:g}/s: " + ", ".join(f"{k}×{v}" for k, v in s["statuses"].items() if k != "201")
            for s in steps if set(s["statuses"]) - {"201"}) + ".")
        add("")
    add("![platform benchmark](platform.png)")
    add("")
    add("### As ratios to the floor")
    add("")
    add("| offered /s | through to the inbox ÷ floor burst rate | latency p50 ÷ floor round trip p50 "
        "| p99 ÷ floor p99 |")
    add("|---:|---:|---:|---:|")
    for s in steps:
        add(f"| {s['offered']:g} | {s['e2e_rate'] / floor['burst_rate']:.3f} "
            f"| {fmt(s['latency']['p50'] and s['latency']['p50'] / floor['round_trip']['p50'], 0)}× "
            f"| {fmt(s['latency']['p99'] and s['latency']['p99'] / floor['round_trip']['p99'], 0)}× |")
    add("")
    add("A registration crosses the broker twice on its way (`member.registered` to matching-service, "
        "`match.suggested` to notifications-service): two floor round trips are the least it could take.")
    add("")
    heavy = max(steps, key=lambda s: s["created"])
    per_registration = 1 + heavy["fanout"]["match.suggested"] + heavy["fanout"]["project.*"]
    add(f"But one registration sends not one event through the broker: at {heavy['offered']:g}/s it sent "
        f"{per_registration:.1f} (`member.registered`, {heavy['fanout']['match.suggested']:.1f} `match.suggested`, "
        f"{heavy['fanout']['project.*']:.1f} `project.*`), published by the outbox relays in "
        f"confirmed batches. At the floor's burst rate ({floor['burst_rate']:,.0f} confirmed messages/s) the broker "
        "alone, "
        f"with no service doing any work, would carry at most {floor['burst_rate'] / per_registration:,.0f} "
        f"registrations/s; {TARGET_RATE}/s would need {TARGET_RATE * per_registration:,.0f} confirmed "
        f"messages/s, {TARGET_RATE * per_registration / floor['burst_rate']:.0f}× the floor.")
    add("")
    add("## Targets")
    add("")
    add("| target | measured | met |")
    add("|---|---:|:-:|")
    add(f"| ≥ {TARGET_RATE} registrations/s sustained through the whole pipeline, nothing lost | "
        f"{sustained:.1f}/s (highest unsaturated step; best seen {best['e2e_rate']:.1f}/s at {best['offered']:g}/s "
        f"offered) | {'yes' if sustained >= TARGET_RATE else 'no'} |")
    if half is not None:
        met = (not half["saturated"]) and half["latency"]["p99"] is not None and half["latency"]["p99"] < TARGET_P99_MS
        add(f"| p99 request → inbox < {TARGET_P99_MS} ms at {TARGET_RATE // 2}/s | {fmt(half['latency']['p99'])} ms at "
            f"{half['offered']:g}/s offered ({half['e2e_rate']:.1f}/s achieved) | {'yes' if met else 'no'} |")
    else:
        add(f"| p99 request → inbox < {TARGET_P99_MS} ms at {TARGET_RATE // 2}/s | not reached: the pipeline "
            f"saturated below {TARGET_RATE // 2}/s | no |")
    light = steps[0]
    add(f"| (for comparison) p99 at the lightest load, {light['offered']:g}/s | {fmt(light['latency']['p99'])} ms | "
        f"{'yes' if light['latency']['p99'] and light['latency']['p99'] < TARGET_P99_MS else 'no'} |")
    add("")
    add("## Where the time goes")
    add("")
    add("### The hops of one registration (p50 / p95, ms)")
    add("")
    add("| hop | " + " | ".join(f"{s['offered']:g}/s" for s in steps) + " |")
    add("|---|" + "---:|" * len(steps))
    for hop in (steps[0]["stages"] or {}):
        add(f"| {hop} | " + " | ".join(
            f"{s['stages'][hop]['p50']:.0f} / {s['stages'][hop]['p95']:.0f}" if s["stages"] else "–"
            for s in steps) + " |")
    add("")
    add("An event counts as published when its relay marked it so in the outbox, after the broker confirmed "
        "it (per chunk of up to 100): a consumer can claim it before that, hence the values at or below 0. "
        "The matching hop \"outbox → confirmed\" also holds the rest of the handler after the lists "
        "(proposals) and its commit.")
    add("")
    add("### What one registration sets off (per member registered)")
    add("")
    add("| offered /s | match.suggested published | project.* published | inbox entries written |")
    add("|---:|---:|---:|---:|")
    for s in steps:
        add(f"| {s['offered']:g} | {s['fanout']['match.suggested']:.1f} | {s['fanout']['project.*']:.1f} "
            f"| {s['fanout']['inbox entries']:.1f} |")
    add("")
    add("A new member enters the suggestion lists of others: each list that changed is stored and announced "
        "(`match.suggested`, the whole explained list), and proposals are made around the member and around "
        "those who have a new partner; every announcement becomes an inbox entry.")
    add("")
    add("### CPU time per registration (ms; from `/proc/<pid>/stat`)")
    add("")
    add("Raw: all CPU the process used from the first request of the step until its last entry, divided by the "
        "members registered; net: minus what the process burns when idle (timers, polling; measured for 10 s "
        "before the steps) over the same time.")
    add("")
    names = list(steps[0]["cpu_ms_per_registration"])
    add("| process | idle, ms CPU per s | " + " | ".join(f"{s['offered']:g}/s raw / net" for s in steps) + " |")
    add("|---|---:|" + "---:|" * len(steps))
    for name in names:
        add(f"| {name} | {idle.get(name, 0):.0f} | " + " | ".join(
            f"{s['cpu_ms_per_registration'].get(name, 0):.1f} / {s['cpu_net_ms_per_registration'].get(name, 0):.1f}"
            for s in steps) + " |")
    add("| **sum** | " + f"{sum(idle.values()):.0f} | " + " | ".join(
        f"**{sum(s['cpu_ms_per_registration'].values()):.0f} / {sum(s['cpu_net_ms_per_registration'].values()):.0f}**"
        for s in steps) + " |")
    add("| machine busy (every process on it, both cores) | | " + " | ".join(f"{s['machine_busy']:.0%}" for s in steps)
        + " |")
    add("")
    ref = max(steps, key=lambda s: s["created"])
    platform_cpu = {k: v for k, v in ref["cpu_net_ms_per_registration"].items()
                    if k != "load generator (this script)"}
    total_cpu = sum(platform_cpu.values())
    if total_cpu:
        ceiling = 1000 * (facts["cores"] or 2) / total_cpu
        heaviest = sorted(platform_cpu.items(), key=lambda kv: -kv[1])
        add(f"At {ref['offered']:g}/s the platform spends {total_cpu:.0f} ms of CPU (net) per registration: "
            + ", ".join(f"{k} {v:.0f} ms ({v / total_cpu:.0%})" for k, v in heaviest)
            + f". With {facts['cores']} cores and nothing else running, that alone caps the pipeline at about "
            f"{ceiling:.0f} registrations/s, and one service process uses one core at most (eventlet: one OS "
            f"thread), so {heaviest[0][0]} alone caps it at about {1000 / heaviest[0][1]:.0f}/s. {TARGET_RATE}/s "
            f"would need {1000 * facts['cores'] / TARGET_RATE:.1f} ms per registration in total.")
        add("")
    if validation:
        add("### One event: parse, validate against its JSON Schema, serialise")
        add("")
        add("Measured in the benchmark's process on real events from the outboxes (the last 200 of each type, "
            "best of three rounds), with the platform idle.")
        add("")
        add("| event | size | `json.loads` | `envelope.validate` | `envelope.dumps` |")
        add("|---|---:|---:|---:|---:|")
        for type_, cost in validation.items():
            add(f"| `{type_}` | {cost['bytes']:,.0f} B | {cost['parse_ms']:.2f} ms | {cost['validate_ms']:.2f} ms | "
                f"{cost['dumps_ms']:.2f} ms |")
        add("")
        fan = ref["fanout"]
        suggested = validation.get("match.suggested", {}).get("validate_ms", 0)
        project = validation.get("project.proposed", {}).get("validate_ms", 0)
        registered = validation.get("member.registered", {}).get("validate_ms", 0)
        # matching validates each event it announces twice (envelope.new_event, then outbox.add) and each
        # member event it consumes once; notifications validates each event it consumes once.
        in_matching = 2 * (fan["match.suggested"] * suggested + fan["project.*"] * project) + registered
        in_notifications = fan["match.suggested"] * suggested + fan["project.*"] * project + registered
        cpu = ref["cpu_net_ms_per_registration"]
        add(f"Per registration at {ref['offered']:g}/s ({fan['match.suggested']:.1f} `match.suggested` and "
            f"{fan['project.*']:.1f} `project.*` each): matching-service validates every event it announces twice "
            "(`envelope.new_event` validates, then `outbox.add` again) and the member event it consumes once: about "
            f"{in_matching:.0f} ms of its {cpu.get('matching', 0):.0f} ms; notifications-service validates every "
            f"event it consumes once: about {in_notifications:.0f} ms of its {cpu.get('notifications', 0):.0f} ms.")
        add("")
    if profile:
        add(f"### Profile of each service at {profile_rate:g}/s offered (py-spy, 100 Hz)")
        add("")
        for service, data in profile.items():
            if "error" in data:
                add(f"- {service}: not profiled ({data['error']})")
                continue
            add(f"**{service}-service**, {data['samples']:,} samples on CPU ({data.get('idle_samples', 0):,} more "
                "in eventlet's wait for I/O, left out).")
            add("")
            add("| where the CPU is (leaf frame's package) | share |")
            add("|---|---:|")
            for package, count in data["by_package"][:8]:
                add(f"| {package} | {count / max(1, data['samples']):.0%} |")
            add("")
            add("| deepest service or kit function on the stack → where the CPU is | share |")
            add("|---|---:|")
            for function, count in data["by_function"][:12]:
                add(f"| {function} | {count / max(1, data['samples']):.0%} |")
            add("")
    # The import sections (write_import_section) of earlier runs stay, before the notes.
    earlier = REPORT.read_text() if REPORT.exists() else ""
    for section in re.findall(r"<!-- import-batches-[\w-]+ -->.*?<!-- /import-batches-[\w-]+ -->", earlier, re.S):
        add(section)
        add("")
    if args.notes and Path(args.notes).exists():
        add(Path(args.notes).read_text().strip())
        add("")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")


def render(args, result: dict) -> None:
    write_report(args, result["facts"], result["floor"], result["loaded"], result["idle"], result["steps"],
                 result["validation"], result["profile"], result["profile_rate"])
    write_plot(result["floor"], result["steps"], result["facts"]["cores"] or 2)


# --- main ------------------------------------------------------------------------------------------

IMPORT_BEGIN, IMPORT_END = "<!-- import-batches -->", "<!-- /import-batches -->"


def write_import_section(facts: dict, floor: dict, imports: list[dict]) -> None:
    """The import timings (``measure_import``) as a section of the report, between its markers
    (replaced on every run, kept when the rest of the report is written again)."""
    if not imports:
        return
    # One section per import size and set-up, so that the 1,000-, 10,000- and 50,000-member runs stand
    # side by side.
    first = imports[0]
    several = {service: n for service, n in first.get("instances", {}).items() if n > 1}
    label = f"{first['members']}-{first.get('database', 'sqlite')}" + "".join(f"-{s}{n}" for s, n in several.items())
    window = first.get("window")
    if window is not None:
        label += f"-window{window:g}"
    begin, end = (marker.replace(" -->", f"-{label} -->") for marker in (IMPORT_BEGIN, IMPORT_END))
    floor_rate = floor["burst_rate"]
    setup = first.get("database", "sqlite") + "".join(f", {n} instances of {s}" for s, n in several.items())
    if window is not None:
        setup += f", matching's ANNOUNCE_WINDOW_SECONDS {window:g}"
    lines = [begin, "", f"## An import of {first['members']:,} members ({setup})", "",
             f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {facts.get('cores', '?')} cores "
             f"(load average {facts.get('load_start', (0,))[0]:.1f} before): a fresh platform (the five services, "
             f"{setup}, this broker) per batch size; the members imported through `POST /members/import` "
             "(1,000 rows a file) while every service runs; *settled*: no queue holds a message, no outbox an "
             "event, matching holds no list back, and nothing was consumed for 3 s. The floor: a bare kombu publish-and-consume of "
             f"the same events, {floor_rate:,.0f} messages/s in a burst.", "",
             "| CONSUME_BATCH_SIZE | HTTP import | settled everywhere | events consumed | consumed/s | "
             "share of the floor's rate | time vs size 1 |", "|---|---|---|---|---|---|---|"]
    base = imports[0]["settled_s"]
    for run in imports:
        events = sum(run["consumed"].values())
        rate = events / run["settled_s"] if run["settled_s"] else 0
        lines.append(f"| {run['batch_size']} | {run['import_s']:.1f} s | {run['settled_s']:.1f} s | {events:,} | "
                     f"{rate:,.0f} | {rate / floor_rate:.2%} | {run['settled_s'] / base:.2f}× |")
    if first["members"] == 10_000:
        best = min(run["settled_s"] for run in imports)
        lines += ["", f"Target: a 10,000-member import settled everywhere within {TARGET_IMPORT_S} s: best "
                  f"{best:.0f} s, {'met' if best <= TARGET_IMPORT_S else 'not met'}."]
    lines += ["", "CPU per imported member, ms, by process:", "",
              "| CONSUME_BATCH_SIZE | " + " | ".join(imports[0]["cpu_ms_per_member"]) + " |",
              "|---|" + "---|" * len(imports[0]["cpu_ms_per_member"])]
    for run in imports:
        lines.append(f"| {run['batch_size']} | " + " | ".join(f"{v:.1f}" for v in run["cpu_ms_per_member"].values())
                     + " |")
    lines += ["", "Per imported member (notifications' inbox): " + "; ".join(
        f"size {run['batch_size']}: {run['match_suggested'] / run['members']:.2f} `match.suggested`, "
        f"{run.get('project_proposed', 0) / run['members']:.2f} `project.proposed`" for run in imports)]
    lines += ["", "Events consumed per service: " + "; ".join(
        f"size {run['batch_size']}: " + ", ".join(f"{k} {v:,}" for k, v in run["consumed"].items())
        for run in imports), "", end]
    section = "\n".join(lines)
    text = REPORT.read_text() if REPORT.exists() else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    REPORT.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000, help="members already in the system")
    parser.add_argument("--rates", default="1,2,3,4,6,10,25,50,100,250,500,1000",
                        help="offered registrations/s, a step each, until the pipeline saturates")
    parser.add_argument("--step-seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=64, help="client threads")
    parser.add_argument("--drain-timeout", type=float, default=150, help="longest wait for a step's backlog")
    parser.add_argument("--floor-singles", type=int, default=2000)
    parser.add_argument("--floor-burst", type=int, default=5000)
    parser.add_argument("--profile-seconds", type=float, default=12, help="0: no profile")
    parser.add_argument("--quick", action="store_true", help="1,000 members, three short steps")
    parser.add_argument("--import-batch-sizes", default="1,50",
                        help="consumer batch sizes (CONSUME_BATCH_SIZE) to time an import of --members with")
    parser.add_argument("--import-sizes", default="",
                        help="member counts to time an import of (default: --members), e.g. 1000,10000,50000")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="each service on its own SQLite file (the embedded default) or PostgreSQL database")
    parser.add_argument("--instances", default="",
                        help="processes per service, e.g. matching=2,notifications=2 (needs --database postgresql)")
    parser.add_argument("--announce-window", type=float, default=None,
                        help="matching's ANNOUNCE_WINDOW_SECONDS for the imports (default: the service's own)")
    parser.add_argument("--import-only", action="store_true",
                        help="only the floor and the import timings (a section of the report)")
    parser.add_argument("--notes", default=str(Path(__file__).with_name("platform-notes.md")),
                        help="a Markdown file appended to the report (the analysis of a run)")
    parser.add_argument("--email", action="store_true",
                        help="members consent to e-mail (the mail channel then adds its paced sending to the load)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (with result.json) and vhost")
    parser.add_argument("--from-json", metavar="RESULT_JSON",
                        help="only write the report and plot again, from the result.json of a kept run")
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        vars(args).update(result["args"])
        for service in SERVICES:  # the raw profiles kept next to it (--keep) are summarised afresh
            raw = Path(args.from_json).with_name(f"profile-{service}.txt")
            if raw.exists():
                result["profile"][service] = summarise_profile(raw.read_text(errors="replace"))
        render(args, result)
        return 0
    if args.quick:
        args.members, args.rates, args.step_seconds = min(args.members, 1000), "1,2,4", 8
        args.floor_singles, args.floor_burst, args.profile_seconds = 500, 1000, 6
    rates = [float(r) for r in args.rates.split(",")]
    instances = {name: int(n) for name, n in (part.split("=") for part in args.instances.split(",") if part)}
    if any(n > 1 for n in instances.values()) and args.database != "postgresql":
        parser.error("several instances of a service share its database: use --database postgresql")
    import_sizes = [int(n) for n in args.import_sizes.split(",") if n] or [args.members]

    from verbund import envelope
    from verbund.testing import TEST_AUTH_SECRET, PostgresDatabases, Vhost, bearer, member_registered

    os.environ.setdefault("AUTH_SECRET", TEST_AUTH_SECRET)
    admin = bearer("admin")
    begun = time.monotonic()
    facts = machine_facts()
    vhost = Vhost()
    workdir = Path(tempfile.mkdtemp(prefix="verbund-bench-"))
    platform = None
    databases = PostgresDatabases() if args.database == "postgresql" else None
    try:
        log(f"vhost {vhost.uri}, working folder {workdir}")
        floor = measure_floor(vhost.uri, envelope.dumps(member_registered()), args.floor_singles, args.floor_burst)
        log(f"floor: round trip p50 {floor['round_trip']['p50']:.2f} ms p99 {floor['round_trip']['p99']:.2f} ms, "
            f"burst {floor['burst_rate']:.0f}/s")
        for count in import_sizes:
            imports = []
            for size in [int(n) for n in args.import_batch_sizes.split(",") if n]:
                import_vhost = Vhost()  # each import starts from empty queues
                try:
                    imports.append(measure_import(workdir, import_vhost.uri, count, size, admin, databases, instances,
                                                  args.announce_window))
                finally:
                    import_vhost.delete()
            write_import_section(facts, floor, imports)
        if args.import_only:
            log(f"import section of {REPORT.relative_to(ROOT)} written")
            return 0
        platform = Platform(workdir, vhost.uri, databases=databases, instances=instances)
        platform.start("members", "events", "notifications", "meetings")
        loaded = preload(platform, args.members, admin, args.email)

        from matching.synthetic import ProfileFactory

        factory = ProfileFactory(seed=29)

        def bodies(count: int) -> list[bytes]:
            out = []
            for _ in range(count):
                profile = factory.profile()
                profile["consent"]["suggest_as_partner"] = True
                profile["consent"]["email"] = args.email
                out.append(json.dumps(registration(profile)).encode())
            return out

        generator = LoadGenerator(f"{platform.urls['members']}/members", args.workers)
        idle = idle_cpu(platform, 10)
        log("idle CPU, ms/s: " + ", ".join(f"{k} {v:.0f}" for k, v in idle.items()))
        steps = []
        for rate in rates:
            log(f"step: {rate:g} registrations/s for {args.step_seconds:g}s")
            step = run_step(platform, generator, bodies(int(rate * args.step_seconds)), rate, admin,
                            args.drain_timeout, idle)
            steps.append(step)
            log(f"  HTTP {step['http_rate']:.1f}/s, inbox {step['e2e_rate']:.1f}/s, latency p50 "
                f"{fmt(step['latency']['p50'])} p99 {fmt(step['latency']['p99'])} ms, delivered "
                f"{step['delivered']}/{step['created']}, lost {step['lost']}, statuses {step['statuses']}")
            if step["saturated"]:
                break
        profile, profile_rate = None, None
        if args.profile_seconds > 0:
            profile_rate = steps[-1]["offered"]
            log(f"profiling every service at {profile_rate:g}/s for {args.profile_seconds:g}s")
            profile = profile_services(platform, profile_rate, bodies(int(profile_rate * args.profile_seconds)),
                                       generator)
        validation = validation_cost(platform)
        facts.update(load_end=os.getloadavg(), finished=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                     run_seconds=time.monotonic() - begun)
        result = {"args": {"quick": args.quick, "step_seconds": args.step_seconds, "workers": args.workers},
                  "facts": facts, "floor": floor, "loaded": loaded, "idle": idle, "steps": steps,
                  "validation": validation, "profile": profile, "profile_rate": profile_rate}
        (workdir / "result.json").write_text(json.dumps(result, indent=1))
        render(args, result)
        log(f"report: {REPORT.relative_to(ROOT)}, plot: {PLOT.relative_to(ROOT)}, raw: {workdir / 'result.json'}")
        return 0
    finally:
        if platform is not None:
            platform.stop()
        if not args.keep:
            vhost.delete()
            shutil.rmtree(workdir, ignore_errors=True)
            if databases:
                databases.drop_all()


if __name__ == "__main__":
    sys.exit(main())
