"""Webhooks after the Standard Webhooks scheme (standardwebhooks.com).

Every request carries ``webhook-id`` (the same on every retry, so receivers
can drop duplicates), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``,
keyed with the endpoint's secret ``whsec_<base64>``. The signature is made by
the ``standardwebhooks`` reference library (its output is exactly this format).

Target addresses are checked when an endpoint is registered or changed and
again before each request, by one function (``check_url``): the host is
read the way the connection will read it (``2130706433`` and ``127.1`` are
127.0.0.1), and private, loopback, link-local, multicast, reserved and other
non-public addresses are refused unless an admin allowed them for the endpoint.
"""
from __future__ import annotations

import base64
import hmac
import ipaddress
import re
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests
from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 5 * 60
USER_AGENT = "Verbund-Webhooks/1"


class InvalidSignature(Exception):
    pass


class UnsafeUrl(ValueError):
    """A URL that must not be a webhook target; the message says why."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed with the ``whsec_`` secret
    (Standard Webhooks 1.0, "Signature scheme"); ``timestamp`` in Unix seconds."""
    return Webhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, UTC), body)


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
    """What a receiver does: raise InvalidSignature unless the request is authentic and fresh
    (``webhook-timestamp`` within ``tolerance`` seconds of ``now``, Unix seconds; default the
    wall clock). The library's own ``verify`` reads the wall clock only, so the tolerance is
    checked here and the signature compared with the library's."""
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

# A host made of numbers only (decimal, 0x hex or 0-led octal parts) is an IPv4 address, or invalid,
# to the C resolver (inet_aton) and to browsers (WHATWG URL "ends in a number"), never a name.
_IPV4_PART = r"(?:0x[0-9a-f]*|[0-9]+)"
_NUMERIC_HOST = re.compile(rf"{_IPV4_PART}(?:\.{_IPV4_PART})*", re.IGNORECASE)
# RFC 6761: these names are loopback wherever they are looked up.
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
# RFC 6052 NAT64 prefix: the last 32 bits are an IPv4 address the gateway connects to.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def canonical_host(host: str) -> Address | str:
    """The host a connection to ``host`` reaches: an address if ``host`` spells one, else the name.

    Every spelling the C resolver takes for an IPv4 address becomes that address, by the
    ``inet_aton`` rules (POSIX, and the WHATWG URL standard's IPv4 parser): ``2130706433``,
    ``0x7f000001``, ``0177.0.0.1`` and ``127.1`` are all ``IPv4Address('127.0.0.1')``. IPv6
    (without brackets, as ``urlsplit().hostname`` gives it, zone ids allowed) becomes an
    ``IPv6Address``. A name comes back lower case without its trailing dots (``"localhost."`` →
    ``"localhost"``). Raises UnsafeUrl for a numeric host that is no address (``1.2.3.4.5``, ``256.1.1.1``).
    """
    bare = host.strip().lower().rstrip(".")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            raise UnsafeUrl(f"{host} is not a valid IP address") from None
    return bare


def refusal(address: Address | str) -> str | None:
    """Why ``address`` must not be a webhook target ("a loopback address"), or None
    for a public one. Refused: unspecified, loopback, link-local, multicast, private (RFC 1918,
    IPv6 ULA), reserved and any other address IANA does not mark globally reachable (e.g. 100.64/10),
    also when an IPv6 address carries one of these IPv4 addresses (mapped, NAT64, 6to4, Teredo)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None) \
            or ip.sixtofour or (ip.teredo[1] if ip.teredo else None) or ip
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return f"{'an' if kind == 'unspecified' else 'a'} {kind.replace('_', '-')} address"
    if not ip.is_global:
        return "not a public address"
    return None


def is_public(address: str) -> bool:
    return refusal(address) is None


# RFC 3986 appendix A: a URI holds unreserved and reserved characters and %-escapes, nothing else.
# (The ``rfc3986`` package checks the host but lets a space or "<" in the path pass.)
_URI_CHARACTER = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2}")


def url_syntax_problem(url: str) -> str | None:
    """Why ``url`` is not a URI after RFC 3986 (a space, an umlaut, a ``%`` not followed by two hex
    digits, ...), naming the first offending character and its position (1-based); None if every
    character is allowed. Non-ASCII letters are refused too: an IRI must be written with its host
    in IDNA (``xn--``) and its path %-encoded, as the request will carry it."""
    position = 0
    for match in _URI_CHARACTER.finditer(url):
        if match.start() != position:
            break
        position = match.end()
    if position == len(url):
        return None
    bad = url[position]
    what = "a space" if bad == " " else "an incomplete %-escape" if bad == "%" else repr(bad)
    advice = ("write a domain with umlauts in its xn-- form and other letters %-encoded" if not bad.isascii()
              else "write it %-encoded (a space is %20)")
    return f"{what} at position {position + 1} is not allowed in a URL (RFC 3986); {advice}"


def parse_url(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL; UnsafeUrl if it is not one (RFC 3986 syntax, see
    :func:`url_syntax_problem`; scheme http or https; a host; no credentials)."""
    problem = url_syntax_problem(url)
    if problem:
        raise UnsafeUrl(problem)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("the URL must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    # RFC 1035 2.3.4: a domain name has at most 253 characters (255 octets on the wire), a label 63.
    if len(parts.hostname) > 253 or any(len(label) > 63 for label in parts.hostname.split(".")):
        raise UnsafeUrl("the host name is too long (at most 253 characters, 63 between two dots)")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not allowed; the signature authenticates us")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def addresses(host: str, port: int) -> list[str]:
    """The addresses a name resolves to now (none if it does not resolve)."""
    try:
        return sorted({info[4][0].split("%")[0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})
    except (OSError, UnicodeError):
        return []


def check_url(url: str, *, allow_private: bool = False, must_resolve: bool = False) -> None:
    """Raise UnsafeUrl unless ``url`` may be a webhook target; the one check for creating and
    updating an endpoint and for every delivery.

    The host is canonicalised first (:func:`canonical_host`), so every spelling of an address is
    judged as the address the connection reaches, without asking a resolver. A name is resolved
    and each of its addresses judged; one that does not resolve (yet) passes unless
    ``must_resolve`` (set at delivery, where it is checked again before every request, so a name
    turned to a private address later, DNS rebinding, is refused then). ``allow_private`` (an
    admin's permission, and the tests' local receivers) lets private and loopback targets pass.
    """
    host, port = parse_url(url)
    target = canonical_host(host)
    if not isinstance(target, str):
        reason = refusal(target)
        if reason and not allow_private:
            spelled = isinstance(target, ipaddress.IPv4Address) and str(target) != host
            raise UnsafeUrl(f"{host} is {target}, {reason}" if spelled else f"{host} is {reason}")
        return
    if (target in _LOOPBACK_NAMES or target.endswith(".localhost")) and not allow_private:
        raise UnsafeUrl(f"{host} is a loopback address")
    found = addresses(host, port)
    if not found and must_resolve:
        raise UnsafeUrl(f"host {host} does not resolve")
    if allow_private:
        return
    for address in found:
        reason = refusal(address)
        if reason:
            raise UnsafeUrl(f"{host} resolves to {address}, {reason}")


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
