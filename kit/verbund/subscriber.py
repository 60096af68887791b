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

Batch consumption (``CONSUME_BATCH_SIZE``, 50 by default; 1 handles one event per
transaction, ``MAX_WORKERS`` at a time; the fault suite passes with both): the
subscriber takes up to that many messages (waiting ``CONSUME_BATCH_LINGER_MS``
for more after the first), claims them in the inbox with one statement, runs
the handler for each in one transaction (``Database.batch``: a per-event
handler's ``db.handle`` and units of work join it), writes the events they
emitted with one outbox statement, commits, and acks the batch once. One batch
at a time, in delivery order, so the events of one subject stay in order. If
any handler fails, the batch is rolled back and its messages handled again one
by one, each in its own transaction, so that only the failing one goes to
retry and dead letter, with its reason. A handler may take the batch itself
(``@subscribe(batch=True)``: it gets a list of events and uses
``db.handle_batch``). Size 1 is consumption as before batching: each message
its own worker, ``max_workers`` at a time.

An outage is not the message's fault (``verbund.outages``): a handler that fails because the
service's database is away, or because members-service gives no keys, does not spend the message's
attempts. The message waits in a delay queue (the first, then longer ones, then the longest again;
``x-verbund-held`` counts the waits) and comes back until the dependency answers, however long the
outage; a batch that meets one is held back whole, without being tried one by one.
"""
from __future__ import annotations

import logging
import time
from functools import partial

from eventlet.event import Event
from eventlet.queue import Empty, LightQueue
from kombu import Connection
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer, QueueConsumer

from verbund import broker, envelope, logs, metrics, outages
from verbund.database import BATCH_KEY, Database

log = logging.getLogger(__name__)

# Events carry profiles and proposals, not files: anything bigger is refused unread.
MAX_EVENT_BYTES = 1024 * 1024
ATTEMPTS_HEADER = "x-verbund-attempts"
ERROR_HEADER = "x-verbund-error"
ROUTING_KEY_HEADER = "x-verbund-routing-key"
HELD_HEADER = "x-verbund-held"


class RawQueueConsumer(QueueConsumer):
    """Hands the undecoded message to the entrypoint, so that a body kombu
    cannot decode is dead-lettered with its reason instead of crashing the
    consumer."""

    @property
    def prefetch_count(self):
        # A batch needs its messages unacked at once, and the next one fills while one runs.
        sizes = [provider.batch_size for provider in self._providers if getattr(provider, "batch_size", 1) > 1]
        return max([self.container.max_workers, *(2 * size for size in sizes)])

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            consumer = consumer_cls(queues=[provider.queue],
                                    on_message=partial(self.handle_message, provider, None))
            consumer.qos(prefetch_count=self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()


class _BatchFailed(Exception):
    """A handler of a batch failed: the batch's transaction rolls back."""


_STOP = object()  # tells the batch loop to end


class EventSubscriber(Consumer):
    """The entrypoint (``@subscribe``). ``patterns``: routing patterns (None: the service's
    subscriptions in the catalogue). ``batch``: the method takes a list of events (its batch form)
    instead of one event. ``batch_size``: overrides ``CONSUME_BATCH_SIZE`` for this entrypoint (1: no
    batches, e.g. for a handler that runs its own transactions). ``database``: the attribute of the
    service's ``Database`` dependency whose transaction per-event handlers share in a batch."""

    queue_consumer = RawQueueConsumer()

    def __init__(self, patterns: list[str] | None = None, *, batch: bool = False, batch_size: int | None = None,
                 database: str = "db", **kwargs):
        self.patterns = patterns
        self.batch_form = batch
        self.batch_size_override = batch_size
        self.database_attr = database
        self.batch_size = 1
        super().__init__(queue=None, **kwargs)

    def setup(self):
        settings = self.container.config["VERBUND"]
        self.batch_size = max(1, self.batch_size_override or getattr(settings, "consume_batch_size", 1))
        self.linger = getattr(settings, "consume_batch_linger_ms", 0) / 1000
        self.database = next((d for d in self.container.dependencies
                              if d.attr_name == self.database_attr and isinstance(d, Database)), None)
        if self.batch_size > 1 and not self.batch_form and self.database is None:
            log.warning("no Database dependency %r: consuming one event at a time", self.database_attr)
            self.batch_size = 1
        self._pending = LightQueue()
        self._stopping = False
        self._loop = None
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

    def start(self):
        if self.batch_size > 1:
            self._loop = self.container.spawn_managed_thread(self._batch_loop, identifier="subscriber.batches")
        super().start()

    def stop(self):
        if self._loop is not None:
            # The loop finishes the batch that runs (its acks need the channel), gives back what waits
            # and ends at _STOP: waited for here, so the container has no managed thread left to kill.
            self._stopping = True
            self._pending.put(_STOP)
            try:
                self._loop.wait()
            except Exception:  # the container logged it and is killed for it
                pass
            self._requeue_pending()
        super().stop()
        self.publisher.close()

    def kill(self):
        # No grace: the batch that runs is not acked (the broker gives it again, the inbox knows it).
        if self._loop is not None:
            self._loop.kill()
        super().kill()

    def handle_message(self, body, message):
        if self.batch_size > 1:
            # Parsed in the batch loop, in delivery order (its acks assume nothing else acks meanwhile).
            if self._stopping:
                self.queue_consumer.requeue_message(message)
            else:
                self._pending.put(message)
            return
        event = self._parse(message)
        if event is None:
            return
        handle_result = partial(self.handle_result, message, event["type"], time.monotonic())
        try:
            self.container.spawn_worker(self, self._args([event]), {}, context_data={"correlation_id": event["id"]},
                                        handle_result=handle_result)
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def _parse(self, message) -> dict | None:
        """The message's CloudEvent; None if it is not one (then it went to the dead-letter queue)."""
        try:
            if len(message.body) > MAX_EVENT_BYTES:
                raise envelope.InvalidEvent(f"body of {len(message.body)} bytes is larger than {MAX_EVENT_BYTES}")
            return envelope.loads(message.body)
        except envelope.InvalidEvent as exc:
            log.warning("dead-lettering an invalid message: %s", exc)
            self._forward(message, self.dead_queue.name, attempts=0, error=f"invalid event: {exc}")
            metrics.dead_lettered.labels(self.container.service_name, "invalid").inc()
            return None

    def _args(self, events: list[dict]) -> tuple:
        return (events,) if self.batch_form else (events[0],)

    # --- batches -----------------------------------------------------------------------------------

    def _batch_loop(self):
        while True:
            first = self._pending.get()
            if first is _STOP:
                return
            messages = [first]
            deadline = time.monotonic() + self.linger
            while len(messages) < self.batch_size:
                try:
                    remaining = deadline - time.monotonic()
                    item = self._pending.get(timeout=remaining) if remaining > 0 else self._pending.get_nowait()
                except Empty:
                    break
                if item is _STOP:
                    self._pending.put(_STOP)
                    break
                messages.append(item)
            if self._stopping:
                for message in messages:
                    self.queue_consumer.requeue_message(message)
                continue
            batch = [(message, event) for message in messages if (event := self._parse(message)) is not None]
            if batch:
                self._run_batch(batch)

    def _requeue_pending(self):
        while True:
            try:
                item = self._pending.get_nowait()
            except Empty:
                return
            if item is not _STOP:
                self.queue_consumer.requeue_message(item)

    def _run_batch(self, batch: list[tuple]) -> None:
        """Handle ``batch`` ([(message, event)], in delivery order) in one transaction and ack it once;
        if that fails, handle its messages one by one."""
        service = self.container.service_name
        started = time.monotonic()
        events = [event for _, event in batch]
        try:
            if self.batch_form:
                self._call(events, batch_id=None)
            else:
                with self.database.batch(events) as joint:
                    todo = set(joint.claimed)  # an event twice in the batch (published twice) runs once
                    for event in events:
                        if event["id"] in todo:
                            todo.discard(event["id"])
                            self._call([event], batch_id=joint.id)
        except ContainerBeingKilled:
            for message, _ in batch:
                self.queue_consumer.requeue_message(message)
            return
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc, _BatchFailed) else exc
            if self._outage(cause):
                for message, event in batch:
                    metrics.failed.labels(service, event["type"]).inc()
                    logs.set_correlation_id(event["id"])  # the loop's log lines name the event they are about
                    self._hold(message, f"{type(cause).__name__}: {cause}"[:2000])
                logs.set_correlation_id(None)
                return
            log.warning("a batch of %d events failed (%s); handling them one by one", len(batch),
                        str(exc)[:500])
            metrics.batch_fallbacks.labels(service).inc()
            for message, event in batch:
                self._call_one(message, event)
            return
        elapsed = time.monotonic() - started
        metrics.batch_size.labels(service).observe(len(batch))
        for _, event in batch:
            metrics.handler_seconds.labels(service, event["type"]).observe(elapsed / len(batch))
            metrics.consumed.labels(service, event["type"]).inc()
        self._ack_all([message for message, _ in batch])

    def _call(self, events: list[dict], batch_id: str | None) -> None:
        """Run the entrypoint's method for ``events`` in a worker and wait for it; _BatchFailed if it raised."""
        done = Event()

        def handle_result(worker_ctx, result=None, exc_info=None):
            done.send(exc_info)
            return result, exc_info

        context = {"correlation_id": events[0]["id"]}
        if batch_id is not None:
            context[BATCH_KEY] = batch_id
        self.container.spawn_worker(self, self._args(events), {}, context_data=context, handle_result=handle_result)
        exc_info = done.wait()
        if exc_info is not None:
            raise _BatchFailed(f"{exc_info[0].__name__}: {exc_info[1]}") from exc_info[1]

    def _call_one(self, message, event: dict) -> None:
        """One message as without batches (its own transaction, ack or retry), waited for: in order."""
        done = Event()
        handle_result = partial(self.handle_result, message, event["type"], time.monotonic())

        def finish(worker_ctx, result=None, exc_info=None):
            try:
                return handle_result(worker_ctx, result, exc_info)
            finally:
                done.send(None)

        try:
            self.container.spawn_worker(self, self._args([event]), {}, context_data={"correlation_id": event["id"]},
                                        handle_result=finish)
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)
            return
        done.wait()

    def _ack_all(self, messages: list) -> None:
        """Ack after the commit: one frame for the batch (``multiple``) when all came on one channel.
        Every unacked message before the last one on that channel is in this batch, since batches
        run one at a time in delivery order and a forwarded message was acked when forwarded."""
        last = messages[-1]
        channel = last.channel
        if all(message.channel is channel for message in messages) and channel.connection:
            try:
                channel.basic_ack(last.delivery_tag, multiple=True)
            except ConnectionError:
                return  # the broker gives them again, and the inbox knows them
            for message in messages:
                message._state = "ACK"  # kombu's bookkeeping: no second ack for these
            return
        for message in messages:
            self.queue_consumer.ack_message(message)

    def handle_result(self, message, event_type, started, worker_ctx, result=None, exc_info=None):
        service = self.container.service_name
        metrics.handler_seconds.labels(service, event_type).observe(time.monotonic() - started)
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            metrics.consumed.labels(service, event_type).inc()
            return result, exc_info
        metrics.failed.labels(service, event_type).inc()
        error = f"{exc_info[0].__name__}: {exc_info[1]}"[:2000]
        if self._outage(exc_info[1]):
            self._hold(message, error)
            return result, exc_info
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

    def _outage(self, exc: BaseException | None) -> bool:
        # Without a delay queue a held message would come straight back: then an outage counts as a failure.
        return bool(self.retry_queues) and outages.is_outage(
            exc, self.database.engine if self.database is not None else None)

    def _hold(self, message, error: str) -> None:
        """A dependency is away: the message waits in a delay queue, its attempts unspent."""
        held = int((message.headers or {}).get(HELD_HEADER, 0)) + 1
        target = self.retry_queues[min(held, len(self.retry_queues)) - 1].name
        log.warning("a dependency is away; the message waits in %s (held %d times, attempts unspent): %s",
                    target, held, error)
        metrics.held_back.labels(self.container.service_name).inc()
        self._forward(message, target, attempts=int((message.headers or {}).get(ATTEMPTS_HEADER, 0)),
                      error=error, more={HELD_HEADER: held})

    def _forward(self, message, queue_name: str, *, attempts: int, error: str, more: dict | None = None) -> None:
        """Republish to a delay or dead-letter queue, then ack; requeue if that fails."""
        headers = dict(message.headers or {})
        headers.update(more or {})
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
