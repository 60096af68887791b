"""What every service has: its database with the outbox sweep, and health
and readiness endpoints. A service class derives from ``ServiceBase``.

Hooks a service may extend: ``readiness_checks`` (more checks for ``/ready``)
and ``companions`` (processes ``verbund up`` starts beside the service, such
as a development mail catcher)."""
from __future__ import annotations

from typing import NamedTuple

from kombu import Connection
from nameko.timer import timer
from sqlalchemy import text
from werkzeug.wrappers import Response

from verbund import metrics, openapi, outbox
from verbund.database import Database
from verbund.settings import env
from verbund.web import ANYONE, api, json_response

SWEEP_SECONDS = env("OUTBOX_SWEEP_SECONDS", 5.0, kind="float")


class Companion(NamedTuple):
    """A process ``verbund up`` starts beside a service: ``argv`` as for ``subprocess.Popen``,
    ``address`` printed where the services' URLs are (e.g. ``smtp://127.0.0.1:8025``)."""
    name: str
    argv: list[str]
    address: str


class ServiceBase:
    name = "base"
    db = Database()

    @timer(interval=SWEEP_SECONDS)
    def sweep_outbox(self):
        self.db.sweep()

    @api("GET", "/health", roles=ANYONE)
    def health(self, request):
        """Liveness: the process answers."""
        return {"service": self.name, "status": "ok"}

    @api("GET", "/openapi.json", roles=ANYONE)
    def openapi(self, request):
        """This API's OpenAPI 3.1 document."""
        return openapi.document(type(self))

    @api("GET", "/metrics", roles=ANYONE)
    def prometheus_metrics(self, request):
        """Prometheus metrics in the text exposition format."""
        metrics.outbox_backlog.labels(self.name).set(outbox.pending_count(self.db.engine))
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    @classmethod
    def companions(cls) -> list[Companion]:
        """Processes ``verbund up`` (development only) starts beside this service; none by default."""
        return []

    def readiness_checks(self) -> dict[str, str]:
        """What ``/ready`` reports: check name to ``"ok"`` or what is wrong; ready when all are ``"ok"``.

        A service extends it: ``checks = super().readiness_checks(); checks["engine"] = ...``.
        A value starting with ``"degraded"`` still counts as ready (it works with less, and says what).
        """
        checks = {}
        try:
            with self.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {exc}"
        try:
            with Connection(self.db.relay.publisher.amqp_uri, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"error: {exc}"
        return checks

    @api("GET", "/ready", roles=ANYONE, responses={200: "Database and broker reachable", 503: "Not ready"})
    def ready(self, request):
        """Readiness: the database and the broker answer."""
        checks = self.readiness_checks()  # the database and the broker, and what a service adds
        # "degraded: …" is ready: the service works, with less (it says what in the check).
        ready = all(value == "ok" or value.startswith("degraded") for value in checks.values())
        return json_response({"service": self.name, "ready": ready, "checks": checks}, 200 if ready else 503)
