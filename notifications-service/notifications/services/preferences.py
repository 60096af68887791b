"""Use cases of a member's notification preferences and the one-click unsubscribe."""
from __future__ import annotations

from sqlalchemy import delete, insert, update

from notifications import deliveries, domain, queries
from notifications.models import Delivery, Preference, PreferenceKind, PreferenceTopic
from verbund.auth import Principal
from verbund.database import UnitOfWork


def set_preferences(uow: UnitOfWork, principal: Principal, member_id: str, changes: dict,
                    default_frequency: str = domain.DEFAULT_FREQUENCY) -> dict:
    """Change a member's preferences; ``changes`` as PreferencesSchema loads them (fields left out
    stay; in ``kinds`` a kind set to None goes back to the policy). Turning e-mail off cancels mails
    not yet sent; back to ``immediately`` releases what a digest held. Returns the preferences view.
    Forbidden (403) for another member, Gone (410) erased."""
    domain.check_own(principal, member_id, "preferences")
    session, now = uow.session, uow.now()
    queries.live_recipient(session, member_id)
    preference = session.get(Preference, member_id, with_for_update=True)
    if preference is None:
        preference = Preference(member_id=member_id, email=True, webhook=True, frequency=default_frequency,
                                topics_filter=False, updated_at=now)
        session.add(preference)
    channels = changes.get("channels", {})
    if "email" in channels:
        preference.email = channels["email"]
    if "webhook" in channels:
        preference.webhook = channels["webhook"]
    if "language" in changes:
        preference.language = changes["language"]
    if "frequency" in changes:
        preference.frequency = changes["frequency"]
    for kind, mode in changes.get("kinds", {}).items():
        session.execute(delete(PreferenceKind).where(PreferenceKind.member_id == member_id,
                                                     PreferenceKind.kind == kind))
        if mode is not None:
            session.add(PreferenceKind(member_id=member_id, kind=kind, mode=mode))
    if "topics" in changes:
        session.execute(delete(PreferenceTopic).where(PreferenceTopic.member_id == member_id))
        preference.topics_filter = changes["topics"] is not None
        if changes["topics"]:
            session.execute(insert(PreferenceTopic), [{"member_id": member_id, "topic": topic}
                                                      for topic in dict.fromkeys(changes["topics"])])
    preference.updated_at = now
    session.flush()
    if not preference.email:
        deliveries.cancel_pending_emails(uow, member_id, "the member turned e-mail off")
    elif domain.releases_held(preference.email, preference.frequency):
        # Entries waiting for a digest go out now.
        session.execute(update(Delivery).where(Delivery.channel == "email", Delivery.target == member_id,
                                               Delivery.status == "held")
                        .values(status="pending", next_attempt_at=now))
    return queries.preferences_view(session, member_id, default_frequency)


def unsubscribe(uow: UnitOfWork, token: str, secret: str) -> str:
    """Turn e-mail off for the member the token was made for; returns its id. NotFound (404)
    for a token that is not valid or a member no longer known."""
    member_id = queries.unsubscribe_member(uow.session, token, secret)
    set_preferences(uow, Principal("unsubscribe", "member", member_id=member_id), member_id,
                    {"channels": {"email": False}})
    return member_id
