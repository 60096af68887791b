"""The portal's settings, from the environment (``verbund.settings.env``), with embedded defaults.

``PORTAL_URL`` (default ``http://localhost:8000``) is the address people open; with an ``https``
one the session cookie is sent over https only. ``PORTAL_HOST``/``PORTAL_PORT`` is where it listens.
``MEMBERS_URL``, ``EVENTS_URL``, ``MATCHING_URL``, ``NOTIFICATIONS_URL``, ``MEETINGS_URL`` say where each service's
HTTP API answers (default: its address from the services' settings, as ``verbund up`` starts them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from verbund.settings import Settings, data_secret, env

SERVICES = ("members", "events", "matching", "notifications", "meetings")


def service_url(service: str) -> str:
    """``<SERVICE>_URL``, else the address the service listens on by its own settings."""
    if env(f"{service.upper()}_URL"):
        return env(f"{service.upper()}_URL").rstrip("/")
    settings = Settings.from_env(service)
    return f"http://{settings.http_host}:{settings.http_port}"


def secret_key() -> str:
    """``PORTAL_SECRET_KEY``, or one generated once into the data folder (signs and encrypts sessions)."""
    return data_secret("PORTAL_SECRET_KEY", "portal-secret")


@dataclass(frozen=True)
class PortalConfig:
    portal_url: str
    host: str
    port: int
    secret_key: str
    services: dict[str, str] = field(default_factory=dict)
    idle_minutes: int = 30           # a session unused this long ends
    absolute_hours: int = 12         # a session ends this long after sign-in, used or not
    service_timeout_seconds: float = 10.0
    feedback_email: str = "barrierefreiheit@verbund.example"
    behind_proxy: bool = False       # trust X-Forwarded-* from one proxy (https offloading)

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.portal_url).scheme == "https"

    @classmethod
    def from_env(cls) -> PortalConfig:
        """Raises ``environs.EnvError`` naming a variable whose value does not parse."""
        port = env("PORTAL_PORT", 8000, kind="int")
        return cls(
            # The services build the links in their mails from PORTAL_URL too: set both together.
            portal_url=env("PORTAL_URL", f"http://localhost:{port}").rstrip("/"),
            host=env("PORTAL_HOST", "127.0.0.1"),
            port=port,
            secret_key=secret_key(),
            services={service: service_url(service) for service in SERVICES},
            idle_minutes=env("PORTAL_IDLE_MINUTES", 30, kind="int"),
            absolute_hours=env("PORTAL_SESSION_HOURS", 12, kind="int"),
            service_timeout_seconds=env("PORTAL_SERVICE_TIMEOUT_SECONDS", 10.0, kind="float"),
            feedback_email=env("PORTAL_FEEDBACK_EMAIL", "barrierefreiheit@verbund.example"),
            behind_proxy=env("PORTAL_BEHIND_PROXY", False, kind="bool"),
        )
