"""Calls to the services' HTTP APIs with the signed-in member's own bearer token, so that the
services' authorization stays the only authority. The portal has no database of its own.

Every call returns the decoded JSON (or raw bytes with ``raw=True``) or raises:
``ServiceDown`` (not reachable, timed out, 5xx: the friendly error page), ``SessionExpired``
(401: sign in again) or ``ApiError`` (another 4xx, with the service's message and field errors).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import requests


class ServiceDown(Exception):
    """A service did not answer usefully (connection refused, timeout, 5xx)."""

    def __init__(self, service: str, detail: str = "", body: dict | None = None):
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.body = body or {}  # a 5xx's JSON answer (a /ready that is not ready says why)


class SessionExpired(Exception):
    """The service refused the token (401): it expired or was never valid; ``revoked`` when the
    service said the staff account was revoked (verbund.staff), so the person is told so."""

    def __init__(self, revoked: bool = False):
        super().__init__("revoked" if revoked else "expired")
        self.revoked = revoked


@dataclass
class ApiError(Exception):
    """A 4xx answer: ``status``, the service's ``message`` and its ``fields`` (422 field errors,
    possibly nested: ``{"region": {"postcode": ["..."]}}``); ``retry_after`` in seconds for 429;
    ``body`` the whole answer (meetings-service's 409 names the ``free_slots``); ``language`` the
    answer's Content-Language when the service wrote its messages for people in that language
    (members-service's import refusals), so the portal may show them as they are."""
    status: int
    message: str
    fields: dict = field(default_factory=dict)
    retry_after: int | None = None
    body: dict = field(default_factory=dict)
    language: str | None = None

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class Services:
    """The services' APIs, as one member (``token``) or anonymously (``token=None``)."""

    def __init__(self, urls: dict[str, str], token: str | None, timeout: float = 10.0,
                 language: str | None = None, client_ip: str | None = None):
        self.urls = urls
        self.token = token
        self.timeout = timeout
        self.language = language
        self.client_ip = client_ip
        self.http = requests.Session()

    def call(self, method: str, service: str, path: str, *, json=None, params=None, raw: bool = False,
             data: bytes | None = None, content_type: str | None = None):
        """One call; ``data`` with ``content_type`` sends a file as it is (a member list to import)."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.language:
            headers["Accept-Language"] = self.language
        if self.client_ip:  # members-service rate-limits sign-in requests per client
            headers["X-Forwarded-For"] = self.client_ip
        try:
            response = self.http.request(method, f"{self.urls[service]}{path}", json=json, params=params,
                                         data=data, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceDown(service, type(exc).__name__) from exc
        if response.status_code >= 500:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise ServiceDown(service, f"{response.status_code}", body if isinstance(body, dict) else None)
        if response.status_code == 401:
            try:
                said = str(response.json().get("error") or "")
            except (ValueError, AttributeError):
                said = ""
            raise SessionExpired(revoked="revoked" in said)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            retry = response.headers.get("Retry-After")
            body = body if isinstance(body, dict) else {}
            raise ApiError(response.status_code, str(body.get("error") or response.reason),
                           body.get("fields") or {}, int(retry) if retry and retry.isdigit() else None, body,
                           response.headers.get("Content-Language"))
        if raw:
            return response
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, service: str, path: str, **kwargs):
        return self.call("GET", service, path, **kwargs)

    def post(self, service: str, path: str, **kwargs):
        return self.call("POST", service, path, **kwargs)

    def put(self, service: str, path: str, **kwargs):
        return self.call("PUT", service, path, **kwargs)


CARDS_PER_CALL = 100  # members-service's most ids per /members/cards call


def cards(services: Services, member_ids) -> dict[str, dict]:
    """Name, sector and Bundesland of other organisations by member id, ``{id: {id, name, sector, state}}``,
    from members-service's ``GET /members/cards`` (one call per 100 ids; none for no ids). Erased or unknown
    members are left out, and so is everything when members-service refuses (``ApiError``): a page then shows
    what it shows without. ``ServiceDown`` goes up (the friendly error page)."""
    ids = sorted(set(member_ids))
    found: dict[str, dict] = {}
    for start in range(0, len(ids), CARDS_PER_CALL):
        try:
            answer = services.get("members", "/members/cards",
                                  params={"ids": ",".join(ids[start:start + CARDS_PER_CALL])})
        except ApiError:
            continue
        found.update({item["id"]: item for item in answer["items"]})
    return found


def flatten_fields(fields: dict, prefix: str = "") -> dict[str, list[str]]:
    """Nested field errors as dotted names: ``{"region": {"postcode": ["x"]}}`` → ``{"region.postcode": ["x"]}``;
    list items keep their index (``offers.0.label``)."""
    flat: dict[str, list[str]] = {}
    for key, value in (fields or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_fields(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            flat[name] = list(value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    flat.update(flatten_fields(item, f"{name}.{index}."))
                else:
                    flat.setdefault(name, []).append(str(item))
        else:
            flat[name] = [str(value)]
    return flat
