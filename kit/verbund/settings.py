"""Settings from the environment, with embedded defaults.

With nothing set, a service uses a SQLite file under the local data folder
and the RabbitMQ on localhost. Per-service variables (``MEMBERS_DATABASE_URL``,
``MEMBERS_PORT``) win over the shared ones (``DATABASE_URL``, ``HTTP_PORT``),
so one environment can run all services, each with its own database.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_AMQP_URI = "amqp://guest:guest@localhost:5672/"

# Where each service listens unless told otherwise.
DEFAULT_PORTS = {"members": 8001, "events": 8002, "matching": 8003, "notifications": 8004}


def _env(service: str, name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"{service.upper()}_{name}") or os.environ.get(name) or default


def data_dir() -> Path:
    """The local data folder for SQLite files and the generated auth secret."""
    path = Path(os.environ.get("VERBUND_DATA_DIR", Path.cwd() / ".data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def auth_secret() -> str:
    """``AUTH_SECRET``, or a secret generated once and kept in the data folder
    so that the services and the ``verbund token`` command agree on it."""
    if os.environ.get("AUTH_SECRET"):
        return os.environ["AUTH_SECRET"]
    path = data_dir() / "auth-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _delays(raw: str) -> tuple[int, ...]:
    return tuple(int(part) for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    service: str
    amqp_uri: str
    database_url: str
    http_host: str
    http_port: int
    log_level: str
    # Delay of each retry of a failing event handler, in milliseconds; after
    # the last one the message goes to the dead-letter queue.
    retry_delays_ms: tuple[int, ...]
    max_workers: int
    heartbeat: int
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, service: str) -> Settings:
        sqlite_default = f"sqlite:///{data_dir() / (service + '.db')}"
        return cls(
            service=service,
            amqp_uri=_env(service, "AMQP_URI", DEFAULT_AMQP_URI),
            database_url=_env(service, "DATABASE_URL", sqlite_default),
            http_host=_env(service, "HTTP_HOST", "127.0.0.1"),
            http_port=int(_env(service, "PORT") or _env(service, "HTTP_PORT") or DEFAULT_PORTS.get(service, 8000)),
            log_level=_env(service, "LOG_LEVEL", "INFO").upper(),
            retry_delays_ms=_delays(_env(service, "RETRY_DELAYS_MS", "1000,5000,30000")),
            max_workers=int(_env(service, "MAX_WORKERS", "10")),
            heartbeat=int(_env(service, "AMQP_HEARTBEAT", "30")),
        )

    def nameko_config(self) -> dict:
        """The config dict nameko's container expects, plus ours under VERBUND."""
        return {
            "AMQP_URI": self.amqp_uri,
            "WEB_SERVER_ADDRESS": f"{self.http_host}:{self.http_port}",
            "max_workers": self.max_workers,
            "HEARTBEAT": self.heartbeat,
            "serializer": "json",
            "VERBUND": self,
        }
