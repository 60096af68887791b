"""nameko dependency providers of members (besides the kit's Database)."""
from __future__ import annotations

import logging

import eventlet
from nameko.rpc import RpcProxy

from verbund.settings import portal_url

log = logging.getLogger(__name__)

PUBLISH_DELAY_SECONDS = 0.05

# Where each kind of mail's link leads in the portal (``purpose`` of the RPC ``send_sign_in_link``).
PORTAL_PATHS = {"sign_in": "/sign-in/{token}", "welcome": "/sign-in/{token}",
                "confirm_email": "/email-confirmation/{token}", "email_change_notice": "/profile"}


def portal_link(base: str, purpose: str, token: str | None) -> str:
    """The portal address a mail of ``purpose`` links to (``PORTAL_PATHS``), under ``base`` (PORTAL_URL)."""
    return base + PORTAL_PATHS[purpose].format(token=token)


class SignInMail(RpcProxy):
    """``self.sign_in_mail(recipients, issue)`` makes each recipient's link (``issue(recipient)``: a
    unit of work with ``services.issue_sign_in_link``) and has notifications-service mail it by RPC
    (``notifications.send_sign_in_link``): the link's secret travels on the services' own RPC
    exchange, never on the event exchange integrators read.
    Both happen in a thread of their own after the answer is on its way (the token's insert and
    publishing with confirms took ~12 ms, which told a known address from an unknown one), and the
    RPC's reply is not waited for; a mail that cannot be sent is logged by notifications, and the
    person asks again.

    ``issue`` None: each recipient carries its ``token`` already (made in the request's own unit of
    work: a changed address's confirmation, a self-registration's welcome). A recipient's ``purpose``
    (``PORTAL_PATHS``; ``sign_in`` when left out) chooses the mail's wording and its link."""

    def __init__(self, **options):
        super().__init__("notifications", **options)

    def get_dependency(self, worker_ctx):
        proxy = super().get_dependency(worker_ctx)

        def publish(recipients: list[dict], issue) -> None:
            eventlet.sleep(PUBLISH_DELAY_SECONDS)  # the answer first: it leaves before this work starts
            base = portal_url()
            for recipient in recipients:
                try:
                    link = issue(recipient) if issue is not None else recipient
                    purpose = link.get("purpose", "sign_in")
                    proxy.send_sign_in_link.call_async(
                        email=link["email"], contact_name=link["contact_name"], organisation=link["organisation"],
                        language=link["language"], link=portal_link(base, purpose, link.get("token")),
                        expires_minutes=link["expires_minutes"], purpose=purpose)
                except Exception:  # the database or broker is down: the person sees no mail and asks again
                    log.exception("a link for %s could not be made or handed to notifications",
                                  recipient.get("member_id") or f"staff account {recipient.get('staff_id')}")

        def send(recipients: list[dict], issue=None) -> None:
            self.container.spawn_managed_thread(lambda: publish(recipients, issue),
                                                identifier="members.sign_in_mail")

        return send


class StaffInvitationMail(RpcProxy):
    """``self.staff_invitation(link)`` has notifications-service mail a new staff account its
    invitation (``notifications.send_staff_invitation``) with the sign-in link ``{PORTAL_URL}/sign-in/
    {token}``; ``link`` is what ``services.invite_link`` returns, ``invited_by`` the inviting person's
    name. By RPC like the sign-in link (the secret never goes on the event exchange), not waited for."""

    def __init__(self, **options):
        super().__init__("notifications", **options)

    def get_dependency(self, worker_ctx):
        proxy = super().get_dependency(worker_ctx)

        def send(link: dict, invited_by: str | None) -> None:
            try:
                proxy.send_staff_invitation.call_async(
                    email=link["email"], name=link["contact_name"], role=link["role"],
                    association=link["association"], language=link["language"], invited_by=invited_by,
                    link=f"{portal_url()}/sign-in/{link['token']}", expires_hours=link["expires_hours"])
            except Exception:  # the broker is down: the admin sees no mail arrive and invites again
                log.exception("invitation of staff account %s could not be handed to notifications",
                              link["staff_id"])

        return send
