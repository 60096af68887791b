"""Bearer tokens with roles: admin, organizer (of one association), member
(of one member organisation), integrator (read-only). Tokens are JWTs
signed with the shared auth secret; ``verbund token`` issues them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import jwt

from verbund.envelope import utcnow
from verbund.reference import ASSOCIATIONS
from verbund.settings import auth_secret

ROLES = ("admin", "organizer", "member", "integrator")
ALGORITHM = "HS256"


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    member_id: str | None = None
    association: str | None = None
    # An integrator's scope: the event types it may read (AMQP topic patterns) and whether it may
    # read personal data (decrypt personal fields). Tokens without these claims read every event
    # type and no personal data.
    events: tuple[str, ...] = ("#",)
    personal: bool = False
    # The serial of the integrator's grant this token was issued under (members-service holds the
    # current one); None for tokens issued before grants were recorded.
    grant: int | None = None
    # A staff account's id (organizers and admins who signed in by e-mail link): members-service
    # holds the account, and a revoked account's tokens are refused (verbund.staff). None for
    # tokens issued by the command line (operators).
    staff_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def is_member(self, member_id: str) -> bool:
        return self.role == "member" and self.member_id == member_id


ANONYMOUS = Principal(subject="anonymous", role="anonymous")


def issue(role: str, subject: str, *, member_id: str | None = None, association: str | None = None,
          ttl: timedelta = timedelta(days=30), secret: str | None = None,
          events: tuple[str, ...] | None = None, personal: bool = False, grant: int | None = None,
          staff_id: str | None = None) -> str:
    """A signed JWT (HS256) for ``role``; ``events`` (topic patterns such as ``event.*``),
    ``personal`` and ``grant`` (the serial of its recorded grant, claim ``grant``) state an
    integrator's scope and are refused for other roles; ``staff_id`` (claim ``staff_id``) ties an
    admin or organizer token to its staff account, so revoking the account voids it."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "member" and not member_id:
        raise ValueError("a member token needs the member id")
    if role == "organizer" and association not in ASSOCIATIONS:
        raise ValueError(f"an organizer token needs an association: {', '.join(ASSOCIATIONS)}")
    now = utcnow()
    claims = {"sub": subject, "role": role, "iat": now, "exp": now + ttl}
    if member_id:
        claims["member_id"] = member_id
    if association:
        claims["association"] = association
    if (events is not None or personal or grant is not None) and role != "integrator":
        raise ValueError("only an integrator token has an event scope or personal-data access")
    if staff_id is not None:
        if role not in ("admin", "organizer"):
            raise ValueError("only an admin or organizer token belongs to a staff account")
        claims["staff_id"] = staff_id
    if events is not None:
        claims["events"] = list(events)
    if personal:
        claims["personal"] = True
    if grant is not None:
        claims["grant"] = grant
    return jwt.encode(claims, secret or auth_secret(), algorithm=ALGORITHM)


def verify(token: str, secret: str | None = None) -> Principal:
    try:
        claims = jwt.decode(token, secret or auth_secret(), algorithms=[ALGORITHM],
                            options={"require": ["sub", "role", "exp"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if claims["role"] not in ROLES:
        raise InvalidToken("unknown role")
    return Principal(subject=claims["sub"], role=claims["role"], member_id=claims.get("member_id"),
                     association=claims.get("association"),
                     events=tuple(claims.get("events") or ("#",)), personal=claims.get("personal") is True,
                     grant=claims["grant"] if type(claims.get("grant")) is int else None,
                     staff_id=claims.get("staff_id") if isinstance(claims.get("staff_id"), str) else None)


def from_header(value: str | None) -> Principal:
    """The principal of an ``Authorization: Bearer …`` header; anonymous without one."""
    if not value:
        return ANONYMOUS
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("expected 'Authorization: Bearer <token>'")
    return verify(token.strip())
