"""The rules of matching around the engine: stale versions, when suggestions
count as changed, who may see what, and how responses decide a proposal.
No I/O, no nameko: plain functions."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from verbund.auth import Principal

# Profile fields whose change can change a member's partners or consortia.
MATCHING_FIELDS = frozenset({"sector", "region", "size", "offers", "needs", "topics", "consent", "name"})
RESPONSES = {"accept": "accepted", "decline": "declined"}


def is_stale(held_version: int | None, incoming_version: int) -> bool:
    """An event older than (or as old as) what the read model holds changes nothing."""
    return held_version is not None and incoming_version <= held_version


def affects_matching(changed: list[str] | None) -> bool:
    return changed is None or bool(MATCHING_FIELDS & set(changed))


def fingerprint(suggestions: list[dict]) -> str:
    """What a member was told: the same suggestions give the same fingerprint, so they are not
    announced again."""
    return hashlib.sha256(json.dumps(suggestions, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def member_key(member_ids) -> str:
    return ",".join(sorted(member_ids))


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def can_see_member(principal: Principal, member_id: str) -> bool:
    return principal.is_admin or principal.is_member(member_id)


def can_see_proposal(principal: Principal, member_ids: list[str]) -> bool:
    return principal.is_admin or (principal.role == "member" and principal.member_id in member_ids)


@dataclass(frozen=True)
class Decision:
    status: str                   # proposed, formed, closed
    event: str | None             # project.formed / project.closed, or None
    closed_reason: str | None = None


def decide(responses: dict[str, str]) -> Decision:
    """What the members' responses mean: one decline closes, all accepts form."""
    if any(response == "declined" for response in responses.values()):
        return Decision("closed", "project.closed", "declined")
    if responses and all(response == "accepted" for response in responses.values()):
        return Decision("formed", "project.formed")
    return Decision("proposed", None)


def declined_pairs(decliner: str, member_ids: list[str]) -> list[tuple[str, str]]:
    """A decline rules out the decliner together with each other member of the team."""
    return [pair(decliner, other) for other in member_ids if other != decliner]
