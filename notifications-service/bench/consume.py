"""Micro-benchmark: CPU per consumed targeted event.

Builds a migrated store (SQLite, and PostgreSQL if asked), loads MEMBERS
recipients through ``services.on_event`` (``member.registered`` events, a few
with a digest preference, a webhook endpoint, e-mail consent withdrawn, or
erased; two integrator endpoints), then consumes realistic ``match.suggested``
events (one member, ten suggestions, as matching publishes them) and
``project.proposed`` events (three members) with ``Store.handle`` — the
inbox claim and the fan-out in one transaction, as the service does — and
reports the CPU time (``time.process_time``) per event of each type.

    .venv/bin/python notifications-service/bench/consume.py [--members 10000] [--events 300]
        [--databases sqlite,postgresql]
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from pathlib import Path

from notifications import services
from notifications.schemas import WebhookSchema
from notifications.testing import member, member_deleted, profile_of
from verbund import envelope
from verbund.auth import Principal
from verbund.testing import PostgresDatabases, migrated_store

AMQP_URI = "amqp://guest:guest@127.0.0.1:5672//"  # the relay connects only if an outbox row is written
ADMIN = Principal("admin", "admin")
SECTORS = ("automotive", "it", "logistics")


def suggestion(partner_id: str, rank: int) -> dict:
    return {"partner_id": partner_id, "partner_name": f"Partner {rank} GmbH",
            "partner_sector": SECTORS[rank % 3], "score": round(0.9 - rank * 0.03, 3), "rank": rank,
            "parts": {"need_coverage": 0.8, "offer_coverage": 0.6, "topics": 0.5, "proximity": 0.7, "sme": 1.0},
            "reasons": [
                {"kind": "need_met", "text": "bietet Batterietransport, den Sie suchen", "need": "battery transport",
                 "offer": "Batterielogistik", "term": "battery-logistics", "strength": 0.9, "match": "term"},
                {"kind": "offer_wanted", "text": "sucht Software für Rückverfolgbarkeit, die Sie anbieten",
                 "need": "traceability", "offer": "Rückverfolgung", "term": "traceability", "strength": 0.7,
                 "match": "similar"},
                {"kind": "topic", "text": "gemeinsame Themen: Wasserstoff", "topics": ["hydrogen"]},
                {"kind": "region", "text": "beide in Baden-Württemberg"},
            ]}


def match_suggested(member_id: str, partner_ids: list[str]) -> dict:
    data = {"member_id": member_id,
            "suggestions": [suggestion(p, rank) for rank, p in enumerate(partner_ids, start=1)]}
    return envelope.new_event("match.suggested", "/verbund/matching", member_id, data)


def project_proposed(member_ids: list[str]) -> dict:
    body = {"id": str(uuid.uuid4()), "version": 1, "title": "Batterielogistik Baden-Württemberg",
            "topic": "battery-value-chain", "status": "proposed",
            "members": [{"member_id": m, "name": f"Partner {i}", "sector": SECTORS[i % 3], "response": "pending"}
                        for i, m in enumerate(member_ids)],
            "score": 0.7, "explanation": [], "closed_reason": None}
    return envelope.new_event("project.proposed", "/verbund/matching", body["id"], {"project": body})


def load(store, members: int, rng: random.Random) -> list[str]:
    """Recipients through services.on_event, with some preferences, webhooks and erasures."""
    ids = []
    for n in range(members):
        event = member(sector=SECTORS[n % 3], topics=["hydrogen"], language="de" if n % 3 else "en",
                       consent_email=n % 10 != 0)
        store.handle(event, services.on_event)
        ids.append(profile_of(event)["id"])
    with store.unit_of_work() as uow:
        for member_id in rng.sample(ids, members // 10):
            services.preferences.set_preferences(uow, ADMIN, member_id, {"frequency": rng.choice(["daily", "weekly"])})
        for member_id in rng.sample(ids, members // 20):
            services.webhooks.create_webhook(uow, ADMIN, WebhookSchema().load(
                {"url": "http://127.0.0.1:9/hook", "member_id": member_id, "allow_private": True}))
        for patterns in (["event.*"], ["project.*", "member.deleted"]):
            services.webhooks.create_webhook(uow, ADMIN, WebhookSchema().load(
                {"url": "http://127.0.0.1:9/crm", "event_types": patterns, "allow_private": True}))
    for member_id in rng.sample(ids, members // 100):
        store.handle(member_deleted(member_id), services.on_event)
    return ids


def cpu_per_event(store, events: list[dict]) -> float:
    started = time.process_time()
    for event in events:
        assert store.handle(event, services.on_event)
    return (time.process_time() - started) * 1000 / len(events)


def run(database_url: str, members: int, count: int) -> dict:
    rng = random.Random(7)
    with migrated_store("notifications", database_url, AMQP_URI) as store:
        started = time.monotonic()
        ids = load(store, members, rng)
        print(f"  loaded {members} members in {time.monotonic() - started:.0f} s", flush=True)
        suggestions = [match_suggested(m, rng.sample(ids, 10)) for m in rng.sample(ids, count)]
        projects = [project_proposed(rng.sample(ids, 3)) for _ in range(count // 3)]
        cpu_per_event(store, suggestions[:20])  # warm up: statement caches, connection pool
        return {"match.suggested": cpu_per_event(store, suggestions[20:]),
                "project.proposed": cpu_per_event(store, projects)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--databases", default="sqlite")
    args = parser.parse_args()
    for database in args.databases.split(","):
        print(f"{database}: {args.members} members", flush=True)
        if database == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                results = run(f"sqlite:///{Path(folder) / 'bench.db'}", args.members, args.events)
        else:
            databases = PostgresDatabases()
            try:
                results = run(databases.create(), args.members, args.events)
            finally:
                databases.drop_all()
        for type_, ms in results.items():
            print(f"  {type_:18} {ms:6.2f} ms CPU per event", flush=True)


if __name__ == "__main__":
    main()
