"""Read-only access for integrators, and reading the event stream.

An integrator gets a RabbitMQ user of its own that may declare, bind and
read queues named ``integrator.<name>.*`` (bound to ``verbund.events``), and
nothing else: it cannot publish and cannot read the services' queues.

Its **scope** says which event types it may read (AMQP topic patterns such as
``event.*``) and whether it may see personal fields. RabbitMQ enforces the
event types with topic permissions: on ``queue.bind`` (and ``exchange.bind``)
to the topic exchange ``verbund.events`` the binding key is checked against
the user's read regex (RabbitMQ access-control guide, "Topic Authorisation"),
and ``scope_regex`` accepts only binding keys that route nothing outside the
scope. The replay stream holds every event type and cannot be filtered by
permission, so only an integrator whose scope is everything (``#``) may read
it; a scoped one catches up through ``replay_into`` (an admin copies its
scope's events from the stream into its queue). Personal fields are enforced
by the key service through the token's ``personal`` claim, not the broker.

Users made before scopes existed have no topic permission, which RabbitMQ
reads as "every binding key", and tokens without scope claims read every
event type and no personal data: the documented default, ``DEFAULT_SCOPE``.

``follow`` reads live events or, from a point in time, the replay stream;
``verbund tail`` and docs/integrator_example.py use it.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from kombu import Connection, Consumer, Exchange, Queue, binding

from verbund import broker, catalogue, envelope

# The pattern rules live in the runtime module verbund.topics (services use them too); re-exported here.
from verbund.topics import is_everything, scope_regex  # noqa: F401

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$")
# Bound to, never declared: declaring the exchange would need rights an integrator does not have.
EXISTING_EXCHANGE = Exchange(broker.events_exchange.name, type="topic", durable=True, no_declare=True)
# What an integrator made without --events, or before scopes existed, may read: every event type.
DEFAULT_SCOPE = ("#",)
_WORD = re.compile(r"^[a-z][a-z0-9_-]*$")


class ScopeError(ValueError):
    """An integrator scope that cannot be granted: empty, malformed or naming unknown event types."""


def parse_scope(text: str | None) -> tuple[str, ...]:
    """The topic patterns of ``--events``: ``'event.*,registration.*'`` → ``('event.*', 'registration.*')``.

    ``None`` is ``DEFAULT_SCOPE`` (every event type). A pattern is words joined by dots; a word is
    ``*`` (one word), ``#`` (zero or more) or a lowercase name; a first word that is a name must be an
    event type family of the catalogue (``member``, ``event``, ...) and every pattern must match at
    least one catalogued event type. Raises ``ScopeError`` naming the offending pattern.
    """
    if text is None:
        return DEFAULT_SCOPE
    patterns = [pattern.strip() for pattern in text.split(",")]
    if not any(patterns):
        raise ScopeError("--events needs at least one topic pattern, e.g. 'event.*,registration.*'")
    families = sorted({name.split(".")[0] for name in catalogue.EVENT_TYPES})
    scope: list[str] = []
    for pattern in patterns:
        if not pattern:
            raise ScopeError(f"empty pattern in {text!r}: separate patterns by single commas")
        words = pattern.split(".")
        bad = [word for word in words if word not in ("*", "#") and not _WORD.match(word)]
        if bad:
            raise ScopeError(f"malformed pattern {pattern!r}: a word is '*', '#' or a lowercase name, "
                             f"not {bad[0]!r}")
        if words[0] not in ("*", "#") and words[0] not in families:
            raise ScopeError(f"unknown event type family {words[0]!r} in {pattern!r}; known: {', '.join(families)}")
        if not any(broker.topic_matches(pattern, name) for name in catalogue.EVENT_TYPES):
            raise ScopeError(f"pattern {pattern!r} matches no event type of the catalogue "
                             f"(docs/asyncapi.yaml lists them)")
        if pattern not in scope:
            scope.append(pattern)
    return tuple(scope)


def user_name(name: str) -> str:
    return f"integrator-{name}"


def queue_prefix(name: str) -> str:
    return f"integrator.{name}."


def permissions(name: str, scope: tuple[str, ...] = DEFAULT_SCOPE) -> tuple[str, str, str]:
    """configure, write, read patterns for ``rabbitmqctl set_permissions``.

    Binding a queue needs write on the queue and read on the exchange;
    publishing would need write on the exchange, which is not granted. The
    replay stream is readable only with a scope of everything.
    """
    own = f"^{re.escape(queue_prefix(name))}.*"
    replay = f"|{re.escape(broker.REPLAY_STREAM)}" if is_everything(scope) else ""
    read = f"^({re.escape(broker.events_exchange.name)}{replay}|{re.escape(queue_prefix(name))}.*)$"
    return own, own, read


def topic_permissions(scope: tuple[str, ...]) -> tuple[str, str]:
    """write, read regexes for ``rabbitmqctl set_topic_permissions ... verbund.events``.

    Write admits no routing key (publishing is refused by the vhost permissions already; this is
    the second lock). Read is ``scope_regex``.
    """
    return "^$.", scope_regex(scope)  # "^$.": a character after the end, which no routing key has


def create(name: str, vhost: str = "/", password: str | None = None, scope: tuple[str, ...] = DEFAULT_SCOPE,
           admin_uri: str | None = None, keep_password: bool = False) -> str | None:
    """Create or update the integrator's user on the local broker node, scoped to ``scope``.

    Returns the new password, or ``None`` when ``keep_password`` kept an existing user's one. For a
    user that existed, its connections are closed (RabbitMQ caches permission checks per channel)
    and, given ``admin_uri`` (an AMQP URI with rights in ``vhost``), bindings of its queues that the
    new scope no longer admits are removed. Raises ``ValueError`` for a bad name or scope,
    ``RuntimeError`` when rabbitmqctl fails (no such vhost: nothing changed) and kombu's or amqp's
    errors when ``admin_uri`` cannot remove bindings (the scope is set, the password unchanged).
    """
    if not NAME.match(name):
        raise ValueError("an integrator name is 2-41 lowercase letters, digits or dashes, starting with "
                         "a letter or digit")
    for pattern in scope:  # a scope from code rather than parse_scope: validate it the same way
        parse_scope(pattern)
    user = user_name(name)
    exists = user in _rabbitmqctl("list_users").split()
    password = None if exists and keep_password else \
        password or secrets.token_hex(24)  # hex: a leading "-" would read as an option to rabbitmqctl
    if not exists:
        _rabbitmqctl("add_user", user, password)
    try:  # first the rights: a bad vhost fails here, before an existing user's password changed
        _rabbitmqctl("set_permissions", "-p", vhost, user, *permissions(name, scope))
    except RuntimeError:
        if not exists:  # leave no user behind that has a password and no rights
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True)
        raise
    _rabbitmqctl("set_topic_permissions", "-p", vhost, user, broker.events_exchange.name, *topic_permissions(scope))
    if exists:
        _rabbitmqctl("close_all_user_connections", user, "integrator scope changed")
        if admin_uri:
            prune_bindings(admin_uri, name, vhost, scope)
        if password:  # last: if anything above failed, the integrator's old password still works
            _rabbitmqctl("change_password", user, password)
    return password


def connection_uri(amqp_uri: str, name: str, password: str | None, vhost: str = "/") -> str:
    """The integrator's AMQP URI on the broker of ``amqp_uri`` (its host and port), in ``vhost``:
    ``amqp://integrator-NAME:PASSWORD@host:port/vhost``; ``<unchanged password>`` stands in for a kept one."""
    parts = urlsplit(amqp_uri)
    secret = quote(password, safe="") if password else "<unchanged password>"
    return f"amqp://{user_name(name)}:{secret}@{parts.hostname}:{parts.port or 5672}/{quote(vhost, safe='')}"


