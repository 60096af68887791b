from collections import Counter

from sqlalchemy import insert

from probe.models import effects
from verbund.service import ServiceBase
from verbund.subscriber import subscribe

attempts: Counter = Counter()  # per process, which outlives the retries of a message


def record(uow, event):
    name = event["data"]["profile"]["name"]
    attempts[event["id"]] += 1
    if name.startswith("fail-always"):
        raise RuntimeError(f"cannot handle {name}")
    if name.startswith("fail-once") and attempts[event["id"]] == 1:
        raise RuntimeError("failing the first time")
    uow.session.execute(insert(effects).values(event_id=event["id"], member_name=name))


class ProbeService(ServiceBase):
    name = "probe"

    @subscribe(["member.registered"])
    def on_event(self, event):
        self.db.handle(event, record)
