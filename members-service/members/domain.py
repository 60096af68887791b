"""The rules of member profiles. No I/O, no nameko: plain functions."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from verbund import reference
from verbund.auth import Principal
from verbund.errors import Conflict, Forbidden, Unprocessable
from verbund.topics import covers
from verbund.vocabulary import normalize

# Legal-form suffixes that do not make two registrations different organisations.
LEGAL_FORMS = ("gmbh & co. kg", "gmbh & co kg", "ggmbh", "gmbh", "ug (haftungsbeschränkt)", "ug", "ag", "se",
               "kgaa", "kg", "ohg", "gbr", "e.v.", "ev", "e.k.", "eg", "ltd", "inc", "llc", "co. kg", "mbh")

# EU definition of SMEs (Recommendation 2003/361/EC): headcount ceiling and
# turnover or balance-sheet ceiling (either one suffices), per category.
SME_CEILINGS = (
    ("micro", 10, 2_000_000, 2_000_000),
    ("small", 50, 10_000_000, 10_000_000),
    ("medium", 250, 50_000_000, 43_000_000),
)

# Fields a client may send back from a profile it read; they are not its to set.
READ_ONLY_FIELDS = ("id", "version", "created_at", "updated_at")

PROFILE_FIELDS = ("name", "sector", "associations", "region", "size", "website", "contact", "offers", "needs",
                  "topics", "consent")


def size_category(employees: int, turnover_eur: int | None = None, balance_sheet_eur: int | None = None) -> str:
    """micro, small, medium or large; without financial figures, by headcount alone."""
    for category, max_staff, max_turnover, max_balance in SME_CEILINGS:
        within_money = (turnover_eur is None and balance_sheet_eur is None) or \
            (turnover_eur is not None and turnover_eur <= max_turnover) or \
            (balance_sheet_eur is not None and balance_sheet_eur <= max_balance)
        if employees < max_staff and within_money:
            return category
    return "large"


def size_profile(employees: int, turnover_eur: int | None, balance_sheet_eur: int | None) -> dict:
    """The profile's ``size``: the figures (head count, whole euros) with ``sme`` and ``category``
    derived by the EU definition (``size_category``)."""
    category = size_category(employees, turnover_eur, balance_sheet_eur)
    return {"employees": employees, "turnover_eur": turnover_eur, "balance_sheet_eur": balance_sheet_eur,
            "sme": category != "large", "category": category}


def organisation_key(name: str, postcode: str) -> str:
    """What makes two registrations the same organisation: the name without
    its legal form, case and punctuation, at the same postcode."""
    text = name.casefold().strip()
    changed = True
    while changed:
        changed = False
        for form in LEGAL_FORMS:
            if text.endswith(" " + form) or text == form:
                text = text[: -len(form)].rstrip(" ,")
                changed = True
    return f"{normalize(text)}@{postcode}"


def resolve_competencies(items: list[dict], find_term, term_label) -> list[dict]:
    """Link each offer or need to the curated vocabulary where its text matches.

    An item names a ``term`` id, or a free-text ``label`` that is looked up
    among the vocabulary's labels and synonyms. Duplicates are dropped.
    """
    resolved, seen = [], set()
    for item in items:
        term = item.get("term") or (find_term(item["label"]) if item.get("label") else None)
        label = item.get("label") or term_label(term)
        key = term or normalize(label)
        if key in seen:
            continue
        seen.add(key)
        resolved.append({"term": term, "label": label, "description": item.get("description")})
    return resolved


def merge_patch(current: dict, patch: dict) -> dict:
    """JSON Merge Patch (RFC 7396): objects merge key by key, everything else replaces."""
    merged = dict(current)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def changed_fields(before: dict, after: dict) -> list[str]:
    """The profile fields (``PROFILE_FIELDS``, in that order) whose values differ: ``member.updated``'s
    ``changed``."""
    return [name for name in PROFILE_FIELDS if before.get(name) != after.get(name)]


def check_read_only(before: dict, patch: dict) -> None:
    """A merge patch may repeat a read-only field (``READ_ONLY_FIELDS``) as it was read, never change it.

    Raises Unprocessable (422) with ``{field: ["read-only"]}`` for the first field it would change."""
    for name in READ_ONLY_FIELDS:
        if name in patch and patch[name] != before[name]:
            raise Unprocessable("validation failed", fields={name: ["read-only"]})


def without_read_only(profile: dict) -> dict:
    """``profile`` without the fields the platform sets (``READ_ONLY_FIELDS``)."""
    return {key: value for key, value in profile.items() if key not in READ_ONLY_FIELDS}


def can_read(principal: Principal, member_id: str) -> bool:
    """Staff and integrators read every profile; a member only its own."""
    return principal.role in ("admin", "organizer", "integrator") or principal.is_member(member_id)


def can_change(principal: Principal, member_id: str, associations: list[str]) -> bool:
    """Admins, the member itself, and organizers of an association it belongs to."""
    if principal.is_admin or principal.is_member(member_id):
        return True
    return principal.role == "organizer" and principal.association in associations


def import_associations(principal: Principal, associations: list[str]) -> tuple[list[str], list[str]]:
    """The associations an imported row's member gets, and the ones the importer may not import
    into: an admin imports any row as it is; an organizer only members of its own association, as
    it may change only those (``can_change``). A row without an association gets the organizer's;
    a row naming the organizer's association and others keeps them all (a member of several
    associations, whom each of their organizers may change, as each organizer manages the events
    its association co-organizes); a row naming other associations only is refused (the second
    list, non-empty)."""
    if principal.is_admin:
        return associations, []
    if principal.role != "organizer" or not principal.association:
        raise Forbidden("only admins and organizers import members")
    if not associations:
        return [principal.association], []
    if principal.association in associations:
        return associations, []
    return associations, associations


# The events that carry a member's personal fields (encrypted): a scope must cover one to need its key.
PERSONAL_EVENTS = ("member.registered", "member.updated")


def check_grant(principal: Principal, grant: dict | None) -> None:
    """Raises Forbidden (403) when an integrator token was issued under a grant that is no longer the
    integrator's current one (``grant``: its stored grant ``{"serial", "events", "personal", ...}`` or
    None), or claims more than that grant: narrowing a scope takes back the old tokens (GDPR art.
    5(1)(c), 25(2)). Tokens without a grant claim (issued before grants were recorded) pass: they get
    the documented default, every event type and no personal data (``can_read_personal``)."""
    if principal.role != "integrator" or principal.grant is None:
        return
    if grant is None or principal.grant != grant["serial"]:
        raise Forbidden(f"the grant of integrator {principal.subject} changed since this token was issued; "
                        f"ask the platform's admin for a new token (verbund integrator)")
    if (principal.personal and not grant["personal"]) or \
            not all(covers(grant["events"], pattern) for pattern in principal.events):
        raise Forbidden(f"this token claims more than the grant of integrator {principal.subject}; "
                        f"ask the platform's admin for a new token (verbund integrator)")


def can_read_personal(principal: Principal, grant: dict | None = None) -> bool:
    """Who may have a member's key and see its contact person: admins, and integrators whose token
    carries their current grant (``check_grant``: Forbidden otherwise) and whose grant gives personal
    data and covers a ``member.*`` event that carries it. Tokens without a grant claim get no
    personal data. The one rule for the key endpoint and profile visibility."""
    if principal.is_admin:
        return True
    if principal.role != "integrator" or principal.grant is None:
        return False
    check_grant(principal, grant)
    # An event type is a binding key without wildcards: covered iff a scope pattern matches it.
    return principal.personal and any(covers(principal.events, type_) for type_ in PERSONAL_EVENTS)


def can_delete(principal: Principal, member_id: str) -> bool:
    """GDPR erasure (art. 17) is the member's own right, and the admin's."""
    return principal.is_admin or principal.is_member(member_id)


def authorize_read(principal: Principal, member_id: str) -> None:
    """Raises Forbidden (403) unless ``principal`` may read the member's profile (``can_read``)."""
    if not can_read(principal, member_id):
        raise Forbidden("you may read your own profile only")


