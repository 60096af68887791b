"""The rules of matching around the engine: the no-spam limits, stale versions,
when suggestions count as changed, who may see and answer what, and how
responses decide a proposal. No I/O, no nameko: plain functions."""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from verbund.auth import Principal
from verbund.errors import Forbidden, Unprocessable

# No spam: a member is invited to at most this many open proposals at a time, and one event
# leads to proposals around at most this many members.
MAX_OPEN_INVITATIONS = 3
PROPOSALS_PER_EVENT = 5


@dataclass(frozen=True)
class ProposalPolicy:
    """When a team is worth proposing on its own and when a proposal gives way (coverages are
    shares of the anchor's needs in [0, 1], each need counted with the strength it is met with).

    ``min_coverage``: a team is proposed without being asked for only if it covers at least this
    share (0.6: two of three needs fully, or all of them by close free-text matches; half of the
    needs is not a team for them yet).
    ``supersede_gain`` and ``quiet``: an open proposal gives way to a team that covers this much
    more of the needs, and not before it has stood for ``quiet`` - the member has time to answer
    and is not told of a new team every few days. ``quiet`` also separates a declined proposal from
    the next one made without being asked for (a member can ask for one sooner)."""
    min_coverage: float = 0.6
    supersede_gain: float = 0.25
    quiet: timedelta = timedelta(days=7)


# The rules in force; the churn benchmark swaps in the earlier ones for comparison.
POLICY = ProposalPolicy()
# Before proposals held still: any team, replaced by one 20 points better at any time.
UNSTEADY_POLICY = ProposalPolicy(min_coverage=0.0, supersede_gain=0.2, quiet=timedelta(0))

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
    announced again. SHA-256 of the list as key-sorted compact JSON (orjson), base64url without
    padding: 43 characters, so that it is told apart from the 64 hex digits stored before."""
    digest = hashlib.sha256(orjson.dumps(suggestions, option=orjson.OPT_SORT_KEYS)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def told_in_earlier_form(stored: str | None, suggestions: list[dict]) -> bool:
    """Whether ``stored``, a fingerprint in the form kept until 2026-12 (64 hex digits of the
    standard library's key-sorted JSON), is that of ``suggestions``: an unchanged list is then not
    announced again after an upgrade."""
    if stored is None or len(stored) != 64:
        return False
    legacy = json.dumps(suggestions, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(legacy).hexdigest() == stored


def member_key(member_ids) -> str:
    return ",".join(sorted(member_ids))


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def can_see_member(principal: Principal, member_id: str) -> bool:
    return principal.is_admin or principal.is_member(member_id)


def can_see_proposal(principal: Principal, member_ids: list[str]) -> bool:
    return principal.is_admin or (principal.role == "member" and principal.member_id in member_ids)


def is_busy(open_invitations: int) -> bool:
    """A member invited to MAX_OPEN_INVITATIONS open proposals is not invited to another."""
    return open_invitations >= MAX_OPEN_INVITATIONS


def utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives them back naive)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def clearly_covers(coverage: float, policy: ProposalPolicy | None = None) -> bool:
    """A team is proposed without being asked for only if it covers ``policy.min_coverage`` of the
    anchor's needs."""
    return coverage >= (policy or POLICY).min_coverage


def too_soon(now: datetime, since: datetime | None, policy: ProposalPolicy | None = None) -> bool:
    """True while ``since`` (a proposal made, or declined) is less than ``policy.quiet`` ago."""
    return since is not None and now - utc(since) < (policy or POLICY).quiet


def supersedes(new_coverage: float, open_coverage_now: float, open_since: datetime, now: datetime,
               policy: ProposalPolicy | None = None) -> bool:
    """Whether a new team replaces the anchor's open proposal (hysteresis).

    ``open_coverage_now``: how much of the anchor's needs the open team covers as the profiles are
    now. If it no longer clearly covers them (the anchor changed its needs, a partner its offers),
    any team that does replaces it at once. Otherwise only a team that covers ``supersede_gain``
    more, and only once the open one has stood for ``quiet``."""
    policy = policy or POLICY
    if not clearly_covers(open_coverage_now, policy):
        return clearly_covers(new_coverage, policy) and new_coverage > open_coverage_now
    return not too_soon(now, open_since, policy) and new_coverage >= open_coverage_now + policy.supersede_gain


def answering_member(principal: Principal, named: str | None) -> str:
    """Who answers a proposal: a member for itself (naming another is Forbidden), an admin for the
    member it names (Unprocessable without one); any other role is Forbidden."""
    if principal.is_admin:
        if not named:
            raise Unprocessable("validation failed", fields={"member_id": ["an admin names the member it answers for"]})
        return named
    if principal.role == "member":
        if named and named != principal.member_id:
            raise Forbidden("a member answers for itself only")
        return principal.member_id
    raise Forbidden("only invited members (or an admin) answer proposals")


def check_invited(principal: Principal, member_id: str, invited) -> None:
    """The answering member must be invited: an admin naming another gets a field error (422),
    a member a 403."""
    if member_id not in invited:
        if principal.is_admin:
            raise Unprocessable("validation failed", fields={"member_id": ["not invited to this proposal"]})
        raise Forbidden("you are not invited to this proposal")


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
