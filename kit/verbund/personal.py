"""Personal data of natural persons in events: encrypted per member, erased by deleting the key.

Public events carry what integrators need about an organisation; the contact person's name and
e-mail address (GDPR art. 4(1) personal data) travel only encrypted, in ``profile.personal``
(member-profile v2). Each member has its own 256-bit key, held by members-service; erasure deletes
the key in the transaction that erases the member (art. 17), after which every copy of the
ciphertext, in the replay stream, outbox history, dead-letter queues or an integrator's store, is
unreadable ("crypto-shredding"). Art. 5(1)(c) data minimisation is why the fields are not simply
left in clear for whoever binds a queue.

The format is a JWE in compact serialization (RFC 7516): ``alg`` ``dir`` (the member key is the
content key), ``enc`` ``A256GCM`` (AES-GCM, authenticated), ``kid`` the member id, so any JOSE
library opens it with the key as a JWK (RFC 7517). Encryption and decryption are joserfc's; no
cryptography of our own here.

Consumers fetch keys through an authorised path (services: the ``members.member_key`` RPC on the
internal broker; integrators entitled to personal data: ``GET /members/{id}/key``) and keep them
no longer than ``PERSONAL_KEY_TTL_SECONDS`` (default 300 s). A consumer fetches the keys a batch of
events needs before the batch's transaction opens (``Keys.prefetch``), so that no RPC waits while the
transaction holds the database (on SQLite: its one write lock).
"""
from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from verbund.outages import REMOTE_DATABASE_ERRORS, Unavailable
from verbund.settings import env

log = logging.getLogger(__name__)

ALG, ENC = "dir", "A256GCM"
KEY_BYTES = 32  # A256GCM: a 256-bit key
# The contact person's fields that leave the clear-text profile (member-profile v1 -> v2).
CONTACT_FIELDS = ("name", "email")
DEFAULT_KEY_TTL_SECONDS = 300.0

try:  # nameko re-raises this very class in the RPC caller (not a RemoteError)
    from nameko.exceptions import deserialize_to_instance
except ImportError:  # pragma: no cover - the kit always has nameko
    def deserialize_to_instance(cls):
        return cls


@deserialize_to_instance
class KeyErased(Exception):
    """The member's key is gone (the member was erased) or never existed: nothing to decrypt."""


class KeyUnavailable(Unavailable):
    """members-service did not answer for a key in time, or could not reach its database: an outage
    (``verbund.outages``), so the message waits without spending its attempts."""


class UnreadablePersonalData(ValueError):
    """A ``personal`` value that is not a JWE this key opens (tampered, or another member's)."""


# Keys asked for in one ``members.member_keys`` call (a consumer's batch needs up to CONSUME_BATCH_SIZE).
KEYS_PER_CALL = 500


def key_ttl_seconds() -> float:
    """How long a consumer may keep a fetched key, in seconds (``PERSONAL_KEY_TTL_SECONDS``, default 300)."""
    return env("PERSONAL_KEY_TTL_SECONDS", float(DEFAULT_KEY_TTL_SECONDS), kind="float")


def key_rpc_timeout_seconds() -> float:
    """How long a consumer waits for members-service to hand out a key, in seconds
    (``PERSONAL_KEY_RPC_TIMEOUT_SECONDS``, default 10); then the handler fails and is retried."""
    return env("PERSONAL_KEY_RPC_TIMEOUT_SECONDS", 10.0, kind="float")


def new_key() -> bytes:
    """A fresh random 256-bit member key (32 bytes from the OS's CSPRNG)."""
    return secrets.token_bytes(KEY_BYTES)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwk(kid: str, key: bytes) -> dict:
    """The key as a JSON Web Key (RFC 7517, ``kty`` ``oct``), as the RPC and the HTTP endpoint serve it."""
    return {"kty": "oct", "kid": kid, "alg": ALG, "enc": ENC, "use": "enc", "k": _b64(key)}


