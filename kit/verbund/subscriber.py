"""``@subscribe``: the nameko entrypoint through which a service consumes
domain events, with retry-with-backoff and a dead-letter queue.

nameko's own ``event_handler`` either drops a message whose handler raised
or requeues it in a hot loop. Here a failing message is acked only after it
was republished, with publisher confirms, to a delay queue (its attempt
count in a header); once the retry schedule is used up it goes to the
service's dead-letter queue with the error and the attempt count. A body
that is not a valid CloudEvent goes to the dead-letter queue at once.

A service has one subscriber: all its subscriptions share one queue, and
the handler dispatches on the event type.
"""
from __future__ import annotations

import logging
import time
from functools import partial

from kombu import Connection
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer, QueueConsumer

from verbund import broker, envelope, metrics

log = logging.getLogger(__name__)

# Events carry profiles and proposals, not files: anything bigger is refused unread.
MAX_EVENT_BYTES = 1024 * 1024
ATTEMPTS_HEADER = "x-verbund-attempts"
ERROR_HEADER = "x-verbund-error"
ROUTING_KEY_HEADER = "x-verbund-routing-key"


class RawQueueConsumer(QueueConsumer):
    """Hands the undecoded message to the entrypoint, so that a body kombu
    cannot decode is dead-lettered with its reason instead of crashing the
    consumer."""

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            consumer = consumer_cls(queues=[provider.queue],
                                    on_message=partial(self.handle_message, provider, None))
            consumer.qos(prefetch_count=self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()


class EventSubscriber(Consumer):
    queue_consumer = RawQueueConsumer()

    def __init__(self, patterns: list[str] | None = None, **kwargs):
        # patterns=None: the service's subscriptions from the catalogue.
        self.patterns = patterns
        super().__init__(queue=None, **kwargs)

    def setup(self):
        settings = self.container.config["VERBUND"]
        self.queue = broker.main_queue(settings.service, self.patterns)
        self.retry_queues = [broker.retry_queue(self.queue.name, delay) for delay in settings.retry_delays_ms]
        self.dead_queue = broker.dead_queue(self.queue.name)
        with Connection(settings.amqp_uri) as connection:
            channel = connection.default_channel
            broker.events_exchange(channel).declare()
            for queue in [self.queue, *self.retry_queues, self.dead_queue]:
                queue(channel).declare()
        self.publisher = broker.Publisher(settings.amqp_uri, subscriptions={})
        super().setup()

    def stop(self):
        super().stop()
        self.publisher.close()

    def handle_message(self, body, message):
        try:
            if len(message.body) > MAX_EVENT_BYTES:
                raise envelope.InvalidEvent(f"body of {len(message.body)} bytes is larger than {MAX_EVENT_BYTES}")
            event = envelope.loads(message.body)
        except envelope.InvalidEvent as exc:
            log.warning("dead-lettering an invalid message: %s", exc)
            self._forward(message, self.dead_queue.name, attempts=0, error=f"invalid event: {exc}")
            metrics.dead_lettered.labels(self.container.service_name, "invalid").inc()
            return
        handle_result = partial(self.handle_result, message, event["type"], time.monotonic())
        try:
            self.container.spawn_worker(self, (event,), {}, context_data={"correlation_id": event["id"]},
                                        handle_result=handle_result)
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def handle_result(self, message, event_type, started, worker_ctx, result=None, exc_info=None):
        service = self.container.service_name
        metrics.handler_seconds.labels(service, event_type).observe(time.monotonic() - started)
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            metrics.consumed.labels(service, event_type).inc()
            return result, exc_info
        metrics.failed.labels(service, event_type).inc()
        error = f"{exc_info[0].__name__}: {exc_info[1]}"[:2000]
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1
        if attempts <= len(self.retry_queues):
            target = self.retry_queues[attempts - 1].name
            log.warning("handler failed (attempt %d), retrying via %s: %s", attempts, target, error)
        else:
            target = self.dead_queue.name
            log.error("handler failed %d times, dead-lettered: %s", attempts, error)
            metrics.dead_lettered.labels(service, "exhausted").inc()
        self._forward(message, target, attempts=attempts, error=error)
        return result, exc_info

    def _forward(self, message, queue_name: str, *, attempts: int, error: str) -> None:
        """Republish to a delay or dead-letter queue, then ack; requeue if that fails."""
        headers = dict(message.headers or {})
        headers.update({ATTEMPTS_HEADER: attempts, ERROR_HEADER: error,
                        ROUTING_KEY_HEADER: headers.get(ROUTING_KEY_HEADER,
                                                        message.delivery_info.get("routing_key"))})
        try:
            self.publisher.publish(queue_name, message.body if isinstance(message.body, bytes)
                                   else str(message.body).encode("utf-8"),
                                   message_id=message.properties.get("message_id") or "",
                                   exchange="", headers=headers, mandatory=True,
                                   content_type=message.content_type or "application/octet-stream")
        except Exception:
            log.exception("could not forward a message to %s; it stays on the queue", queue_name)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)


subscribe = EventSubscriber.decorator
