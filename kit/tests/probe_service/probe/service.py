import os
import uuid
from collections import Counter

from sqlalchemy import func, insert, select

from probe.models import effects
from verbund.rpc import rpc
from verbund.service import ServiceBase
from verbund.subscriber import EventSubscriber, subscribe
from verbund.web import ANYONE, api

if os.environ.get("PROBE_CRASH_BEFORE_ACK"):
    # A crash after a batch committed and before its ack reached the broker (kill -9 at the worst moment).
    def _crash(self, messages):
        os._exit(9)

    EventSubscriber._ack_all = _crash

if os.environ.get("PROBE_RESET_FIRST_REPLY"):
    # The broker resets the connection of the first RPC reply (as it does to a connection whose
    # handshake timed out while the process was busy); later replies go out.
    from nameko import rpc as nameko_rpc

    class _ResetOnce(nameko_rpc.Responder.publisher_cls):
        failures = 1

        def publish(self, payload, **kwargs):
            if _ResetOnce.failures:
                _ResetOnce.failures -= 1
                raise ConnectionResetError(104, "Connection reset by peer")
            return super().publish(payload, **kwargs)

    nameko_rpc.Responder.publisher_cls = _ResetOnce

attempts: Counter = Counter()  # per process, which outlives the retries of a message


def record(uow, event):
    name = event["data"]["profile"]["name"]
    attempts[event["id"]] += 1
    if name.startswith("fail-always"):
        raise RuntimeError(f"cannot handle {name}")
    if name.startswith("fail-once") and attempts[event["id"]] == 1:
        raise RuntimeError("failing the first time")
    tx = uow.session.info.setdefault("probe_tx", uuid.uuid4().hex)
    uow.session.execute(insert(effects).values(event_id=event["id"], member_name=name, subject=event["subject"],
                                               tx=tx))


class ProbeService(ServiceBase):
    name = "probe"

    @rpc
    def echo(self, value):
        return value

    @api("GET", "/effects", roles=ANYONE)
    def count_effects(self, request):
        with self.db.unit_of_work() as uow:
            return {"effects": uow.session.execute(select(func.count()).select_from(effects)).scalar_one()}

    if os.environ.get("PROBE_BATCH_FORM"):
        @subscribe(["member.registered"], batch=True)
        def on_event(self, events):
            self.db.handle_batch(events, lambda uow, fresh: [record(uow, event) for event in fresh])
    else:
        @subscribe(["member.registered"])
        def on_event(self, event):
            self.db.handle(event, record)