def key_from_jwk(value: dict) -> bytes:
    """The raw 32-byte key of a JWK from :func:`jwk`; ValueError for anything else."""
    try:
        raw = _unb64(value["k"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an oct JWK: {exc}") from None
    if value.get("kty") != "oct" or len(raw) != KEY_BYTES:
        raise ValueError("not a 256-bit oct JWK")
    return raw


def encrypt(fields: dict, kid: str, key: bytes) -> str:
    """``fields`` (a JSON object) as a JWE compact string under the member's key."""
    header = {"alg": ALG, "enc": ENC, "kid": kid, "cty": "application/json"}
    plaintext = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return jwe.encrypt_compact(header, plaintext, OctKey.import_key(key))


def kid_of(token: str) -> str:
    """The ``kid`` in a JWE's protected header (readable without the key)."""
    try:
        header = json.loads(_unb64(token.split(".", 1)[0]))
        return str(header["kid"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UnreadablePersonalData(f"not a JWE with a kid: {exc}") from None


def decrypt(token: str, key: bytes) -> dict:
    """The JSON object inside a JWE from :func:`encrypt`; UnreadablePersonalData if this key does not open it."""
    try:
        plaintext = jwe.decrypt_compact(token, OctKey.import_key(key)).plaintext
        return json.loads(plaintext)
    except (JoseError, ValueError, TypeError) as exc:
        raise UnreadablePersonalData(f"personal data cannot be decrypted: {type(exc).__name__}") from None


def conceal(profile: dict, key: bytes) -> dict:
    """A member-profile v1 (contact in clear) as member-profile v2: ``contact`` keeps the language,
    the contact person's name and e-mail go encrypted into ``personal`` (kid = member id)."""
    contact = profile["contact"]
    secret = {"contact": {field: contact.get(field) for field in CONTACT_FIELDS}}
    public = {**profile, "contact": {"language": contact["language"]}}
    public["personal"] = encrypt(secret, profile["id"], key)
    return public


def reveal(profile: dict, fields: dict | None) -> dict:
    """A member-profile v2 with its decrypted ``personal`` fields put back in the v1 shape; with
    ``fields`` None (key erased) the contact's name and e-mail are None."""
    contact = (fields or {}).get("contact") or {}
    revealed = {key: value for key, value in profile.items() if key != "personal"}
    revealed["contact"] = {**profile["contact"], **{field: contact.get(field) for field in CONTACT_FIELDS}}
    return revealed


# An e-mail address as mail servers quote it in their errors ("<name@example.org>: User unknown").
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def redact_addresses(text: str | None) -> str | None:
    """``text`` with every e-mail address replaced by ``<address>``: for error texts that leave the
    service in public events (notification.failed), where the recipient's address has no place."""
    return None if text is None else _ADDRESS.sub("<address>", text)


class KeyCache:
    """Member keys a consumer fetched, each kept at most ``ttl`` seconds (an erased member's key
    must not outlive its erasure by more than that). Thread- and greenlet-safe enough: a race
    fetches a key twice, never uses a stale one longer than ``ttl``.

    ``fetch(kid)`` returns the raw key, or raises KeyErased; other errors (members-service
    unreachable) propagate, so the handler fails and is retried.
    """

    def __init__(self, ttl: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.ttl = key_ttl_seconds() if ttl is None else ttl
        self.clock = clock
        self._keys: dict[str, tuple[float, bytes | None]] = {}
        self._lock = threading.Lock()

    def get(self, kid: str, fetch: Callable[[str], bytes]) -> bytes | None:
        """The key for ``kid``, or None when it is erased."""
        now = self.clock()
        with self._lock:
            held = self._keys.get(kid)
        if held is not None and held[0] > now:
            return held[1]
        try:
            key = fetch(kid)
        except KeyErased:
            key = None
        with self._lock:
            self._keys[kid] = (now + self.ttl, key)
        return key

    def get_many(self, kids: list[str], fetch_many: Callable[[list[str]], dict[str, bytes | None]]
                 ) -> dict[str, bytes | None]:
        """The keys for ``kids`` ({kid: key, or None when erased}); those not held (or held longer than
        ``ttl``) are fetched with one call of ``fetch_many(missing)``, which answers every kid it is
        given (None for an erased one) or raises (then nothing is cached and the error propagates)."""
        now = self.clock()
        found: dict[str, bytes | None] = {}
        missing = []
        with self._lock:
            for kid in kids:
                held = self._keys.get(kid)
                if held is not None and held[0] > now:
                    found[kid] = held[1]
                else:
                    missing.append(kid)
        if missing:
            fetched = fetch_many(missing)
            with self._lock:
                for kid in missing:
                    self._keys[kid] = (now + self.ttl, fetched[kid])
                    found[kid] = fetched[kid]
        return found

    def forget(self, kid: str) -> None:
        """Drop a key at once (a consumer does on member.deleted)."""
        with self._lock:
            self._keys.pop(kid, None)


def forget(keys: Callable[[str], bytes | None] | None, kid: str) -> None:
    """Drop a cached key (on member.deleted), when ``keys`` is a cache (:class:`Keys`, :class:`Prefetched`)."""
    if isinstance(keys, (Keys, Prefetched)):
        keys.forget(kid)


# The member.* event types whose profile carries the contact person encrypted (v2, ``profile.personal``).
ENCRYPTED_TYPES = ("member.registered", "member.updated")


def kids_to_open(events: list[dict]) -> list[str]:
    """The member ids whose keys :func:`member_profile` asks for while ``events`` are handled: one per
    member.registered / member.updated v2 event (the key is the member's own), each once, in order.
    Other events, and v1 events (contact in clear), need none."""
    kids: dict[str, None] = {}
    for event in events:
        if event.get("type") not in ENCRYPTED_TYPES:
            continue
        profile = (event.get("data") or {}).get("profile") or {}
        if "personal" in profile and profile.get("id"):
            kids[str(profile["id"])] = None
    return list(kids)


def member_profile(event: dict, keys: Callable[[str], bytes | None] | None) -> dict:
    """The profile of a ``member.registered``/``member.updated`` event in the v1 shape: v1 as it is;
    v2 with the contact person decrypted by ``keys(kid)``, or with name and e-mail None when the key is
    erased (the member was deleted meanwhile: the consumer stores no contact, nothing to retry).

    Raises UnreadablePersonalData for a ciphertext the member's key does not open (tampered).
    """
    profile = event["data"]["profile"]
    if "personal" not in profile:  # v1 (deprecated until catalogue.SUNSET)
        return profile
    if keys is None:
        raise LookupError("member.* v2 carries the contact encrypted: the consumer needs a key lookup (MemberKeys)")
    token = profile["personal"]
    if kid_of(token) != profile["id"]:
        raise UnreadablePersonalData("personal data is not under the member's own key")
    key = keys(profile["id"])
    return reveal(profile, decrypt(token, key) if key is not None else None)


def _rpc_proxy_base():
    from nameko.rpc import RpcProxy
    return RpcProxy


class MemberKeys(_rpc_proxy_base()):
    """nameko dependency of a consuming service: ``self.member_keys`` looks a member's key up
    (``keys(kid) -> bytes | None``; ``keys.forget(kid)``), fetched over RPC from members-service and
    cached per service instance for ``PERSONAL_KEY_TTL_SECONDS``. The RPC is the services' path: only
    services have rights on the internal RPC exchange."""

    def __init__(self, **options):
        super().__init__("members", **options)

    def setup(self):
        super().setup()
        self.cache = KeyCache()

    def get_dependency(self, worker_ctx):
        proxy = super().get_dependency(worker_ctx)
        timeout = key_rpc_timeout_seconds()

        def fetch(kid: str) -> bytes:
            # nameko's RPC proxy waits forever; a members-service that is down must not hold the
            # consumer's workers (and with them every other event type in its queue).
            import eventlet

            with eventlet.Timeout(timeout, KeyUnavailable(f"members-service gave no key for {kid} in {timeout:g} s")):
                with _remote_outage():
                    return key_from_jwk(proxy.member_key(kid))

        def fetch_many(kids: list[str]) -> dict[str, bytes | None]:
            # members.member_keys: up to KEYS_PER_CALL keys a call, read by members-service in one
            # transaction; every call is sent before the first answer is awaited, so the batch takes
            # one round trip, bounded as a whole by the same timeout.
            import eventlet
            from nameko.exceptions import MethodNotFound

            with eventlet.Timeout(timeout, KeyUnavailable(
                    f"members-service gave no keys for {len(kids)} member(s) in {timeout:g} s")):
                calls = [proxy.member_keys.call_async(kids[start:start + KEYS_PER_CALL])
                         for start in range(0, len(kids), KEYS_PER_CALL)]
                keys: dict[str, bytes | None] = {}
                with _remote_outage():
                    try:
                        for call in calls:
                            keys.update({kid: key_from_jwk(jwk) if jwk is not None else None
                                         for kid, jwk in call.result().items()})
                    except MethodNotFound:
                        # a members-service from before member_keys (instances replaced one by one):
                        # key by key, every request sent before the first answer is awaited
                        singles = [(kid, proxy.member_key.call_async(kid)) for kid in kids]
                        keys = {kid: _key_or_none(reply.result) for kid, reply in singles}
                return keys

        return Keys(self.cache, fetch, fetch_many)


@contextmanager
def _remote_outage():
    """members-service answered that its database is away: that is an outage, not a fault."""
    from nameko.exceptions import RemoteError

    try:
        yield
    except RemoteError as exc:
        if exc.exc_type in REMOTE_DATABASE_ERRORS:
            raise KeyUnavailable(f"members-service cannot reach its database: {exc.value}"[:500]) from None
        raise


def _key_or_none(answer: Callable[[], dict]) -> bytes | None:
    try:
        return key_from_jwk(answer())
    except KeyErased:
        return None


class Keys:
    """A key lookup for one worker: a cache and how to fill it (``fetch(kid)`` one key,
    ``fetch_many(kids)`` several at once; without it, one by one)."""

    def __init__(self, cache: KeyCache, fetch: Callable[[str], bytes],
                 fetch_many: Callable[[list[str]], dict[str, bytes | None]] | None = None):
        self.cache, self.fetch, self.fetch_many = cache, fetch, fetch_many or self._one_by_one

    def __call__(self, kid: str) -> bytes | None:
        return self.cache.get(kid, self.fetch)

    def forget(self, kid: str) -> None:
        self.cache.forget(kid)

    def prefetch(self, events: list[dict]) -> Prefetched:
        """The keys ``events`` need (:func:`kids_to_open`), fetched now: call it before the batch's
        transaction opens and hand the result to the handlers, which then ask members-service
        nothing while the transaction holds the database. Those in the cache are not fetched again;
        the others in one ``fetch_many``.

        Raises what fetching raises (``KeyUnavailable`` when members-service does not answer in
        ``PERSONAL_KEY_RPC_TIMEOUT_SECONDS``): the batch then fails before it wrote anything and is
        retried like any failing handler."""
        return Prefetched(self, self.cache.get_many(kids_to_open(events), self.fetch_many))

    def _one_by_one(self, kids: list[str]) -> dict[str, bytes | None]:
        found = {}
        for kid in kids:
            try:
                found[kid] = self.fetch(kid)
            except KeyErased:
                found[kid] = None
        return found


class Prefetched:
    """The keys of one batch, fetched before its transaction (:meth:`Keys.prefetch`): a key lookup
    (``keys(kid) -> bytes | None``) that answers from them. A kid it was not given is looked up
    through the cache (and possibly members-service), with a warning, since that RPC runs inside
    the transaction. ``forget(kid)`` (member.deleted) drops the key from the cache and answers None
    for it from then on: the member is erased, and its key with it."""

    def __init__(self, keys: Keys, held: dict[str, bytes | None]):
        self.keys, self.held = keys, dict(held)

    def __call__(self, kid: str) -> bytes | None:
        if kid in self.held:
            return self.held[kid]
        log.warning("key of %s was not fetched before the transaction; asking members-service now", kid)
        return self.keys(kid)

    def forget(self, kid: str) -> None:
        self.keys.forget(kid)
        self.held[kid] = None
