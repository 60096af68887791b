"""An integrator's consumer: receive Verbund events into your CRM or data warehouse.

1. The platform admin creates your read-only user, scoped to what you need:
       verbund integrator crm-sync --events 'event.*,registration.*'
   and hands you the AMQP_URI (and TOKEN) it prints.
2. Run with AMQP_URI=amqp://integrator-crm-sync:...@host:5672/ in the environment:
       python integrator_example.py crm-sync 'event.*' 'registration.*'
   Patterns outside your scope are refused by the broker (ACCESS_REFUSED).

Your durable queue integrator.<name>.inbox keeps events while you are away.
To catch up on what happened before your queue existed, pass --since 7d once:
the events are read from the replay stream verbund.replay, which only an
integrator with the whole scope ('#') may read; with a narrower scope, ask the
admin for `verbund replay crm-sync --since 7d` into your queue.
Each message is a CloudEvents 1.0 JSON document; the contract is docs/asyncapi.yaml.
Needs only kombu (pip install kombu).
"""
import argparse
import json
import os
from datetime import UTC, datetime, timedelta

from kombu import Connection, Consumer, Exchange, Queue, binding

# The platform declares the exchange; your user may bind to it but not declare it.
EVENTS = Exchange("verbund.events", type="topic", durable=True, no_declare=True)


def handle(event: dict) -> None:
    # Replace with your own: upsert into the CRM, write to the warehouse, ...
    # Deduplicate on event["id"]: delivery is at least once.
    print(event["time"], event["type"], event["subject"], json.dumps(event["data"], ensure_ascii=False)[:120])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", help="your integrator name")
    parser.add_argument("patterns", nargs="+", help="routing key patterns such as member.* or event.#")
    parser.add_argument("--since", help="replay first: an age such as 7d or 12h")
    args = parser.parse_args()

    with Connection(os.environ["AMQP_URI"]) as connection:
        channel = connection.channel()
        channel.basic_qos(0, 100, False)
        if args.since:
            amount, unit = int(args.since[:-1]), {"h": "hours", "d": "days", "m": "minutes"}[args.since[-1]]
            since = datetime.now(UTC) - timedelta(**{unit: amount})
            queue = Queue("verbund.replay", no_declare=True, consumer_arguments={"x-stream-offset": since})
        else:
            queue = Queue(f"integrator.{args.name}.inbox", durable=True,
                          bindings=[binding(EVENTS, routing_key=pattern) for pattern in args.patterns])

        def on_message(message):
            handle(json.loads(message.body))
            message.ack()  # after your handling succeeded

        with Consumer(channel, queues=[queue], on_message=on_message):
            while True:
                connection.drain_events()


if __name__ == "__main__":
    main()
