"""The rules of member profiles. No I/O, no nameko: plain functions."""
from __future__ import annotations

from verbund.auth import Principal
from verbund.errors import Forbidden, Unprocessable
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
    return {**profile, "contact": {"name": None, "email": None, "language": profile["contact"]["language"]}}
