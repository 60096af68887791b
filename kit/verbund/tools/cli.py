"""The ``verbund`` command.

  verbund up [SERVICE ...]     migrate and start services (all by default), print where they listen;
                               --instances matching=2,notifications=2 (or INSTANCES, <SERVICE>_INSTANCES)
                               starts several processes of a service (needs PostgreSQL: DATABASE_URL)
  verbund run SERVICE          migrate and run one service in the foreground
  verbund migrate SERVICE      upgrade a service's database to the newest schema
  verbund declare              declare the exchange and every subscriber queue
  verbund definitions          print that topology as a RabbitMQ definitions document
  verbund asyncapi             write docs/asyncapi.yaml from the catalogue and the event schemas
  verbund openapi              write docs/openapi/<service>.json from the services' endpoints
  verbund integrator NAME      create or update an integrator's read-only RabbitMQ user and token (--events scope);
                               --revoke takes it back (tokens, RabbitMQ user, queues, webhooks)
  verbund replay NAME          copy a scoped integrator's events from the replay stream into its queue
  verbund tail [PATTERN ...]   print live events readably (--since to replay)
  verbund token ROLE ...       issue a bearer token (admin's command)
  verbund staff add EMAIL ...  create a staff account (the first admin) and mail its invitation
"""
from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import warnings

# Every service of the platform, in start order; `verbund up` starts those installed.
ALL_SERVICES = ("members", "events", "matching", "notifications", "meetings")
SERVICES = tuple(name for name in ALL_SERVICES if importlib.util.find_spec(name) is not None)
EVENTS_HELP = ("an integrator's scope: comma-separated topic patterns such as 'event.*,registration.*' "
               "(default: every event type)")
PERSONAL_HELP = "an integrator may see personal fields (default: no personal data)"
BROKER_HELP = "RabbitMQ is not reachable at {uri}: {error}\nStart it with: rabbitmq-server -detached  (or set AMQP_URI)"
SQLITE_INSTANCES_HELP = (
    "{service}: {count} instances need a database they can share, and its database is SQLite ({url}). "
    "Set {upper}_DATABASE_URL (or DATABASE_URL) to PostgreSQL, e.g. postgresql://postgres@127.0.0.1:5432/{service}: "
    "the documented choice for several instances (their outbox relays take turns through a PostgreSQL "
    "advisory lock; SQLite lets one process write at a time, and two relays on one file would publish "
    "the same events twice). Or start one instance.")


