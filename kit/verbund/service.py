"""What every service has: its database with the outbox sweep, and health
and readiness endpoints. A service class derives from ``ServiceBase``."""
from __future__ import annotations

import os

from kombu import Connection
from nameko.timer import timer
from sqlalchemy import text
from werkzeug.wrappers import Response

from verbund import metrics, openapi, outbox
from verbund.database import Database
from verbund.web import ANYONE, api, json_response

SWEEP_SECONDS = float(os.environ.get("OUTBOX_SWEEP_SECONDS", "5"))


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

    @api("GET", "/ready", roles=ANYONE, responses={200: "Database and broker reachable", 503: "Not ready"})
    def ready(self, request):
        """Readiness: the database and the broker answer."""
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
        ready = all(value == "ok" for value in checks.values())
        return json_response({"service": self.name, "ready": ready, "checks": checks}, 200 if ready else 503)
