"""Settings from the environment, with embedded defaults.

With nothing set, a service uses a SQLite file under the local data folder
and the RabbitMQ on localhost. Per-service variables (``MEMBERS_DATABASE_URL``,
``MEMBERS_PORT``) win over the shared ones (``DATABASE_URL``, ``HTTP_PORT``),
so one environment can run all services, each with its own database.

Names say their unit where a number has one (``RETRY_DELAYS_MS``,
``AMQP_HEARTBEAT_SECONDS``); a renamed variable keeps working under its old
name with a ``DeprecationWarning``. Values are parsed by environs (typed,
marshmallow underneath), so a malformed one stops the service at start-up
with the variable's name instead of failing later.
"""
from __future__ import annotations

import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

from environs import Env, EnvError

DEFAULT_AMQP_URI = "amqp://guest:guest@localhost:5672/"

# Where each service listens unless told otherwise.
DEFAULT_PORTS = {"members": 8001, "events": 8002, "matching": 8003, "notifications": 8004, "meetings": 8005}

_parser = Env(expand_vars=False)


def env(name: str, default=None, *, service: str | None = None, kind: str = "str",
        old_name: str | None = None, **options):
    """The value of the environment variable ``name``, parsed as ``kind``.

    ``service`` (e.g. ``"notifications"``): ``NOTIFICATIONS_<name>`` wins over
    ``<name>``. ``kind`` is an environs parser: ``"str"``, ``"int"``,
    ``"float"``, ``"bool"``, ``"list"`` (with ``subcast=int`` or ``float``, comma
    separated), ...; ``options`` go to it. ``old_name``: the variable's name before
    it was renamed (e.g. to say its unit), read after the new name with a
    ``DeprecationWarning``. Unset and empty variables give ``default`` (not parsed).

    Raises ``environs.EnvError`` naming the variable when its value does not parse.
    """
    names = [name] + ([old_name] if old_name else [])
    for candidate in names:
        for key in ([f"{service.upper()}_{candidate}"] if service else []) + [candidate]:
            if os.environ.get(key, ""):
                if candidate == old_name:
                    warnings.warn(f"{key} is deprecated: set {key.removesuffix(old_name)}{name} instead",
                                  DeprecationWarning, stacklevel=2)
                return getattr(_parser, kind)(key, **options)
    return default


