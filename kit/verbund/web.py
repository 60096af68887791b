"""HTTP entrypoint with JSON in and out, errors as JSON bodies, and auth.

``@api("POST", "/members", roles=("admin", "organizer"))`` declares an
endpoint; the handler gets the request with ``request.principal`` set and
returns a dict or list (200), a ``(status, body)`` pair, or a Response.
Errors map to statuses: a marshmallow ValidationError to 422 with the field
errors, malformed JSON to 400, ``verbund.errors`` to theirs, and
anything unexpected to a 500 that names the correlation id, never a trace.
"""
from __future__ import annotations

import json
import logging
import uuid
from functools import partial
from itertools import accumulate

import eventlet
from eventlet.event import Event
from marshmallow import ValidationError
from nameko.exceptions import ContainerBeingKilled
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from verbund import auth, logs
from verbund.errors import AppError, BadRequest, Forbidden, Unauthorized
from verbund.outages import Unavailable
from verbund.staff import StaffStatus

log = logging.getLogger(__name__)

ANYONE = ("anonymous", *auth.ROLES)
AUTHENTICATED = auth.ROLES
MAX_JSON_BYTES = 1024 * 1024
OUTAGE_RETRY_AFTER_SECONDS = 5  # a 503 for an outage: a database restart or failover takes seconds
MAX_DATABASE_INTEGER = 2**63 - 1
# No API input nests deeper than a few levels; 64 leaves room and keeps every parser,
# validator and serialiser far from Python's recursion limit (~1000 frames).
MAX_JSON_DEPTH = 64
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_STEP = [1 if byte in b"[{" else -1 for byte in range(256)]


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    if body is None:
        return Response(status=status, headers=headers)
    return Response(json.dumps(body, ensure_ascii=False, default=str), status=status,
                    headers=headers, mimetype="application/json")


def error_response(status: int, message: str, **details) -> Response:
    return json_response({"error": message, **details, "correlation_id": logs.correlation_id()}, status)


def if_match(request) -> int | None:
    """The version an ``If-Match`` header asks for, or None when there is none.

    The services send a resource's version as its strong ETag (``"3"``); a weak
    form (``W/"3"``) is read the same (RFC 9110 section 13.1.1).

    Raises ``BadRequest`` (400) when the header is not such an ETag.
    """
    value = request.headers.get("If-Match")
    if not value:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise BadRequest('If-Match must be an ETag this API sent, such as "3"') from None


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (0 for a scalar).

    Found without recursion and in linear time, with C-speed byte operations
    only (a hostile megabyte takes milliseconds): escaped backslashes and
    quotes are dropped, what lies between quotes is dropped, and the depth
    is the highest running sum of the remaining brackets. Malformed text
    gets a number too; the parser refuses it afterwards.
    """
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    brackets = outside_strings.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets), initial=0))


def json_body(request) -> dict:
    """The request's JSON object; 400 if it is not one or nests deeper than
    ``MAX_JSON_DEPTH`` (checked before parsing, since the parser recurses),
    413 if it is larger than the endpoint's limit (``MAX_JSON_BYTES`` by default)."""
    try:
        data = request.get_data(cache=True) or b""
        if json_depth(data) > MAX_JSON_DEPTH:
            raise BadRequest(f"request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels")
        body = json.loads(data)
    except RequestEntityTooLarge:
        raise
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