def vhost_of(amqp_uri: str) -> str:
    """The vhost an AMQP URI names (``/`` when it names none)."""
    return unquote(urlsplit(amqp_uri).path[1:]) or "/"


def admin_uri_for(amqp_uri: str, vhost: str) -> str:
    """``amqp_uri`` (an account with rights in ``vhost``) pointed at ``vhost``: the same broker."""
    return urlunsplit(urlsplit(amqp_uri)._replace(path="/" + quote(vhost, safe="")))


def provision(name: str, scope: tuple[str, ...], personal: bool, serial: int, amqp_uri: str, vhost: str = "/",
              keep_password: bool = False, ttl: timedelta = timedelta(days=365)) -> dict:
    """The broker part and the token of an integrator whose grant ``serial`` is recorded already
    (members-service's ``record_grant``): ``create`` its user in ``vhost`` of the broker of ``amqp_uri``
    (an account that may remove bindings there), then a token for the grant. Returns ``{"user",
    "password" (None when kept), "uri" (``connection_uri``), "token", "expires_at"}``. Raises what
    ``create`` raises. ``verbund integrator`` and members-service's ``POST /integrators`` share it."""
    from verbund import auth

    password = create(name, vhost=vhost, scope=scope, admin_uri=admin_uri_for(amqp_uri, vhost),
                      keep_password=keep_password)
    token = auth.issue("integrator", name, events=scope, personal=personal, ttl=ttl, grant=serial)
    return {"user": user_name(name), "password": password, "uri": connection_uri(amqp_uri, name, password, vhost),
            "token": token, "expires_at": envelope.isoformat(datetime.now(UTC) + ttl)}