def authorize_change(principal: Principal, member_id: str, associations: list[str]) -> None:
    """Raises Forbidden (403) unless ``principal`` may change the member's profile (``can_change``)."""
    if not can_change(principal, member_id, associations):
        raise Forbidden("you may change your own profile, or those of your association's members")


def authorize_erase(principal: Principal, member_id: str) -> None:
    """Raises Forbidden (403) unless ``principal`` may erase the member (``can_delete``)."""
    if not can_delete(principal, member_id):
        raise Forbidden("only the member itself or an admin may delete a member")


def authorize_key(principal: Principal | None, grant: dict | None = None) -> None:
    """Raises Forbidden (403) unless ``principal`` may have members' keys (``can_read_personal``
    under the integrator's current ``grant``); None is a service over the internal RPC, which may."""
    if principal is not None and not can_read_personal(principal, grant):
        raise Forbidden("only admins and integrators entitled to personal data may read member keys")


def visible(principal: Principal, profile: dict, grant: dict | None = None) -> dict:
    """The profile as ``principal`` may see it: an integrator not entitled to personal data
    (``can_read_personal`` under its current ``grant``, the rule of the key endpoint) sees the
    contact's language, not the person (GDPR art. 5(1)(c), as in the events it receives).
    Forbidden (403) for an integrator token whose grant changed."""
    if principal.role != "integrator" or can_read_personal(principal, grant):
        return profile
    hidden = {field: None for field in ("name", "email", "pending_email") if field in profile["contact"]}
    return {**profile, "contact": {**profile["contact"], **hidden}}


