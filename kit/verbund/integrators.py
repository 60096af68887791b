"""Read-only access for integrators, and reading the event stream.

An integrator gets a RabbitMQ user of its own that may declare, bind and
read queues named ``integrator.<name>.*`` (bound to ``verbund.events``) and
read the replay stream, and nothing else: it cannot publish and cannot read
the services' queues. ``follow`` reads live events or, from a point in
time, the replay stream; ``verbund tail`` and docs/integrator_example.py use it.
"""
from __future__ import annotations

import json
import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from kombu import Connection, Consumer, Exchange, Queue, binding

from verbund import broker

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$")
# Bound to, never declared: declaring the exchange would need rights an integrator does not have.
EXISTING_EXCHANGE = Exchange(broker.events_exchange.name, type="topic", durable=True, no_declare=True)


def user_name(name: str) -> str:
    return f"integrator-{name}"


def queue_prefix(name: str) -> str:
    return f"integrator.{name}."


def permissions(name: str) -> tuple[str, str, str]:
    """configure, write, read patterns for ``rabbitmqctl set_permissions``.

    Binding a queue needs write on the queue and read on the exchange;
    publishing would need write on the exchange, which is not granted.
    """
    own = f"^{re.escape(queue_prefix(name))}.*"
    read = f"^({re.escape(broker.events_exchange.name)}|{re.escape(broker.REPLAY_STREAM)}|" \
           f"{re.escape(queue_prefix(name))}.*)$"
    return own, own, read


def create(name: str, vhost: str = "/", password: str | None = None) -> str:
    """Create (or reset) the integrator's user on the local broker node; returns its password."""
    if not NAME.match(name):
        raise ValueError("an integrator name is 2-41 lowercase letters, digits or dashes")
    password = password or secrets.token_hex(24)  # hex: a leading "-" would read as an option to rabbitmqctl
    user = user_name(name)
    existing = subprocess.run(["rabbitmqctl", "-q", "list_users"], capture_output=True, text=True, check=True)
    if user in existing.stdout.split():
        _rabbitmqctl("change_password", user, password)
    else:
        _rabbitmqctl("add_user", user, password)
    _rabbitmqctl("set_permissions", "-p", vhost, user, *permissions(name))
    return password


def _rabbitmqctl(*args: str) -> None:
    result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")


def parse_since(text: str) -> datetime:
    """An ISO time ('2026-11-21T08:00:00Z') or an age ('30m', '2h', '7d')."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def topic_matches(routing_key: str, pattern: str) -> bool:
    """AMQP topic matching: '*' stands for one word, '#' for zero or more."""
    def match(words: list[str], parts: list[str]) -> bool:
        if not parts:
            return not words
        if parts[0] == "#":
            return any(match(words[i:], parts[1:]) for i in range(len(words) + 1))
        return bool(words) and parts[0] in ("*", words[0]) and match(words[1:], parts[1:])

    return match(routing_key.split("."), pattern.split("."))


def follow(amqp_uri: str, patterns: list[str], since: datetime | None = None, queue_name: str | None = None,
           idle_timeout: float | None = None) -> Iterator[dict]:
    """Yield events as they arrive: live through a queue bound to the patterns
    (``queue_name`` for a durable one of the integrator's own, else a private
    one), or from ``since`` on through the replay stream."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        if since is not None:
            channel.basic_qos(0, 200, False)  # a stream needs a prefetch
            queue = Queue(broker.REPLAY_STREAM, no_declare=True, consumer_arguments={"x-stream-offset": since})
        else:
            bindings = [binding(EXISTING_EXCHANGE, routing_key=p) for p in patterns]
            queue = Queue(queue_name, bindings=bindings, durable=True) if queue_name else \
                Queue(f"tail.{uuid.uuid4().hex[:8]}", bindings=bindings, exclusive=True, auto_delete=True)
        received: list[dict] = []

        def on_message(message):
            event = json.loads(message.body)
            message.ack()
            # A stream starts at the chunk holding `since`: skip what is older, and filter the patterns here.
            if since is not None and (datetime.fromisoformat(event["time"].replace("Z", "+00:00")) < since
                                      or not any(topic_matches(event["type"], p) for p in patterns)):
                return
            received.append(event)

        with Consumer(channel, queues=[queue], on_message=on_message, accept=None):
            while True:
                try:
                    connection.drain_events(timeout=idle_timeout)
                except TimeoutError:
                    return
                while received:
                    yield received.pop(0)


def describe(event: dict) -> str:
    """One readable line for ``verbund tail``."""
    data = event.get("data", {})
    detail = data.get("profile", {}).get("name") or data.get("event", {}).get("title") or \
        ", ".join(f"{key}={value}" for key, value in list(data.items())[:3] if not isinstance(value, (dict, list)))
    return f"{event['time']}  {event['type']:<24} {event['subject']}  {detail}"