def _broker_error(amqp_uri: str) -> str | None:
    from kombu import Connection

    try:
        with Connection(amqp_uri, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


def _service_class(service: str):
    module = importlib.import_module(f"{service}.service")
    for value in vars(module).values():
        if isinstance(value, type) and getattr(value, "name", None) == service:
            return value
    raise SystemExit(f"{service}.service has no class with name = {service!r}")


def cmd_run(args) -> int:
    # eventlet warns that it is in bugfix mode on every start; DESIGN.md knows, the console need not.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    # dnspython (eventlet's green DNS) imports DSA keys it never uses here: 16 lines on every start
    warnings.filterwarnings("ignore", message=r"DSA is deprecated", module=r"dns\.")
    import eventlet

    eventlet.monkey_patch()  # before anything opens a socket; nameko run does the same

    from verbund import logs, migrations
    from verbund.settings import Settings

    settings = Settings.from_env(args.service)
    # An instance's name (`verbund up`: matching#2) on a readable console; JSON lines keep the service's.
    logs.configure(args.name if args.name and settings.log_format == "text" else args.service, settings.log_level,
                   settings.log_format)
    if settings.database_url.startswith("postgresql"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()  # psycopg2 waits cooperatively instead of blocking the hub
    error = _broker_error(settings.amqp_uri)
    if error:
        print(BROKER_HELP.format(uri=settings.amqp_uri, error=error), file=sys.stderr)
        return 2
    name = args.name or args.service + "-service"
    taken = f"{name}: port {settings.http_port} is taken: another program listens there (a Verbund started " \
            f"before?). Stop it, or give this one another port ({args.service.upper()}_PORT)."
    if _port_taken(settings.http_host, settings.http_port):  # before the migrations touch its database
        print(taken, file=sys.stderr)
        return 2
    migrations.upgrade(args.service, settings.database_url)

    print(f"{name} listening on http://{settings.http_host}:{settings.http_port}", flush=True)
    try:
        _run_until_stopped(_service_class(args.service), settings.nameko_config())
    except OSError as exc:  # taken between the check and the start
        if exc.errno != errno.EADDRINUSE:
            raise
        print(taken, file=sys.stderr)
        return 2
    return 0


def _port_taken(host: str, port: int) -> bool:
    """Whether another socket is bound to ``host:port`` (the service binds it without SO_REUSEPORT,
    so it would fail; said before nameko starts, which would print a traceback for it)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as eventlet.listen: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _run_until_stopped(service_cls, config: dict) -> None:
    """nameko's ``run``, except that a second SIGTERM or Ctrl-C does not start a
    second shutdown (nameko's timers fail on that and the process hangs)."""
    import eventlet
    from nameko.runners import ServiceRunner

    runner = ServiceRunner(config)
    runner.add_service(service_cls)
    stopping = []

    def shutdown(signum, frame):
        if not stopping:
            stopping.append(signum)
            eventlet.spawn_n(runner.stop)  # signal handlers cannot use eventlet primitives themselves

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    waiter = eventlet.spawn(runner.wait)
    while True:
        try:
            waiter.wait()
            return
        except OSError as exc:  # a signal interrupted the hub's wait
            if exc.errno != errno.EINTR:
                raise


def _wait_ready(urls: dict[str, str], processes: dict, children: _Children, timeout: float = 120) -> bool:
    import requests

    deadline = time.monotonic() + timeout
    waiting = dict(urls)
    while waiting and time.monotonic() < deadline and not children.stopping:
        if any(process.poll() is not None for process in processes.values()):
            return False
        for service, url in list(waiting.items()):
            try:
                if requests.get(f"{url}/ready", timeout=1).status_code == 200:
                    del waiting[service]
            except requests.RequestException:
                pass
        time.sleep(0.3)
    return not waiting and not children.stopping


# How long `verbund up` waits for its children to stop before it kills them: matching ends its
# model's warm-up first, which takes tens of seconds on a busy machine.
STOP_GRACE_SECONDS = 60


class _Children:
    """The processes ``verbund up`` starts, and its SIGINT/SIGTERM handling, installed before the
    first child: a signal at any moment terminates every child started so far, and nothing is
    started after it (``spawn`` returns None). A second signal kills them."""

    def __init__(self):
        self.processes: dict[str, subprocess.Popen] = {}
        self.stopping: list[int] = []  # the signals received
        signal.signal(signal.SIGTERM, self._signalled)
        signal.signal(signal.SIGINT, self._signalled)

    def _signalled(self, signum, frame):
        self.stopping.append(signum)
        if len(self.stopping) == 1:
            print(f"stopping ({signal.Signals(signum).name}) ...", file=sys.stderr, flush=True)
        self.terminate(kill=len(self.stopping) > 1)

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen | None:
        """Start ``argv`` as ``name``; None once a stop was asked for."""
        if self.stopping:
            return None
        process = self.processes[name] = subprocess.Popen(argv, env=env)
        if self.stopping:  # the signal came while it was being started: its handler did not see it
            process.terminate()
            return None
        return process

    def terminate(self, kill: bool = False) -> None:
        for process in list(self.processes.values()):
            if process.poll() is None:
                process.kill() if kill else process.terminate()

    def stop(self) -> bool:
        """Terminate every child, wait up to STOP_GRACE_SECONDS for all, kill those still running.
        True if all stopped within the grace period."""
        self.terminate()
        deadline, graceful = time.monotonic() + STOP_GRACE_SECONDS, True
        for name, process in list(self.processes.items()):
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop within {STOP_GRACE_SECONDS} s: killed", file=sys.stderr, flush=True)
                process.kill()
                process.wait()
                graceful = False
        return graceful


def parse_instances(text: str | None, services: list[str] | tuple[str, ...]) -> dict[str, int]:
    """``--instances``: ``"matching=2,notifications=2"`` as ``{"matching": 2, "notifications": 2}``.
    Raises ValueError saying what is wrong: not SERVICE=COUNT with COUNT in ASCII digits, a service not
    among ``services`` (those started) or named twice, a count outside 1..``MAX_INSTANCES``."""
    from verbund.settings import MAX_INSTANCES, instance_count

    counts: dict[str, int] = {}
    for part in filter(None, (item.strip() for item in (text or "").split(","))):
        service, _, count = part.partition("=")
        service = service.strip().removesuffix("-service")
        if not (count.strip().isascii() and count.strip().isdigit()):
            raise ValueError(f"--instances takes SERVICE=COUNT, e.g. matching=2, not {part!r}")
        if service not in services:
            raise ValueError(f"--instances names {service!r}, which is not started here ({', '.join(services)})")
        if service in counts:
            raise ValueError(f"--instances names {service!r} twice; give each service once")
        try:
            counts[service] = instance_count(count)
        except ValueError:
            raise ValueError(f"--instances {service}={count.strip()}: from 1 to {MAX_INSTANCES} instances "
                             f"of a service") from None
    return counts


def instance_plan(services, option: str | None) -> dict[str, int]:
    """How many processes of each service ``verbund up`` starts: ``--instances`` where it names the
    service, else the setting (``<SERVICE>_INSTANCES``, ``INSTANCES``; 1 by default). Raises ValueError
    (a bad option, a bad setting, or several instances of a service on SQLite, with what to do)."""
    from environs import EnvError

    from verbund.settings import Settings, instances

    given = parse_instances(option, services)
    plan = {}
    for service in services:
        try:
            plan[service] = given.get(service) or instances(service)
        except EnvError as exc:
            raise ValueError(str(exc)) from None
        url = Settings.from_env(service).database_url
        if plan[service] > 1 and not url.startswith("postgresql"):
            raise ValueError(SQLITE_INSTANCES_HELP.format(service=service, count=plan[service], url=url,
                                                          upper=service.upper()))
    return plan


def address_width(plan: dict[str, int]) -> int:
    """The width of the name column in ``verbund up``'s address list (``plan``: processes per service, as
    ``instance_plan`` gives it): the longest name it shows (notifications#1, matching#12, portal), so that
    the addresses line up. A service's companions (notifications' mail catcher) have shorter names."""
    names = ["portal"] + [f"{service}#{count}" if count > 1 else service for service, count in plan.items()]
    return max(len(name) for name in names)


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def cmd_up(args) -> int:
    from verbund.settings import DEFAULT_AMQP_URI, Settings, env

    children = _Children()  # from here on a signal stops whatever was started, at any moment
    unknown = set(args.services) - set(SERVICES)
    if unknown:
        print(f"unknown service(s): {', '.join(sorted(unknown))}; known: {', '.join(SERVICES)}", file=sys.stderr)
        return 2
    try:
        plan = instance_plan(args.services or SERVICES, args.instances)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    error = _broker_error(env("AMQP_URI", DEFAULT_AMQP_URI))
    if error:
        print(BROKER_HELP.format(uri=env("AMQP_URI", DEFAULT_AMQP_URI), error=error), file=sys.stderr)
        return 2
    # The children write to this console: readable lines, and none of the deprecation notices
    # that dnspython (through eventlet) prints about DSA keys it never uses here.
    os.environ.setdefault("LOG_FORMAT", "text")
    os.environ.setdefault("PYTHONWARNINGS", "ignore:DSA is deprecated")
    processes, urls = children.processes, {}
    services = args.services or SERVICES
    width = address_width(plan)
    portal = None
    if not args.services:  # the whole platform: with the portal, whose address the closing box gives
        portal = _start_portal(children, width)
    # The first instance of each service on its port, migrating its database; further instances (each
    # with a port of its own, see README "Several instances") once the first is ready.
    later, addresses = [], {}  # addresses: each service's first instance, where clients and the portal go
    for service in services:
        settings = Settings.from_env(service)
        name = service if plan[service] == 1 else f"{service}#1"
        if not children.spawn(name, [sys.executable, "-m", "verbund.tools.cli", "run", service]
                              + (["--name", name] if name != service else [])):
            break
        urls[name] = addresses[service] = f"http://{settings.http_host}:{settings.http_port}"
        print(f"  {name:<{width}} {urls[name]}   (database {settings.database_url})", flush=True)
        later += [(service, settings, number) for number in range(2, plan[service] + 1)]
    for service in services:
        if children.stopping:
            break
        # What a service wants beside it in development (notifications: a mail catcher), by its own hook.
        with warnings.catch_warnings():  # importing the service class here is for the hook, not to run it
            warnings.simplefilter("ignore")
            companions = getattr(_service_class(service), "companions", lambda: [])()
        for companion in companions:
            if children.spawn(companion.name, companion.argv):
                print(f"  {companion.name:<{width}} {companion.address}", flush=True)
    sign_in = None
    ready = not children.stopping and _wait_ready(urls, processes, children)
    if ready and later:
        more = {}
        for service, settings, number in later:
            name, port = f"{service}#{number}", _free_port(settings.http_host)
            environment = {**os.environ, f"{service.upper()}_PORT": str(port)}
            if not children.spawn(name, [sys.executable, "-m", "verbund.tools.cli", "run", service, "--name", name],
                                  env=environment):
                break
            more[name] = f"http://{settings.http_host}:{port}"
            print(f"  {name:<{width}} {more[name]}   (database {settings.database_url})", flush=True)
        ready = _wait_ready(more, processes, children)
        urls.update(more)
    if ready:
        print("all services ready", flush=True)
        if args.demo:
            from verbund.tools import demo

            try:
                for line in demo.seed(addresses):
                    print(line, flush=True)
                data = demo.load()
                sign_in = [("a demo member", data["members"][0]["contact"]["email"])] + [
                    (f"the demo {account['role']}", account["email"]) for account in data.get("staff", [])]
            except Exception as exc:  # the platform runs on; the demo is a courtesy
                print(f"demo data not seeded: {exc}", file=sys.stderr)
    elif not children.stopping:
        print("not every service became ready; see the log lines above", file=sys.stderr)
    if not children.stopping:
        print(_closing_box(portal, sign_in, "notifications" in addresses), flush=True)
    while not children.stopping and all(process.poll() is None for process in processes.values()):
        time.sleep(0.5)
    graceful = children.stop()  # one has ended, or a signal asked to stop: stop the others
    if children.stopping:
        return 0 if graceful else 1
    failed = [name for name, process in processes.items() if process.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


PORTAL_MODULE = "verbund_portal"


def _closing_box(portal: str | None, sign_in: list[tuple[str, str]] | None, mails: bool) -> str:
    """The last lines of ``verbund up``, framed so they stand out from the services' logs: the
    portal's address, then how to sign in, then where the sign-in link arrives, then how to stop."""
    from verbund.settings import data_dir

    lines = []
    if portal:
        lines.append(f"Open the portal:  {portal}")
    if portal and sign_in:
        lines.append("Sign in with the demo e-mail of")
        lines += [f"  {who + ':':<20} {email}" for who, email in sign_in]
    if portal and mails:
        lines.append(f"The sign-in link arrives as a mail (.eml file) in {data_dir() / 'mail'}")
    lines.append("Press Ctrl-C to stop.")
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join(["", rule, *(f"| {line:<{width}} |" for line in lines), rule])


def _start_portal(children: _Children, width: int) -> str | None:
    """Start the members' web portal beside the services (when installed); its address also closes
    the output (``_closing_box``). Returns the address, or None without the portal (or when a stop
    was asked for)."""
    if importlib.util.find_spec(PORTAL_MODULE) is None:
        return None
    from verbund_portal.config import PortalConfig

    config = PortalConfig.from_env()
    if not children.spawn("portal", [sys.executable, "-m", PORTAL_MODULE]):
        return None
    print(f"  {'portal':<{width}} {config.portal_url}", flush=True)
    return config.portal_url


def cmd_migrate(args) -> int:
    from verbund import migrations
    from verbund.settings import Settings

    settings = Settings.from_env(args.service)
    migrations.upgrade(args.service, settings.database_url)
    print(f"{args.service}: database at head ({settings.database_url})")
    return 0


def cmd_declare(args) -> int:
    from kombu import Connection

    from verbund.broker import declare_topology
    from verbund.settings import DEFAULT_AMQP_URI, env

    with Connection(env("AMQP_URI", DEFAULT_AMQP_URI)) as connection:
        declare_topology(connection)
    print("exchange and subscriber queues declared")
    return 0


def cmd_definitions(args) -> int:
    import json

    from verbund.broker import definitions
    from verbund.settings import Settings

    document = definitions(Settings.from_env("any").retry_delays_ms)
    print(json.dumps(document, indent=2))
    return 0


def cmd_asyncapi(args) -> int:
    from pathlib import Path

    from verbund.asyncapi import render

    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


def cmd_integrator(args) -> int:
    from datetime import timedelta

    from amqp.exceptions import AMQPError
    from kombu.exceptions import KombuError

    from verbund.settings import DEFAULT_AMQP_URI, env
    from verbund.tools import integrators

    amqp_uri = env("AMQP_URI", DEFAULT_AMQP_URI)
    if args.revoke:
        return _revoke_integrator(args)
    try:
        scope = integrators.parse_scope(args.events)
        if not integrators.NAME.match(args.name):
            raise ValueError("an integrator name is 2-41 lowercase letters, digits or dashes")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from verbund.settings import NoAuthSecret, existing_auth_secret
    try:
        existing_auth_secret()  # the tokens below are signed with it; a new one would be void everywhere
    except NoAuthSecret as exc:
        print(f"error: nothing changed: {exc}", file=sys.stderr)
        return 1
    try:  # the grant first: the old tokens lose personal data even if the broker part fails below
        grant = integrators.record_grant(integrators.service_url("members"), args.name, scope, args.personal)
    except RuntimeError as exc:
        print(f"error: nothing changed, the grant could not be recorded: {exc}", file=sys.stderr)
        return 1
    try:  # the same code as members-service's POST /integrators (the admin pages of the portal)
        made = integrators.provision(args.name, scope, args.personal, grant["serial"], amqp_uri, vhost=args.vhost,
                                     keep_password=args.keep_password, ttl=timedelta(days=args.days))
    except (ValueError, RuntimeError) as exc:
        print(f"error: grant {grant['serial']} recorded (older tokens are void), but the broker part failed: {exc}; "
              f"run the command again", file=sys.stderr)
        return 2
    except (OSError, AMQPError, KombuError) as exc:  # pruning old bindings: the rights are set already
        print(f"error: scope set and password unchanged, but bindings outside the scope could not be removed "
              f"through AMQP_URI (vhost {args.vhost}): {exc}", file=sys.stderr)
        return 1
    user = made["user"]
    replay = "and the replay stream verbund.replay" if integrators.is_everything(scope) else \
        "(not the replay stream, which holds every type: an admin catches it up with `verbund replay`)"
    print(f"user {user} may read queues {integrators.queue_prefix(args.name)}* bound to verbund.events with "
          f"binding keys within {','.join(scope)} {replay}; it cannot publish.")
    print(f"personal data: {'may be decrypted (key service)' if args.personal else 'none'}; grant "
          f"{grant['serial']} recorded at members-service: tokens printed before no longer read personal data")
    print(f"AMQP_URI={made['uri']}")
    print(f"TOKEN={made['token']}")
    try:  # last: webhooks are what an integrator made with its token; they follow a narrowed scope
        changed = integrators.narrow_webhooks(integrators.service_url("notifications"), args.name, scope)
    except RuntimeError as exc:
        print(f"error: the integrator's webhooks could not be brought within the scope: {exc}; run the command "
              f"again with --keep-password", file=sys.stderr)
        return 1
    for hook in changed:
        after = ",".join(hook["after"]) if hook["after"] else "disabled (nothing left in scope)"
        print(f"webhook {hook['id']}: {','.join(hook['before'])} -> {after}")
    return 0


def _revoke_integrator(args) -> int:
    """``verbund integrator NAME --revoke``: members-service's revocation (``integrators.revoke``)."""
    from verbund.settings import NoAuthSecret, existing_auth_secret
    from verbund.tools import integrators

    if args.events is not None or args.personal or args.keep_password:
        print("error: --revoke takes no --events, --personal or --keep-password", file=sys.stderr)
        return 2
    if not integrators.NAME.match(args.name):
        print("error: an integrator name is 2-41 lowercase letters, digits or dashes", file=sys.stderr)
        return 2
    try:
        existing_auth_secret()  # the admin token below is signed with it
        revoked = integrators.revoke(integrators.service_url("members"), args.name)
    except (NoAuthSecret, LookupError, RuntimeError) as exc:
        print(f"error: nothing changed: {exc}", file=sys.stderr)
        return 1
    queues = ", ".join(revoked.get("removed_queues") or []) or "none"
    print(f"integrator {args.name} revoked at {revoked['revoked_at']}: its tokens are refused, RabbitMQ user "
          f"{integrators.user_name(args.name)} deleted, queues removed: {queues}; notifications-service "
          f"disables its webhooks when it consumes integrator.revoked")
    return 0


def cmd_replay(args) -> int:
    from amqp.exceptions import AMQPError, ChannelError
    from kombu.exceptions import KombuError

    from verbund.settings import DEFAULT_AMQP_URI, env
    from verbund.tools import integrators

    try:
        scope = integrators.parse_scope(args.events)
        since = integrators.parse_since(args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        copied = integrators.replay_into(env("AMQP_URI", DEFAULT_AMQP_URI), args.name, since, scope,
                                         queue=args.queue, idle_timeout=args.idle)
    except ChannelError as exc:
        print(f"error: {exc} (does queue {integrators.queue_prefix(args.name)}{args.queue} exist?)", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, AMQPError, KombuError) as exc:
        print(f"error: the broker at AMQP_URI: {exc}", file=sys.stderr)
        return 1
    print(f"copied {copied} event(s) within the integrator's scope into "
          f"{integrators.queue_prefix(args.name)}{args.queue}")
    return 0


def cmd_tail(args) -> int:
    from verbund.settings import DEFAULT_AMQP_URI, env
    from verbund.tools import integrators

    since = integrators.parse_since(args.since) if args.since else None
    try:
        for event in integrators.follow(env("AMQP_URI", DEFAULT_AMQP_URI), args.patterns or ["#"],
                                        since=since, idle_timeout=args.idle):
            print(json.dumps(event, ensure_ascii=False) if args.json else integrators.describe(event), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_openapi(args) -> int:
    from pathlib import Path

    from verbund.openapi import document

    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        path = folder / f"{service}.json"
        path.write_text(json.dumps(document(_service_class(service)), indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path}")
    return 0


def cmd_token(args) -> int:
    from datetime import timedelta

    from verbund import auth
    from verbund.settings import NoAuthSecret, existing_auth_secret
    from verbund.tools import integrators

    if args.personal:
        # Personal data needs a grant recorded at members-service; a bare token's claim would be void.
        print("error: --personal needs a recorded grant: use `verbund integrator NAME --personal`, "
              "which records it and prints the token", file=sys.stderr)
        return 2
    try:
        events = integrators.parse_scope(args.events) if args.events is not None else None
        secret = existing_auth_secret()
        print(auth.issue(args.role, args.subject, member_id=args.member_id, association=args.association,
                         ttl=timedelta(days=args.days), events=events, secret=secret))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NoAuthSecret as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def add_staff(url: str, body: dict, secret: str, timeout: float = 10.0) -> dict:
    """Create a staff account at members-service (``POST {url}/staff`` with an admin token signed with
    the platform's ``secret`` for a minute) and return it; members-service mails the invitation.
    Raises RuntimeError saying why when members-service cannot be reached or refuses."""
    from datetime import timedelta

    import requests

    from verbund import auth

    admin = auth.issue("admin", "verbund-staff", ttl=timedelta(minutes=1), secret=secret)
    try:
        response = requests.post(f"{url}/staff", json=body, headers={"Authorization": f"Bearer {admin}"},
                                 timeout=timeout)
    except requests.RequestException as exc:
        raise RuntimeError(f"members-service at {url} is not reachable ({exc.__class__.__name__}); "
                           f"start the platform (make run) or set MEMBERS_URL") from None
    if response.status_code != 201:
        try:
            detail = response.json()
            reason = detail.get("error", "") + (f" {detail['fields']}" if detail.get("fields") else "")
        except ValueError:
            reason = response.text[:300]
        raise RuntimeError(f"members-service refused: {response.status_code} {reason}")
    return response.json()


def cmd_staff(args) -> int:
    from verbund.settings import NoAuthSecret, existing_auth_secret
    from verbund.tools import integrators

    try:
        secret = existing_auth_secret()  # a token signed with a new secret would be refused by the platform
    except NoAuthSecret as exc:
        print(f"error: nothing changed: {exc}", file=sys.stderr)
        return 1
    body = {"email": args.email, "name": args.name, "role": args.role, "language": args.language}
    if args.association:
        body["association"] = args.association
    try:
        account = add_staff(integrators.service_url("members"), body, secret)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    place = f" of {account['association']}" if account.get("association") else ""
    print(f"{account['role']}{place} {account['name']} <{account['email']}> created (id {account['id']}); "
          f"an invitation with a sign-in link is on its way. Later sign-ins: ask for a link on the portal's "
          f"sign-in page with this address.")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="verbund", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = root.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="migrate and start services")
    up.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)}")
    up.add_argument("--demo", action="store_true", help="seed demo members and joint events, say where to look")
    up.add_argument("--instances", metavar="SERVICE=N,...",
                    help="start N processes of a service, e.g. matching=2,notifications=2 (default: INSTANCES, "
                         "<SERVICE>_INSTANCES or 1); several need PostgreSQL (DATABASE_URL)")
    up.set_defaults(func=cmd_up)
    run = commands.add_parser("run", help="migrate and run one service")
    run.add_argument("service", help=f"a service package: {', '.join(SERVICES)}")
    run.add_argument("--name", help="what the console calls this process (verbund up: matching#2)")
    run.set_defaults(func=cmd_run)
    migrate = commands.add_parser("migrate", help="upgrade a service's database")
    migrate.add_argument("service", help=f"a service package: {', '.join(SERVICES)}")
    migrate.set_defaults(func=cmd_migrate)
    commands.add_parser("declare", help="declare exchange and queues").set_defaults(func=cmd_declare)
    commands.add_parser("definitions", help="print the topology as RabbitMQ definitions JSON").set_defaults(
        func=cmd_definitions)
    asyncapi = commands.add_parser("asyncapi", help="write the AsyncAPI document of the event contract")
    asyncapi.add_argument("--output", default="docs/asyncapi.yaml")
    asyncapi.set_defaults(func=cmd_asyncapi)
    integrator = commands.add_parser("integrator", help="create an integrator's read-only RabbitMQ user")
    integrator.add_argument("name", help="e.g. crm-sync (lowercase letters, digits, dashes)")
    integrator.add_argument("--vhost", default="/")
    integrator.add_argument("--events", help=EVENTS_HELP)
    integrator.add_argument("--personal", action="store_true", help=PERSONAL_HELP)
    integrator.add_argument("--days", type=int, default=365, help="validity of the printed token in days (365)")
    integrator.add_argument("--revoke", action="store_true",
                            help="revoke it: tokens refused, RabbitMQ user and queues removed, webhooks disabled "
                                 "(at members-service, as the admin pages do)")
    integrator.add_argument("--keep-password", action="store_true",
                            help="an existing user keeps its password (only the scope changes)")
    integrator.set_defaults(func=cmd_integrator)
    replay = commands.add_parser("replay", help="copy a scoped integrator's events from the replay stream "
                                                "into its queue")
    replay.add_argument("name", help="the integrator's name")
    replay.add_argument("--events", help="only these event types (default: all its scope admits; "
                                         "the scope the broker holds for it always applies)")
    replay.add_argument("--since", required=True, help="ISO 8601 or an age such as 30m, 2h, 7d")
    replay.add_argument("--queue", default="inbox", help="its queue integrator.NAME.QUEUE (default: inbox)")
    replay.add_argument("--idle", type=float, default=3.0, help="seconds without an event that end the copy")
    replay.set_defaults(func=cmd_replay)
    tail = commands.add_parser("tail", help="print live events readably")
    tail.add_argument("patterns", nargs="*", help="routing key patterns, e.g. 'member.*' 'event.#' (default: all)")
    tail.add_argument("--since", help="replay from a time: ISO 8601 or an age such as 30m, 2h, 7d")
    tail.add_argument("--json", action="store_true", help="print whole CloudEvents, one per line")
    tail.add_argument("--idle", type=float, help="stop after this many seconds without an event")
    tail.set_defaults(func=cmd_tail)
    openapi = commands.add_parser("openapi", help="write the OpenAPI documents of the installed services")
    openapi.add_argument("--output", default="docs/openapi")
    openapi.set_defaults(func=cmd_openapi)
    token = commands.add_parser("token", help="issue a bearer token")
    token.add_argument("role", choices=["admin", "organizer", "member", "integrator"])
    token.add_argument("--subject", default="cli", help="who the token is for (default: cli)")
    token.add_argument("--member-id", help="for a member token: the member's id")
    token.add_argument("--association", help="for an organizer token: the association")
    token.add_argument("--days", type=int, default=30, help="validity in days (default: 30)")
    token.add_argument("--events", help=EVENTS_HELP)
    token.add_argument("--personal", action="store_true",
                       help="refused here: personal data needs a grant, use `verbund integrator NAME --personal`")
    token.set_defaults(func=cmd_token)
    staff = commands.add_parser("staff", help="staff accounts (organizers, admins)")
    staff_commands = staff.add_subparsers(dest="staff_command", required=True)
    staff_add = staff_commands.add_parser("add", help="create a staff account, e.g. the first admin, and mail "
                                                      "its invitation (needs the platform running and its secret)")
    staff_add.add_argument("email", help="the person's e-mail address: they sign in by a link sent there")
    staff_add.add_argument("--name", required=True, help="the person's name, as the portal shows it")
    staff_add.add_argument("--role", choices=["admin", "organizer"], default="admin")
    staff_add.add_argument("--association",
                           help="for an organizer: automotive-cluster, it-cluster or logistics-network")
    staff_add.add_argument("--language", choices=["de", "en"], default="de", help="of the mails (default: de)")
    staff_add.set_defaults(func=cmd_staff)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
