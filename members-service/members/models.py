"""members-service tables: a member, its offers and needs, its tags
(topics and associations). A deleted member stays as a tombstone with its
id and version only, so late updates get 410 and versions keep rising."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from members.domain import size_category, size_profile
from verbund.database import UTCDateTime
from verbund.envelope import isoformat
from verbund.schema_fields import search_key

# Search keys (verbund.schema_fields.search_key: NFC, case-folded) of the texts a list filters on,
# kept next to the text on every write: SQLite's lower() folds ASCII only, and neither database
# folds "ß" to "ss" or composes "u" + U+0308. Folding can lengthen text (ß -> ss), hence the room.
KEY_ROOM = 3


class Base(DeclarativeBase):
    pass


class Competency(Base):
    __tablename__ = "member_competencies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(5))  # "offer" or "need"
    position: Mapped[int] = mapped_column(Integer)
    term: Mapped[str | None] = mapped_column(String(100), index=True)
    label: Mapped[str] = mapped_column(String(200))
    label_key: Mapped[str | None] = mapped_column(String(200 * KEY_ROOM), index=True)
    description: Mapped[str | None] = mapped_column(Text)


class Tag(Base):
    """A topic or an association of a member, kept as rows so lists can filter on them."""
    __tablename__ = "member_tags"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    facet: Mapped[str] = mapped_column(String(20), primary_key=True)  # "topic" or "association"
    value: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class Member(Base):
    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # Unique while the member exists; cleared on erasure so the organisation may register again.
    organisation_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    name_key: Mapped[str | None] = mapped_column(String(200 * KEY_ROOM))
    sector: Mapped[str | None] = mapped_column(String(20), index=True)
    state: Mapped[str | None] = mapped_column(String(2), index=True)
    postcode: Mapped[str | None] = mapped_column(String(5))
    city: Mapped[str | None] = mapped_column(String(100))
    city_key: Mapped[str | None] = mapped_column(String(100 * KEY_ROOM), index=True)
    employees: Mapped[int | None] = mapped_column(Integer)
    turnover_eur: Mapped[int | None] = mapped_column(BigInteger)
    balance_sheet_eur: Mapped[int | None] = mapped_column(BigInteger)
    size_category: Mapped[str | None] = mapped_column(String(6), index=True)  # derived, kept for filtering
    website: Mapped[str | None] = mapped_column(String(500))
    contact_name: Mapped[str | None] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    contact_language: Mapped[str | None] = mapped_column(String(2))
    # A changed contact e-mail waits here until the link mailed to it is used (EmailConfirmation).
    contact_pending_email: Mapped[str | None] = mapped_column(String(320))
    # When a link mailed to the contact address was last used: the address is the member's.
    contact_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_suggest: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_email: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    competencies: Mapped[list[Competency]] = relationship(
        cascade="all, delete-orphan", order_by=(Competency.kind, Competency.position), lazy="selectin")
    tags: Mapped[list[Tag]] = relationship(cascade="all, delete-orphan", order_by=(Tag.facet, Tag.position),
                                           lazy="selectin")

    __mapper_args__ = {"version_id_col": version}

    def _competencies(self, kind: str) -> list[dict]:
        return [{"term": c.term, "label": c.label, "description": c.description}
                for c in self.competencies if c.kind == kind]

    def _tags(self, facet: str) -> list[str]:
        return [tag.value for tag in self.tags if tag.facet == facet]

    def profile(self) -> dict:
        """The member as the API shows it and events carry it."""
        return {
            "id": self.id,
            "version": self.version,
            "name": self.name,
            "sector": self.sector,
            "associations": self._tags("association"),
            "region": {"state": self.state, "postcode": self.postcode, "city": self.city},
            "size": size_profile(self.employees, self.turnover_eur, self.balance_sheet_eur),
            "website": self.website,
            "contact": {"name": self.contact_name, "email": self.contact_email, "language": self.contact_language,
                        # only while a new address waits for confirmation (never in events)
                        **({"pending_email": self.contact_pending_email} if self.contact_pending_email else {})},
            "offers": self._competencies("offer"),
            "needs": self._competencies("need"),
            "topics": self._tags("topic"),
            "consent": {"suggest_as_partner": self.consent_suggest, "email": self.consent_email},
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
        }

    def set_profile(self, data: dict) -> None:
        """Write validated, resolved profile fields onto the row and its children."""
        self.name = data["name"]
        self.name_key = search_key(self.name)
        self.sector = data["sector"]
        self.state, self.postcode, self.city = (data["region"][k] for k in ("state", "postcode", "city"))
        self.city_key = search_key(self.city)
        size = data["size"]
        self.employees = size["employees"]
        self.turnover_eur = size.get("turnover_eur")
        self.balance_sheet_eur = size.get("balance_sheet_eur")
        self.size_category = size_category(self.employees, self.turnover_eur, self.balance_sheet_eur)
        self.website = data.get("website")
        contact = data["contact"]
        self.contact_name, self.contact_email, self.contact_language = contact["name"], contact["email"], \
            contact["language"]
        self.consent_suggest = data["consent"]["suggest_as_partner"]
        self.consent_email = data["consent"]["email"]
        self.competencies = [
            Competency(kind=kind, position=i, term=item["term"], label=item["label"],
                       label_key=search_key(item["label"]), description=item.get("description"))
            for kind, items in (("offer", data["offers"]), ("need", data["needs"]))
            for i, item in enumerate(items)
        ]
        self.tags = [Tag(facet=facet, value=value, position=i)
                     for facet, values in (("association", data["associations"]), ("topic", data["topics"]))
                     for i, value in enumerate(values)]

    def erase(self, when: datetime) -> None:
        """GDPR erasure: keep id and version, forget everything else."""
        for column in ("organisation_key", "name", "name_key", "sector", "state", "postcode", "city", "city_key",
                       "employees", "turnover_eur", "balance_sheet_eur", "size_category", "website", "contact_name",
                       "contact_email", "contact_language", "contact_pending_email", "contact_confirmed_at"):
            setattr(self, column, None)
        self.consent_suggest = self.consent_email = False
        self.competencies = []
        self.tags = []
        self.deleted_at = self.updated_at = when


class MemberKey(Base):
    """The member's own key for the personal fields its events carry encrypted (verbund.personal,
    JWE kid = member id). Erasure deletes it in the same transaction as the profile: every copy of
    the ciphertext anywhere becomes unreadable (crypto-shredding, GDPR art. 17)."""
    __tablename__ = "member_keys"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary(32))  # 256-bit AES-GCM key
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IntegratorGrant(Base):
    """An integrator's current grant, as ``verbund integrator`` last recorded it: the event types it
    may read (topic patterns, JSON list) and whether it may see personal data. ``serial`` rises with
    every grant and is the ``grant`` claim of the tokens issued under it; the key endpoint and the
    profiles refuse a token of an older serial, so narrowing a scope takes back the old tokens."""
    __tablename__ = "integrator_grants"

    name: Mapped[str] = mapped_column(String(41), primary_key=True)
    events: Mapped[str] = mapped_column(Text)  # JSON list of topic patterns
    personal: Mapped[bool] = mapped_column(Boolean)
    serial: Mapped[int] = mapped_column(Integer)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when an admin revoked the integrator: its tokens are refused everywhere (verbund.staff).
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def view(self) -> dict:
        return {"name": self.name, "events": json.loads(self.events), "personal": self.personal,
                "serial": self.serial, "granted_at": isoformat(self.granted_at),
                "revoked_at": isoformat(self.revoked_at) if self.revoked_at else None}


class SignInToken(Base):
    """A single-use sign-in link's secret, kept only as its SHA-256 hash (a stolen table opens no
    session). ``used_at`` is set by the one exchange that wins; expired and used rows are swept."""
    __tablename__ = "sign_in_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256 of the link's secret
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInAttempt(Base):
    """One sign-in request, counted against the rate limits: ``scope`` is ``address`` or ``client``,
    ``key`` the SHA-256 of the normalised e-mail address or of the client's IP address (known or not,
    no address is stored in clear)."""
    __tablename__ = "sign_in_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_sign_in_attempts_scope_key_at", "scope", "key", "at"),)


class ContactRequest(Base):
    """A member's request to get in touch with another (privacy by relationship): only an accepted
    request lets the two see each other's contact person. ``status`` as stored is pending, accepted
    or declined; a pending request past ``expires_at`` is shown as expired (``domain.contact_status``)."""
    __tablename__ = "contact_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    requester_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffAccount(Base):
    """An organizer (of one association) or an admin of the platform, who signs in by e-mail link like
    a member. ``status`` is active or revoked; a revoked account's tokens are refused on the next
    request (``verbund.staff``). ``email`` is stored lower-cased: one account per address."""
    __tablename__ = "staff_accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))  # organizer or admin
    association: Mapped[str | None] = mapped_column(String(40))  # organizers only
    language: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(10))  # active or revoked
    invited_by: Mapped[str | None] = mapped_column(String(200))  # a staff id, or "cli"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def view(self) -> dict:
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role,
                "association": self.association, "language": self.language, "status": self.status,
                "invited_by": self.invited_by, "created_at": isoformat(self.created_at),
                "revoked_at": isoformat(self.revoked_at) if self.revoked_at else None}


class StaffSignInToken(Base):
    """A staff account's single-use sign-in link (an invitation or a sign-in request), kept as its
    SHA-256 hash like a member's (``SignInToken``); an invitation's link lives longer."""
    __tablename__ = "staff_sign_in_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EmailConfirmation(Base):
    """A link that confirms a changed contact e-mail (``email``), kept only as its SHA-256 hash; single
    use, 24 hours. Using it makes ``email`` the member's contact e-mail."""
    __tablename__ = "email_confirmations"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProjectContact(Base):
    """A member of a formed partner project (``project.formed`` from matching-service): the members of
    one project see each other's contact person, as if a contact request had been accepted."""
    __tablename__ = "project_contacts"

    project_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    title: Mapped[str] = mapped_column(String(500))
    formed_at: Mapped[datetime] = mapped_column(UTCDateTime)