class JsonWsgiApp(WsgiApp):
    """nameko's WSGI app, with routing errors (404 no such path, 405 wrong
    method with its Allow header) answered in JSON like every other error."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
        except HTTPException as exc:
            response = error_response(exc.code or 400, exc.description or exc.name)
            response.headers.extend(header for header in exc.get_headers() if header[0] == "Allow")
            return response(environ, start_response)
        if any(isinstance(value, int) and abs(value) > MAX_DATABASE_INTEGER for value in values.values()):
            return error_response(404, "no such resource")(environ, start_response)  # no id is that large
        request.path_values = values
        return provider.handle_request(request)(environ, start_response)


class JsonWebServer(WebServer):
    def start(self):
        """As nameko's, but the port is the service's alone: ``eventlet.listen`` sets SO_REUSEPORT by
        default, so a second process given the same port (another service, a second ``verbund up``)
        would bind it too and the kernel would share the connections between the two: half the
        requests answered by the wrong service. Without it the second one fails to start."""
        if not self._starting:
            self._starting = True
            self._sock = eventlet.listen(self.bind_addr, reuse_port=False)
            self._sock.settimeout(None)  # as nameko: https://github.com/celery/kombu/issues/838
            self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
            self._gt = self.container.spawn_managed_thread(self.run)

    def get_wsgi_app(self):
        return JsonWsgiApp(self)


class ApiEndpoint(HttpRequestHandler):
    """``roles``: who may call it. ``body`` and ``query``: marshmallow schema
    classes that the endpoint loads before the handler runs, into
    ``request.body_data`` and ``request.query_data`` (a 422 with the field
    errors, or 400 for a body that is not a JSON object); an empty body is
    loaded as ``{}`` where no body field is required. ``load_body=False``
    leaves a declared body to the handler, for a merge patch that is
    validated only once merged with what is stored (RFC 7396).
    For the OpenAPI document (verbund.openapi) the same schemas, ``responses``
    {status: description or (description, schema)} where a schema is a
    marshmallow class, a kit JSON Schema urn or a dict, and ``errors``:
    further error statuses it answers with."""

    server = JsonWebServer()
    staff_status = StaffStatus()

    def __init__(self, method: str, url: str, roles=AUTHENTICATED, max_body: int = MAX_JSON_BYTES, *,
                 body=None, query=None, responses: dict | None = None, errors: tuple = (), load_body: bool = True,
                 **kwargs):
        self.roles = tuple(roles)
        self.max_body = max_body
        self.body, self.query, self.errors = body, query, tuple(errors)
        self.load_body = load_body and body is not None and not isinstance(body, dict)
        self.responses = responses or {200: "OK"}
        # Bad input is the caller's error: nameko logs these as warnings, not with a traceback.
        kwargs.setdefault("expected_exceptions", (AppError, ValidationError))
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        request.shallow = False
        request.max_content_length = self.max_body
        correlation_id = request.headers.get("X-Correlation-Id") or str(uuid.uuid4())
        logs.set_correlation_id(correlation_id)
        try:
            request.principal = self._authorize(request)
            if request.principal.staff_id:  # a staff account's token: refused once the account is revoked
                self.staff_status.ensure_active(request.principal.staff_id, self, {"correlation_id": correlation_id})
            elif request.principal.role == "integrator" and request.principal.grant is not None:
                self.staff_status.ensure_grant(request.principal.subject, self, {"correlation_id": correlation_id})
            self._load_input(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            self.container.spawn_worker(self, args, kwargs, context_data={"correlation_id": correlation_id},
                                        handle_result=partial(self.handle_result, event))
            result = event.wait()
            response = self.response_from_result(result)
        except Exception as exc:
            response = self.response_from_exception(exc)
        response.headers["X-Correlation-Id"] = correlation_id
        return response

    def _authorize(self, request) -> auth.Principal:
        try:
            principal = auth.from_header(request.headers.get("Authorization"))
        except auth.InvalidToken as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        if principal.role not in self.roles:
            if principal is auth.ANONYMOUS:
                raise Unauthorized("this endpoint needs a bearer token")
            raise Forbidden(f"role {principal.role} may not {self.method} {self.url}")
        return principal

    def _load_input(self, request) -> None:
        request.query_data = self.query().load(request.args.to_dict()) if self.query is not None else None
        request.body_data = None
        if self.load_body:
            schema = self.body()
            empty_allowed = not any(field.required for field in schema.fields.values())
            request.body_data = schema.load({} if empty_allowed and not request.get_data() else json_body(request))

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        if isinstance(result, tuple):
            status, body = result
            return json_response(body, status)
        return json_response(result)

    def response_from_exception(self, exc):
        if isinstance(exc, AppError):
            response = error_response(exc.status, exc.message, **exc.details)
            if getattr(exc, "retry_after", None):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        if isinstance(exc, ValidationError):
            return error_response(422, "validation failed", fields=exc.messages)
        if isinstance(exc, RequestEntityTooLarge):
            return error_response(413, f"request body larger than {self.max_body} bytes")
        if isinstance(exc, HTTPException):
            return error_response(exc.code or 400, exc.description or exc.name)
        if isinstance(exc, (OperationalError, InterfaceError, Unavailable)):
            # An outage (verbund.outages), not a fault of the request: the client may simply try again.
            log.warning("%s %s met an outage: %s", self.method, self.url, str(exc)[:500])
            response = error_response(503, "the service cannot reach its database or a service it needs right "
                                           "now; please try again in a few seconds")
            response.headers["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
            return response
        if isinstance(exc, ContainerBeingKilled):
            # nameko is stopping the service (a thread of it failed): the request never ran, so nothing
            # is half done; the restarted service or another instance takes it.
            log.warning("%s %s refused: the service is stopping", self.method, self.url)
            response = error_response(503, "the service is restarting; please try again in a few seconds")
            response.headers["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
            return response
        log.error("unhandled error in %s %s", self.method, self.url, exc_info=exc)
        return error_response(500, "internal error")


api = ApiEndpoint.decorator