def remove(name: str, amqp_uri: str, vhost: str = "/") -> dict:
    """Take an integrator off the broker: delete its user (which takes its permissions and closes its
    connections) and its queues ``integrator.<name>.*`` in ``vhost`` (through ``amqp_uri``, an account
    with rights there), so nothing piles up for it. Returns ``{"user_deleted": bool, "queues": [...]}``;
    a user that is gone already is not an error. Raises RuntimeError when rabbitmqctl fails."""
    user = user_name(name)
    deleted = user in _rabbitmqctl("list_users").split()
    if deleted:
        _rabbitmqctl("delete_user", user)
    listing = _rabbitmqctl("list_queues", "-p", vhost, "name", "--formatter", "json")
    queues = [row["name"] for row in json.loads(listing or "[]") if row["name"].startswith(queue_prefix(name))]
    if queues:
        with Connection(admin_uri_for(amqp_uri, vhost)) as connection:
            channel = connection.channel()
            for queue in queues:
                channel.queue_delete(queue)
    return {"user_deleted": deleted, "queues": queues}


def service_url(service: str) -> str:
    """Where ``service`` (``members``: the key service, which holds integrators' grants;
    ``notifications``: their webhooks) answers: ``MEMBERS_URL``/``NOTIFICATIONS_URL``, else its
    address from the settings (``MEMBERS_HTTP_HOST``, ``MEMBERS_PORT``, ...)."""
    from verbund.settings import Settings

    if os.environ.get(f"{service.upper()}_URL"):
        return os.environ[f"{service.upper()}_URL"].rstrip("/")
    settings = Settings.from_env(service)
    return f"http://{settings.http_host}:{settings.http_port}"


def record_grant(url: str, name: str, scope: tuple[str, ...], personal: bool, timeout: float = 10.0) -> dict:
    """Record the integrator's grant at members-service (``PUT {url}/integrators/{name}/grant`` with an
    admin token signed here for a minute) and return it: ``{"serial", "events", "personal", ...}``.
    Its ``serial`` goes into the tokens' ``grant`` claim; tokens of older serials lose the key
    endpoint and the contact persons. Raises RuntimeError saying why when members-service cannot
    be reached or refuses."""
    import requests

    from verbund import auth

    admin = auth.issue("admin", "verbund-integrator", ttl=timedelta(minutes=1))
    try:
        response = requests.put(f"{url}/integrators/{name}/grant", json={"events": list(scope), "personal": personal},
                                headers={"Authorization": f"Bearer {admin}"}, timeout=timeout)
    except requests.RequestException as exc:
        raise RuntimeError(f"members-service at {url} is not reachable ({exc.__class__.__name__}); "
                           f"set MEMBERS_URL") from None
    if response.status_code != 200:
        raise RuntimeError(f"members-service at {url} refused the grant: {response.status_code} {response.text[:300]}")
    return response.json()


def revoke(url: str, name: str, timeout: float = 60.0) -> dict:
    """Revoke integrator ``name`` at members-service (``POST {url}/integrators/{name}/revoke`` with an admin
    token signed here for a minute), the use case the admin pages call too: its tokens are refused, its
    RabbitMQ user and queues go (on members-service's broker node) and ``integrator.revoked`` makes
    notifications-service disable its webhooks. Returns the revoked grant with ``removed_queues``. Raises
    LookupError when there is no such integrator, RuntimeError saying why when members-service cannot be
    reached or refuses."""
    import requests

    from verbund import auth

    admin = auth.issue("admin", "verbund-integrator", ttl=timedelta(minutes=1))
    try:
        response = requests.post(f"{url}/integrators/{name}/revoke",
                                 headers={"Authorization": f"Bearer {admin}"}, timeout=timeout)
    except requests.RequestException as exc:
        raise RuntimeError(f"members-service at {url} is not reachable ({exc.__class__.__name__}); "
                           f"set MEMBERS_URL") from None
    if response.status_code == 404:
        raise LookupError(f"members-service at {url} knows no integrator {name!r}")
    if response.status_code != 200:
        raise RuntimeError(f"members-service at {url} refused the revocation: {response.status_code} "
                           f"{response.text[:300]}")
    return response.json()