# --- the contact e-mail -------------------------------------------------------------------------

EMAIL_TAKEN = "this e-mail address is already the contact address of another organisation; sign in with it instead"
EMAIL_CONFIRMATION_TTL = timedelta(hours=24)


def without_pending(profile: dict) -> dict:
    """``profile`` (or a merge patch) without ``contact.pending_email``, which only the platform sets: a
    client may send the profile back as it read it."""
    contact = profile.get("contact")
    if not isinstance(contact, dict) or "pending_email" not in contact:
        return profile
    return {**profile, "contact": {key: value for key, value in contact.items() if key != "pending_email"}}


def withdraws_email_change(patch: dict) -> bool:
    """Whether a merge patch removes the pending contact e-mail: ``{"contact": {"pending_email": null}}``
    (RFC 7396's way to remove a member). The pending address sent back as it was read changes nothing."""
    contact = patch.get("contact")
    return isinstance(contact, dict) and "pending_email" in contact and contact["pending_email"] is None


def email_change(current: str | None, wanted: str) -> str | None:
    """The address a profile change asks to confirm: ``wanted`` when it is another address than
    ``current`` (compared as ``normalise_email`` does), None when it is the same one (a change of case
    alone is taken at once: it reaches the same mailbox)."""
    if current is not None and normalise_email(current) == normalise_email(wanted):
        return None
    return wanted


def email_taken_error() -> Conflict:
    """The 409 for a contact e-mail another organisation uses, at the field ``contact.email``."""
    return Conflict(EMAIL_TAKEN, fields={"contact": {"email": [EMAIL_TAKEN]}})


# --- sign-in by e-mail link ---------------------------------------------------------------------

@dataclass(frozen=True)
class SignInPolicy:
    """How long a sign-in link lives and how often one may be asked for (settings, see the README)."""
    token_ttl: timedelta = timedelta(minutes=15)
    per_address: int = 5  # requests per address and window, known address or not
    # Requests per client (IP address) and window. Generous: at a joint event the whole room signs in
    # through the venue's one NAT address within minutes; the per-address limit guards each inbox.
    per_client: int = 200
    window: timedelta = timedelta(hours=1)
    member_token_ttl: timedelta = timedelta(days=30)  # the bearer token an exchange gives
    # A staff token lives a working day; revocation does not wait for it (verbund.staff checks each request).
    staff_token_ttl: timedelta = timedelta(hours=12)
    invitation_ttl: timedelta = timedelta(days=3)  # a staff invitation's link


