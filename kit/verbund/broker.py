"""RabbitMQ topology and a confirming publisher.

Topology: one durable topic exchange ``verbund.events``; per consuming
service a durable queue ``<service>.events`` bound to the patterns of its
subscriptions; per delay of its retry schedule a queue
``<service>.events.retry.<ms>ms`` whose messages return to the main queue
when their time is up; and a dead-letter queue ``<service>.events.dead``.

The exchange and the main queues are declared by every publisher before its
first publish, so an event sent before its consumer ever started waits in
the consumer's queue instead of being dropped.
"""
from __future__ import annotations

import logging
import threading
from typing import NamedTuple

import amqp
from kombu import Connection, Exchange, Queue, binding

from verbund import catalogue
from verbund.settings import env
from verbund.topics import topic_matches  # noqa: F401  (the broker's routing rule)

log = logging.getLogger(__name__)

events_exchange = Exchange(catalogue.EXCHANGE, type="topic", durable=True)


def queue_type() -> str:
    # One value for every declarer: a queue redeclared with other arguments is refused.
    return env("VERBUND_QUEUE_TYPE", "quorum")


def main_queue(service: str, patterns: list[str] | None = None) -> Queue:
    patterns = catalogue.SUBSCRIPTIONS.get(service, []) if patterns is None else patterns
    return Queue(
        f"{service}.events",
        bindings=[binding(events_exchange, routing_key=pattern) for pattern in patterns],
        durable=True,
        queue_arguments={"x-queue-type": queue_type()},
    )


def retry_queue(main: str, delay_ms: int) -> Queue:
    # Messages wait here for delay_ms, then the broker dead-letters them back
    # to the main queue through the default exchange.
    return Queue(
        f"{main}.retry.{delay_ms}ms",
        durable=True,
        queue_arguments={
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": main,
        },
    )


def dead_queue(main: str) -> Queue:
    return Queue(f"{main}.dead", durable=True, queue_arguments={"x-queue-type": queue_type()})


REPLAY_STREAM = "verbund.replay"


def replay_stream() -> Queue:
    """A RabbitMQ stream holding every event for a while: a new integrator reads
    it from a point in time to catch up (consumer argument ``x-stream-offset``)."""
    return Queue(REPLAY_STREAM, bindings=[binding(events_exchange, routing_key="#")], durable=True,
                 queue_arguments={"x-queue-type": "stream",
                                  "x-max-age": env("VERBUND_REPLAY_MAX_AGE", "7D")})


def declare_topology(connection: Connection, subscriptions: dict[str, list[str]] | None = None) -> None:
    """Declare the exchange, the replay stream and every subscriber's main queue with its bindings."""
    subscriptions = catalogue.SUBSCRIPTIONS if subscriptions is None else subscriptions
    channel = connection.default_channel
    events_exchange(channel).declare()
    replay_stream()(channel).declare()
    for service, patterns in subscriptions.items():
        main_queue(service, patterns)(channel).declare()


def definitions(retry_delays_ms: tuple[int, ...], vhost: str = "/") -> dict:
    """The topology as a RabbitMQ definitions document (infra/rabbitmq/definitions.json),
    generated from the same functions the services declare with, so the two cannot drift."""
    queues, bindings = [], []

    def add(queue: Queue) -> None:
        queues.append({"name": queue.name, "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": dict(queue.queue_arguments or {})})
        for bound in sorted(queue.bindings, key=lambda b: b.routing_key):  # kombu keeps them in a set
            bindings.append({"source": bound.exchange.name, "vhost": vhost, "destination": queue.name,
                             "destination_type": "queue", "routing_key": bound.routing_key, "arguments": {}})

    add(replay_stream())
    for service in catalogue.SUBSCRIPTIONS:
        main = main_queue(service)
        add(main)
        for delay in retry_delays_ms:
            add(retry_queue(main.name, delay))
        add(dead_queue(main.name))
    return {
        "exchanges": [{"name": events_exchange.name, "vhost": vhost, "type": "topic", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "queues": queues,
        "bindings": bindings,
    }


class Outgoing(NamedTuple):
    """One message for ``Publisher.publish_many``."""
    routing_key: str
    body: bytes
    message_id: str
    exchange: str | None = None  # None: verbund.events
    headers: dict | None = None
    content_type: str = "application/cloudevents+json"
    mandatory: bool = False  # fail if no queue takes it


class Publisher:
    """Publishes CloudEvents to ``verbund.events`` with publisher confirms.

    One long-lived connection, reconnected on failure; ``publish`` and
    ``publish_many`` return only after the broker confirmed every message, and
    raise otherwise. ``publish_many`` sends a whole batch before it waits for
    the confirms: one round trip for the batch instead of one per message.
    Safe to share between green threads: calls are serialised.
    """

    CONFIRM_TIMEOUT = 30.0  # seconds to wait for the broker's confirms

    def __init__(self, amqp_uri: str, subscriptions: dict[str, list[str]] | None = None):
        self.amqp_uri = amqp_uri
        self.subscriptions = subscriptions
        self._connection: Connection | None = None
        self._channel = None
        self._sent = 0  # delivery tags: the broker numbers the messages of a confirm channel from 1
        self._unconfirmed: set[int] = set()
        self._nacked: int | None = None
        self._lock = threading.Lock()

    def _ensure(self):
        if self._channel is None:
            connection = Connection(self.amqp_uri, connect_timeout=5)
            connection.ensure_connection(max_retries=1, interval_start=0.2, interval_step=0.5, interval_max=1)
            declare_topology(connection, self.subscriptions)
            channel = connection.default_channel
            channel.confirm_select()
            # Listeners, not a wait for the next ack: py-amqp also reads frames inside basic_publish
            # (to notice connection.blocked), and an ack read there reaches only these.
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self._connection, self._channel, self._sent, self._unconfirmed = connection, channel, 0, set()
            self._nacked = None
        return self._channel

    def publish(self, routing_key: str, body: bytes, *, message_id: str, exchange: str | None = None,
                headers: dict | None = None, content_type: str = "application/cloudevents+json",
                mandatory: bool = False) -> None:
        """Publish and wait for the broker's confirm. ``mandatory``: fail if no queue takes it."""
        self.publish_many([Outgoing(routing_key, body, message_id, exchange, headers, content_type, mandatory)])

    def publish_many(self, messages: list[Outgoing]) -> None:
        """Publish in this order, then wait until the broker confirmed them all."""
        with self._lock:
            try:
                channel = self._ensure()
                for message in messages:
                    channel.basic_publish(
                        amqp.Message(message.body, content_type=message.content_type, content_encoding="utf-8",
                                     delivery_mode=2, message_id=message.message_id, type=message.routing_key,
                                     application_headers=message.headers or {}),
                        exchange=events_exchange.name if message.exchange is None else message.exchange,
                        routing_key=message.routing_key, mandatory=message.mandatory)
                    self._sent += 1
                    self._unconfirmed.add(self._sent)
                # A message no queue takes, published mandatory, comes back as basic.return before its
                # confirm; py-amqp raises it from this wait.
                while self._unconfirmed and self._nacked is None:
                    channel.connection.drain_events(timeout=self.CONFIRM_TIMEOUT)
                if self._nacked is not None:
                    raise amqp.exceptions.MessageNacked(f"the broker refused message {self._nacked}")
            except Exception:
                self.close()  # start afresh on the next call
                raise

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked = delivery_tag

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # the connection is already broken; nothing to release
                log.debug("closing a broken AMQP connection failed", exc_info=True)
