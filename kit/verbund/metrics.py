"""Prometheus metrics every service exposes at GET /metrics."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

consumed = Counter("verbund_messages_consumed_total", "Events handled successfully", ["service", "type"])
failed = Counter("verbund_messages_failed_total", "Handler failures (each attempt)", ["service", "type"])
dead_lettered = Counter("verbund_messages_dead_lettered_total", "Messages sent to the dead-letter queue",
                        ["service", "reason"])
held_back = Counter("verbund_messages_held_back_total",
                    "Messages sent to wait in a delay queue while a dependency was away (attempts unspent)",
                    ["service"])
handler_seconds = Histogram("verbund_handler_seconds", "Time to handle one event", ["service", "type"],
                            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
batch_size = Histogram("verbund_consumed_batch_size", "Events handled in one transaction", ["service"],
                       buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))
batch_fallbacks = Counter("verbund_batch_fallbacks_total", "Batches rolled back and handled one by one",
                          ["service"])
published = Counter("verbund_events_published_total", "Events published from the outbox", ["service"])
outbox_backlog = Gauge("verbund_outbox_backlog", "Committed events not yet published", ["service"])


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