def narrow_webhooks(url: str, name: str, scope: tuple[str, ...], timeout: float = 10.0) -> list[dict]:
    """Bring the integrator's webhook endpoints at notifications-service within ``scope`` after a
    narrowing, as its own token of that scope would change them (``PATCH /webhooks/{id}``): a pattern
    the scope covers stays, one it does not is replaced by the scope patterns inside it (``#`` under
    scope ``event.*`` becomes ``event.*``; ``member.*`` goes), and an endpoint left with nothing is
    disabled. Returns ``[{"id", "before", "after"}]`` (``after`` None: disabled). Raises RuntimeError
    saying why when notifications-service cannot be reached or refuses."""
    import requests

    from verbund import auth
    from verbund.topics import covers

    if is_everything(scope):
        return []
    headers = {"Authorization": f"Bearer {auth.issue('integrator', name, events=scope, ttl=timedelta(minutes=1))}"}
    changed = []
    try:
        listed = requests.get(f"{url}/webhooks", headers=headers, timeout=timeout)
        if listed.status_code != 200:
            raise RuntimeError(f"notifications-service at {url} refused the webhook list: {listed.status_code}")
        for hook in listed.json()["items"]:
            before = hook.get("event_types") or ["#"]
            if all(covers(scope, pattern) for pattern in before):
                continue
            after: list[str] = []
            for pattern in before:
                for kept in [pattern] if covers(scope, pattern) else [s for s in scope if covers((pattern,), s)]:
                    if kept not in after:
                        after.append(kept)
            answer = requests.patch(f"{url}/webhooks/{hook['id']}", headers=headers, timeout=timeout,
                                    json={"event_types": after} if after else {"enabled": False})
            if answer.status_code != 200:
                raise RuntimeError(f"notifications-service at {url} refused to narrow webhook {hook['id']}: "
                                   f"{answer.status_code} {answer.text[:300]}")
            changed.append({"id": hook["id"], "before": before, "after": after or None})
    except requests.RequestException as exc:
        raise RuntimeError(f"notifications-service at {url} is not reachable ({exc.__class__.__name__}); "
                           f"set NOTIFICATIONS_URL") from None
    return changed


def prune_bindings(admin_uri: str, name: str, vhost: str, scope: tuple[str, ...]) -> list[tuple[str, str]]:
    """Unbind the integrator's queues and exchanges from ``verbund.events`` where the binding key is
    outside ``scope`` (RabbitMQ checks the scope on bind only). Returns the removed (name, key) pairs."""
    listing = _rabbitmqctl("list_bindings", "-p", vhost, "source_name", "destination_name", "destination_kind",
                           "routing_key", "--formatter", "json")
    allowed = re.compile(scope_regex(scope))
    stale = [row for row in json.loads(listing or "[]")
             if row["source_name"] == broker.events_exchange.name
             and row["destination_name"].startswith(queue_prefix(name)) and not allowed.search(row["routing_key"])]
    if stale:
        with Connection(admin_uri) as connection:
            channel = connection.channel()
            for row in stale:
                unbind = channel.queue_unbind if row["destination_kind"] == "queue" else channel.exchange_unbind
                unbind(row["destination_name"], broker.events_exchange.name, row["routing_key"])
    return [(row["destination_name"], row["routing_key"]) for row in stale]


def granted_regex(name: str, vhost: str) -> str | None:
    """The read regex of the integrator's topic permission on ``verbund.events`` in ``vhost`` as the
    broker holds it, or ``None`` when it has none (a user made before scopes: every event type)."""
    listing = _rabbitmqctl("list_user_topic_permissions", user_name(name), "--formatter", "json")
    for row in json.loads(listing or "[]"):
        if row["vhost"] == vhost and row["exchange"] == broker.events_exchange.name:
            return row["read"]
    return None


