"""Webhooks after the Standard Webhooks scheme (standardwebhooks.com).

Every request carries ``webhook-id`` (the same on every retry, so receivers
can drop duplicates), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``,
keyed with the endpoint's secret ``whsec_<base64>``.

Target addresses are checked when an endpoint is registered and again
before each request: private, loopback, link-local and other non-public
addresses are refused unless an admin allowed them for the endpoint.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 5 * 60
USER_AGENT = "Verbund-Webhooks/1"


class InvalidSignature(Exception):
    pass


class UnsafeUrl(ValueError):
    """A URL that must not be a webhook target; the message says why."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode("ascii")


def headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def verify(secret: str, request_headers, body: bytes, *, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> None:
    """What a receiver does: raise InvalidSignature unless the request is authentic and fresh."""
    lower = {key.lower(): value for key, value in dict(request_headers).items()}
    try:
        message_id, timestamp = lower["webhook-id"], int(lower["webhook-timestamp"])
        signatures = lower["webhook-signature"].split()
    except (KeyError, ValueError):
        raise InvalidSignature("missing or malformed webhook headers") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance")
    expected = sign(secret, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise InvalidSignature("no matching signature")


# --- where a webhook may go ------------------------------------------------------------------------

def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


def parse_url(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL; UnsafeUrl if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("the URL must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not allowed; the signature authenticates us")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def addresses(host: str, port: int) -> list[str]:
    try:
        return [ipaddress.ip_address(host).compressed]
    except ValueError:
        pass
    try:
        return sorted({info[4][0].split("%")[0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})
    except (OSError, UnicodeError):
        return []


def check_url(url: str, *, allow_private: bool = False, must_resolve: bool = False) -> None:
    """Raise UnsafeUrl unless ``url`` may be a webhook target.

    A host that does not resolve (yet) passes unless ``must_resolve``; it is
    checked again before every request.
    """
    host, port = parse_url(url)
    if host.lower() in ("localhost", "localhost.localdomain") and not allow_private:
        raise UnsafeUrl("loopback addresses are not allowed")
    found = addresses(host, port)
    if not found and must_resolve:
        raise UnsafeUrl(f"host {host} does not resolve")
    if allow_private:
        return
    for address in found:
        if not is_public(address):
            raise UnsafeUrl(f"{host} resolves to {address}, a private, loopback or link-local address")


@dataclass(frozen=True)
class Outcome:
    outcome: str  # delivered | retry | gone
    status_code: int | None
    duration_ms: int
    error: str | None = None


def post(url: str, body: bytes, request_headers: dict, *, timeout: float, allow_private: bool) -> Outcome:
    """One attempt. 2xx delivered; 410 gone (disable the endpoint); anything else, and timeouts, retry."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        check_url(url, allow_private=allow_private, must_resolve=True)
    except UnsafeUrl as exc:
        return Outcome("retry", None, took(), f"refused target: {exc}")
    try:
        # No redirects: a redirect could lead to an address the check above refused.
        response = requests.post(url, data=body, headers=request_headers, timeout=(min(5.0, timeout), timeout),
                                 allow_redirects=False, stream=True)
        response.close()
    except requests.Timeout:
        return Outcome("retry", None, took(), f"timed out after {timeout:g} s")
    except requests.RequestException as exc:
        return Outcome("retry", None, took(), f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= response.status_code < 300:
        return Outcome("delivered", response.status_code, took())
    if response.status_code == 410:
        return Outcome("gone", 410, took(), "410 Gone: the receiver asked to stop")
    return Outcome("retry", response.status_code, took(), f"HTTP {response.status_code}")
