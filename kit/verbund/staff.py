"""Is a staff token's account still active? Organizers and admins sign in by e-mail link and get
tokens that carry their staff account's id (claim ``staff_id``); members-service holds the accounts.
An admin can revoke an account, and that must hold on the next request, in every service:

- members-service answers from its own database, on every request (no cache);
- the other services ask members-service by RPC (``members.staff_status``, on the services' own RPC
  exchange) and keep the answer at most ``STAFF_CHECK_TTL_SECONDS`` (default 2 s): a revoked
  account's token is refused everywhere at most that long after the revocation.
- When members-service does not answer within ``STAFF_CHECK_TIMEOUT_SECONDS`` (3 s), the request is
  refused with 503 (fail closed: a revocation must not be skipped because the check is down).

Integrator tokens with a ``grant`` claim are checked the same way (``ensure_grant``): once the
integrator is revoked its tokens are refused (401) everywhere (``members.integrator_status``; a token
of an older grant is refused by members-service's own rules, ``members.domain.check_grant``).
Tokens without either claim (operators' tokens from ``verbund token``, older integrator tokens,
members) are not checked here.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import eventlet
from nameko.containers import WorkerContext
from nameko.exceptions import UnknownService
from nameko.extensions import SharedExtension
from nameko.rpc import MethodProxy, ReplyListener

from verbund.errors import ServiceUnavailable, Unauthorized
from verbund.settings import env

REVOKED = "this staff account was revoked; ask an admin of the platform"
GRANT_WITHDRAWN = "this integrator was revoked; its tokens are void: ask an admin of the platform"


def check_ttl_seconds() -> float:
    """``STAFF_CHECK_TTL_SECONDS`` (2): how long a service outside members trusts an "active" answer."""
    return env("STAFF_CHECK_TTL_SECONDS", 2.0, kind="float")


def check_timeout_seconds() -> float:
    """``STAFF_CHECK_TIMEOUT_SECONDS`` (3): how long to wait for members-service's answer."""
    return env("STAFF_CHECK_TIMEOUT_SECONDS", 3.0, kind="float")


class StatusCache:
    """members-service's answers, each kept ``ttl`` seconds: the bound on how long a revoked account's
    token still works in this service (a re-invited account works again after at most as long)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.ttl, self.clock = ttl, clock
        self._held: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def active(self, staff_id: str, fetch: Callable[[str], bool]) -> bool:
        now = self.clock()
        with self._lock:
            held = self._held.get(staff_id)
        if held is not None and held[0] > now:
            return held[1]
        active = fetch(staff_id)
        with self._lock:
            self._held[staff_id] = (now + self.ttl, active)
        return active


class StaffStatus(SharedExtension):
    """One per service container, used by ``verbund.web.ApiEndpoint`` before a staff token's request
    runs. The service class may answer itself: members-service defines
    ``staff_active_here(container, staff_id) -> bool``, read from its database on every request."""

    reply_listener = ReplyListener()

    def setup(self):
        self.cache = StatusCache(check_ttl_seconds())
        self.timeout = check_timeout_seconds()

    def ensure_active(self, staff_id: str, entrypoint, data: dict) -> None:
        """Raise Unauthorized (401) for a revoked or unknown account, ServiceUnavailable (503) when
        members-service cannot tell within the timeout."""
        here = getattr(self.container.service_cls, "staff_active_here", None)
        if here is not None:
            active = here(self.container, staff_id)
        else:
            active = self.cache.active(staff_id, lambda key: self._ask(key, entrypoint, data))
        if not active:
            raise Unauthorized(REVOKED)

    def ensure_grant(self, name: str, entrypoint, data: dict) -> None:
        """Raise Unauthorized (401) for a token of integrator ``name`` once it is revoked,
        ServiceUnavailable (503) when members-service cannot tell within the timeout."""
        here = getattr(self.container.service_cls, "integrator_active_here", None)
        if here is not None:
            current = here(self.container, name)
        else:
            current = self.cache.active(f"integrator:{name}", lambda key: self._ask(
                key, entrypoint, data, method="integrator_status", args=(name,)))
        if not current:
            raise Unauthorized(GRANT_WITHDRAWN)

    def _ask(self, staff_id: str, entrypoint, data: dict, method: str = "staff_status",
             args: tuple | None = None) -> bool:
        # The HTTP handler runs outside a worker; a worker context of its own carries the call id.
        context = WorkerContext(self.container, None, entrypoint, data=dict(data))
        proxy = MethodProxy(context, "members", method, self.reply_listener)
        try:
            with eventlet.Timeout(self.timeout):
                return proxy(*(args or (staff_id,)))["active"] is True
        except (eventlet.Timeout, UnknownService):
            raise ServiceUnavailable("the staff account cannot be checked right now (members-service does not "
                                     "answer); try again in a moment") from None