def replay_into(admin_uri: str, name: str, since: datetime, scope: tuple[str, ...] = DEFAULT_SCOPE,
                queue: str = "inbox", idle_timeout: float = 3.0) -> int:
    """Copy the events published since ``since`` that the integrator may read from the replay
    stream into its own queue ``integrator.<name>.<queue>``: the catch-up path of a scoped
    integrator, which may not read the stream itself. Run by an admin (``admin_uri``, whose vhost is
    the integrator's, may read the stream). An event is copied when its type matches ``scope`` (a
    narrowing the admin asks for) *and* the scope the broker holds for the integrator admits it
    (``granted_regex``), so a mistyped ``scope`` cannot widen what it gets. Events arrive in stream
    order, each confirmed by the broker; the integrator deduplicates on the CloudEvent ``id`` as for
    live events. Returns how many were copied; raises ``amqp.exceptions.NotFound`` when the queue does
    not exist, ``RuntimeError`` when there is no such integrator.
    """
    vhost = vhost_of(admin_uri)
    granted = granted_regex(name, vhost)
    allowed = re.compile(granted) if granted is not None else None
    target = queue_prefix(name) + queue
    with Connection(admin_uri) as connection:
        connection.channel().queue_declare(queue=target, passive=True)  # NotFound before anything is read
    publisher = broker.Publisher(admin_uri)
    copied = 0
    try:
        batch: list[broker.Outgoing] = []
        for event in follow(admin_uri, list(scope), since=since, idle_timeout=idle_timeout):
            # An event type is a binding key without wildcards: the granted regex admits it iff it is in scope.
            if allowed is not None and not allowed.search(event["type"]):
                continue
            # The default exchange routes by queue name; mandatory: a missing queue is an error, not a loss.
            batch.append(broker.Outgoing(target, envelope.dumps(event), event["id"], exchange="", mandatory=True))
            if len(batch) >= 100:
                publisher.publish_many(batch)
                copied, batch = copied + len(batch), []
        if batch:
            publisher.publish_many(batch)
            copied += len(batch)
    finally:
        publisher.close()
    return copied


def _rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q ARGS`` on this node; its output, or ``RuntimeError`` saying what failed."""
    try:
        result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeError("rabbitmqctl not found: run this on a RabbitMQ node, as root") from None
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def parse_since(text: str) -> datetime:
    """An ISO time ('2026-11-21T08:00:00Z') or an age ('30m', '2h', '7d')."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def follow(amqp_uri: str, patterns: list[str], since: datetime | None = None, queue_name: str | None = None,
           idle_timeout: float | None = None) -> Iterator[dict]:
    """Yield events as they arrive: live through a queue bound to the patterns
    (``queue_name`` for a durable one of the integrator's own, else a private
    one), or from ``since`` on through the replay stream."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        if since is not None:
            channel.basic_qos(0, 200, False)  # a stream needs a prefetch
            queue = Queue(broker.REPLAY_STREAM, no_declare=True, consumer_arguments={"x-stream-offset": since})
        else:
            bindings = [binding(EXISTING_EXCHANGE, routing_key=p) for p in patterns]
            queue = Queue(queue_name, bindings=bindings, durable=True) if queue_name else \
                Queue(f"tail.{uuid.uuid4().hex[:8]}", bindings=bindings, exclusive=True, auto_delete=True)
        received: list[dict] = []

        def on_message(message):
            event = json.loads(message.body)
            message.ack()
            # A stream starts at the chunk holding `since`: skip what is older, and filter the patterns here.
            if since is not None and (datetime.fromisoformat(event["time"].replace("Z", "+00:00")) < since
                                      or not any(broker.topic_matches(p, event["type"]) for p in patterns)):
                return
            received.append(event)

        with Consumer(channel, queues=[queue], on_message=on_message, accept=None):
            while True:
                try:
                    connection.drain_events(timeout=idle_timeout)
                except TimeoutError:
                    return
                while received:
                    yield received.pop(0)


def describe(event: dict) -> str:
    """One readable line for ``verbund tail``."""
    data = event.get("data", {})
    detail = data.get("profile", {}).get("name") or data.get("event", {}).get("title") or \
        ", ".join(f"{key}={value}" for key, value in list(data.items())[:3] if not isinstance(value, (dict, list)))
    return f"{event['time']}  {event['type']:<24} {event['subject']}  {detail}"