def token_hash(secret: str) -> str:
    """What is stored of a sign-in link's secret: its SHA-256 in hex. The secret is 256 bits from
    ``secrets.token_urlsafe(32)``, so a plain hash (no salt, no key stretching) cannot be reversed."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def normalise_email(address: str) -> str:
    """An e-mail address as sign-in compares it: trimmed and lower-cased (mail providers treat
    the local part case-insensitively in practice; the database compares ``lower(contact_email)``)."""
    return address.strip().lower()


def limit_key(value: str) -> str:
    """The rate limits' key of an address or a client IP: its SHA-256, so no address is kept in clear."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def retry_after(recent: list[datetime], limit: int, window: timedelta, now: datetime) -> int | None:
    """Seconds until one more request is allowed when ``recent`` (the times of the requests within
    ``window`` before ``now``) already holds ``limit`` of them; None while below the limit (a sliding
    window: the oldest counted request must leave it)."""
    if len(recent) < limit:
        return None
    oldest_counted = sorted(recent)[-limit]
    return max(1, math.ceil((oldest_counted + window - now).total_seconds()))


# --- contact requests (privacy by relationship) -----------------------------------------------------

@dataclass(frozen=True)
class ContactPolicy:
    """Limits of contact requests (settings, see the README)."""
    per_day: int = 10  # new requests per member in 24 hours
    ttl: timedelta = timedelta(days=14)  # unanswered, a request expires
    decline_pause: timedelta = timedelta(days=30)  # after a decline, the same requester waits this long


def contact_status(stored: str, expires_at: datetime, now: datetime) -> str:
    """The status a contact request shows: a pending one past ``expires_at`` is ``expired``."""
    return "expired" if stored == "pending" and now >= expires_at else stored


def check_contact_request(requester_id: str, recipient_id: str, between: list[tuple[str, str, datetime,
                                                                                     datetime | None]],
                          now: datetime, policy: ContactPolicy) -> None:
    """Whether ``requester_id`` may ask ``recipient_id`` for contact, given the requests ``between``
    the two (either direction) as (requester id, shown status, created, answered). Raises
    Unprocessable (422) for oneself, Conflict (409) when one is pending between the two, when they are
    in contact already, or when the recipient declined this requester within ``decline_pause``."""
    if requester_id == recipient_id:
        raise Unprocessable("validation failed", fields={"recipient_id": ["you cannot ask yourself for contact"]})
    for asked_by, status, _created, answered in between:
        if status == "pending":
            if asked_by == requester_id:
                raise Conflict("you have asked this member already; the request is waiting for an answer")
            raise Conflict("this member has asked you for contact already; answer their request instead")
        if status == "accepted":
            raise Conflict("you are in contact with this member already")
        if status == "declined" and asked_by == requester_id and answered is not None \
                and now < answered + policy.decline_pause:
            raise Conflict("this member declined your request recently; you may ask again "
                           f"{policy.decline_pause.days} days after the answer",
                           retry_after=math.ceil((answered + policy.decline_pause - now).total_seconds()))


def authorize_answer(principal: Principal, recipient_id: str) -> None:
    """Only the member asked answers a contact request; Forbidden (403) otherwise."""
    if not principal.is_member(recipient_id):
        raise Forbidden("only the member asked may answer a contact request")


def can_see_contact(principal: Principal, member_id: str, in_contact: bool) -> bool:
    """Who sees a member's contact person and e-mail (``GET /members/{id}/contact``): the member
    itself, admins, and a member joined to it by an accepted contact request or a formed partner
    project (``in_contact``)."""
    return principal.is_admin or principal.is_member(member_id) or (principal.role == "member" and in_contact)


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_proxies: tuple[str, ...]) -> str:
    """The address of the client a sign-in request counts against: the connection's peer, or, when
    that peer is a trusted proxy (the portal, a reverse proxy: ``TRUSTED_PROXIES``), the last address
    it put into ``X-Forwarded-For`` (the one it saw; earlier entries are the client's own claims)."""
    remote = remote_addr or "unknown"
    if forwarded_for and remote in trusted_proxies:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return remote


STAFF_ROLES = ("organizer", "admin")


def staff_account_label(role: str, association: str | None, language: str) -> str:
    """What a staff sign-in mail says the link is for ("für den Organisator-Zugang im Automobilcluster"),
    so a person who is also a member's contact knows which of their links opens which account."""
    if role == "admin":
        return "den Administrator-Zugang" if language == "de" else "the admin account"
    place = reference.label("association", association or "", language)
    return f"den Organisator-Zugang im {place}" if language == "de" else f"the organizer account of the {place}"