def data_dir() -> Path:
    """The local data folder for SQLite files and the generated auth secret (``VERBUND_DATA_DIR``)."""
    path = Path(env("VERBUND_DATA_DIR") or Path.cwd() / ".data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_secret(variable: str, filename: str) -> str:
    """The environment's ``variable``, or a random secret generated once into the data folder's
    ``filename`` (readable by its owner only), so that every process of one platform agrees on it."""
    if env(variable):
        return env(variable)
    path = data_dir() / filename
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def auth_secret() -> str:
    """``AUTH_SECRET``, or a secret generated once and kept in the data folder
    so that the services and the ``verbund token`` command agree on it."""
    return data_secret("AUTH_SECRET", "auth-secret")


class NoAuthSecret(RuntimeError):
    """There is no platform secret to sign with here (see ``existing_auth_secret``)."""


def existing_auth_secret() -> str:
    """The secret the running platform signs with: ``AUTH_SECRET``, or the one
    ``make run`` keeps in the data folder. Unlike ``auth_secret`` it never makes
    a new one: a token signed with a fresh secret is refused by every service,
    so a command run from the wrong folder must say so instead (raises
    ``NoAuthSecret`` with what to do)."""
    if env("AUTH_SECRET"):
        return env("AUTH_SECRET")
    path = data_dir() / "auth-secret"
    if not path.exists():
        raise NoAuthSecret(f"no platform secret found: {path} does not exist and AUTH_SECRET is not set. "
                           "Run the command in the folder where `make run` keeps .data/, or set "
                           "VERBUND_DATA_DIR or AUTH_SECRET as the services have it")
    return path.read_text().strip()


def portal_url() -> str:
    """``PORTAL_URL``: where people open the platform in a browser (the portal), the base of the links
    in sign-in and contact mails; ``http://localhost:8000`` by default."""
    return (env("PORTAL_URL") or "http://localhost:8000").rstrip("/")


def _log_format(value: str) -> str:
    if value.lower() not in ("json", "text"):
        raise EnvError(f"LOG_FORMAT must be json or text, not {value!r}")
    return value.lower()


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
    heartbeat_seconds: int
    # Batch consumption (verbund.subscriber): up to this many events in one transaction and one ack;
    # 1 handles each event on its own, as before batching.
    consume_batch_size: int = 50
    # How long a batch waits for more events once its first one arrived, in milliseconds.
    consume_batch_linger_ms: int = 20
    # "json": one JSON object per line, for log collectors (the default); "text": one
    # readable line, what `verbund up` uses on a developer's console.
    log_format: str = "json"

    @classmethod
    def from_env(cls, service: str) -> Settings:
        """The settings of ``service`` ("members", ...); raises ``environs.EnvError`` on a malformed value."""
        sqlite_default = f"sqlite:///{data_dir() / (service + '.db')}"
        port = env("PORT", service=service, kind="int") or env("HTTP_PORT", service=service, kind="int")
        return cls(
            service=service,
            amqp_uri=env("AMQP_URI", DEFAULT_AMQP_URI, service=service),
            database_url=env("DATABASE_URL", sqlite_default, service=service),
            http_host=env("HTTP_HOST", "127.0.0.1", service=service),
            http_port=port or DEFAULT_PORTS.get(service, 8000),
            log_level=env("LOG_LEVEL", "INFO", service=service).upper(),
            retry_delays_ms=tuple(env("RETRY_DELAYS_MS", [1000, 5000, 30000], service=service, kind="list",
                                      subcast=int)),
            max_workers=env("MAX_WORKERS", 10, service=service, kind="int"),
            heartbeat_seconds=env("AMQP_HEARTBEAT_SECONDS", 30, service=service, kind="int",
                                  old_name="AMQP_HEARTBEAT"),
            consume_batch_size=max(1, env("CONSUME_BATCH_SIZE", 50, service=service, kind="int")),
            consume_batch_linger_ms=max(0, env("CONSUME_BATCH_LINGER_MS", 20, service=service, kind="int")),
            log_format=_log_format(env("LOG_FORMAT", "json", service=service)),
        )

    def nameko_config(self) -> dict:
        """The config dict nameko's container expects, plus ours under VERBUND."""
        return {
            "AMQP_URI": self.amqp_uri,
            "WEB_SERVER_ADDRESS": f"{self.http_host}:{self.http_port}",
            "max_workers": self.max_workers,
            "HEARTBEAT": self.heartbeat_seconds,
            "serializer": "json",
            "VERBUND": self,
        }


# The most processes `verbund up` starts of one service. Each is a whole service process (matching's
# loads its ~90 MB embedding model) with its own database connections and a consumer on the shared
# queue; past a handful on one machine more instances only compete for the same cores and PostgreSQL's
# connection limit (100 by default). Beyond 16, scale out on more machines (DESIGN.md principle 9).
MAX_INSTANCES = 16


def instance_count(text: str) -> int:
    """``text`` (e.g. ``"2"``) as a number of instances. Raises ValueError for anything but ASCII
    digits (``int()`` would take ``"०२"`` as 2 and fail on ``"²"`` with its own message) and for a count
    outside 1..``MAX_INSTANCES``; the caller says where the value came from."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not a whole number: {text!r}")
    count = int(text)
    if not 1 <= count <= MAX_INSTANCES:
        raise ValueError(f"{count} is not between 1 and {MAX_INSTANCES} (the most instances of a service "
                         f"`verbund up` starts on one machine)")
    return count


def instances(service: str) -> int:
    """How many processes ``verbund up`` starts for ``service`` (``<SERVICE>_INSTANCES``, then
    ``INSTANCES``; default 1). They share the service's queue as competing consumers and its database,
    which must then be PostgreSQL (``DATABASE_URL``). Raises ``environs.EnvError`` naming the variable
    for a value that is not a whole number (ASCII digits) from 1 to ``MAX_INSTANCES``."""
    text = env("INSTANCES", None, service=service)
    if text is None:
        return 1
    name = f"{service.upper()}_INSTANCES" if os.environ.get(f"{service.upper()}_INSTANCES", "") else "INSTANCES"
    try:
        return instance_count(text)
    except ValueError as exc:
        raise EnvError(f"{name} must be a number of instances from 1 to {MAX_INSTANCES}: {exc}") from None
