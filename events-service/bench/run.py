"""Benchmark of events-service (not part of `make test`): a real service process
on SQLite and on PostgreSQL, members fed in over the broker, then a crowd of
members registering for one event at once, and the calendar feed.

    .venv/bin/python events-service/bench/run.py [--members 300] [--threads 8] [--out docs/bench/events.md]

Prints a Markdown report and writes it to --out.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import func, select, text

from verbund import envelope
from verbund.broker import Publisher
from verbund.database import make_engine
from verbund.testing import TEST_AUTH_SECRET, PostgresDatabases, ServiceProcess, Vhost, bearer, member_registered

ROOT = Path(__file__).resolve().parents[2]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_once(database: str, url: str, amqp_uri: str, workdir: Path, members: int, threads: int) -> dict:
    process = ServiceProcess("events", amqp_uri, url, workdir, env={"LOG_LEVEL": "WARNING"}).start()
    engine = make_engine(url)
    publisher = Publisher(amqp_uri)
    try:
        started = time.perf_counter()
        profiles = []
        for number in range(members):
            event = member_registered(name=f"Bench {number} {uuid.uuid4().hex[:6]} GmbH")
            publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])
            profiles.append(event["data"]["profile"])

        def known():
            with engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(text("members"))).scalar() >= members
        while not known():
            time.sleep(0.1)
        read_model_seconds = time.perf_counter() - started

        admin = bearer("admin")
        date = (envelope.utcnow() + timedelta(days=30)).date().isoformat()
        capacity = members // 2
        event = requests.post(f"{process.url}/events", headers=admin, timeout=10, json={
            "title": "Bench", "kind": "conference", "organizers": ["it-cluster"], "starts_at": f"{date}T09:00:00",
            "ends_at": f"{date}T17:00:00", "venue": {"name": "Halle"}, "capacity": capacity}).json()
        rng = random.Random(7)
        asks = [(profile, rng.choice([1, 1, 1, 2, 3])) for profile in profiles]
        latencies, statuses, lock = [], [], threading.Lock()
        queue = list(asks)
        gate = threading.Barrier(threads)

        def worker():
            session = requests.Session()
            gate.wait()
            while True:
                with lock:
                    if not queue:
                        return
                    profile, seats = queue.pop()
                headers = bearer("member", member_id=profile["id"])
                begin = time.perf_counter()
                response = session.post(f"{process.url}/events/{event['id']}/registrations", json={"seats": seats},
                                        headers=headers, timeout=60)
                elapsed = time.perf_counter() - begin
                with lock:
                    latencies.append(elapsed)
                    statuses.append((response.status_code, response.json().get("status")))

        workers = [threading.Thread(target=worker) for _ in range(threads)]
        begin = time.perf_counter()
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        wall = time.perf_counter() - begin
        shown = requests.get(f"{process.url}/events/{event['id']}", timeout=10).json()
        assert all(code == 201 for code, _ in statuses), statuses
        assert shown["seats_confirmed"] <= capacity, shown

        for number in range(100):
            requests.post(f"{process.url}/events", headers=admin, timeout=10, json={
                "title": f"Feed {number}", "kind": "meetup", "organizers": ["it-cluster"],
                "starts_at": f"{date}T18:00:00", "ends_at": f"{date}T20:00:00", "venue": {"name": "Bar"},
                "capacity": 20})
        feed_times = []
        for _ in range(10):
            begin = time.perf_counter()
            body = requests.get(f"{process.url}/calendar.ics", timeout=30).content
            feed_times.append(time.perf_counter() - begin)
        return {
            "database": database, "members": members, "threads": threads, "capacity": capacity,
            "read_model_seconds": read_model_seconds, "wall": wall, "throughput": len(latencies) / wall,
            "p50": percentile(latencies, 0.5) * 1000, "p95": percentile(latencies, 0.95) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "confirmed": sum(1 for _, s in statuses if s == "confirmed"),
            "waitlisted": sum(1 for _, s in statuses if s == "waitlisted"),
            "seats_confirmed": shown["seats_confirmed"],
            "feed_ms": statistics.median(feed_times) * 1000, "feed_kb": len(body) / 1024,
        }
    finally:
        publisher.close()
        engine.dispose()
        process.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "events.md"))
    args = parser.parse_args()
    os.environ.setdefault("AUTH_SECRET", TEST_AUTH_SECRET)
    vhost, databases = Vhost(), PostgresDatabases()
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            results.append(run_once("SQLite", f"sqlite:///{workdir / 'events.db'}", vhost.uri, workdir,
                                    args.members, args.threads))
            results.append(run_once("PostgreSQL", databases.create(), vhost.uri, workdir, args.members,
                                    args.threads))
    finally:
        databases.drop_all()
        vhost.delete()
    lines = [
        "# events-service benchmark", "",
        f"{args.members} members (1–3 seats each) register for one event of {args.members // 2} seats from "
        f"{args.threads} threads at once, over HTTP against one real service process; then the feed of 100+ "
        "events is fetched ten times.", "",
        "| database | read model filled (s) | registrations/s | p50 ms | p95 ms | p99 ms | confirmed | waitlisted "
        "| seats confirmed | feed ms | feed KiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['database']} | {r['read_model_seconds']:.1f} | {r['throughput']:.0f} | {r['p50']:.0f} | "
                     f"{r['p95']:.0f} | {r['p99']:.0f} | {r['confirmed']} | {r['waitlisted']} | "
                     f"{r['seats_confirmed']}/{r['capacity']} | {r['feed_ms']:.0f} | {r['feed_kb']:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
