"""nameko dependency providers of members (besides the kit's Database)."""
from __future__ import annotations

import logging

from nameko.rpc import RpcProxy

from verbund.settings import portal_url

log = logging.getLogger(__name__)


class SignInMail(RpcProxy):
    """``self.sign_in_mail(links)`` has notifications-service mail each sign-in link
    (``services.request_sign_in``'s list) by RPC (``notifications.send_sign_in_link``): the link's
    secret travels on the services' own RPC exchange, never on the event exchange integrators read.
    The call is not waited for, so the HTTP answer takes as long for a known address as for an unknown
    one; a mail that cannot be sent is logged by notifications, and the person asks again."""

    def __init__(self, **options):
        super().__init__("notifications", **options)

    def get_dependency(self, worker_ctx):
        proxy = super().get_dependency(worker_ctx)

        def send(links: list[dict]) -> None:
            base = portal_url()
            for link in links:
                try:
                    proxy.send_sign_in_link.call_async(
                        email=link["email"], contact_name=link["contact_name"], organisation=link["organisation"],
                        language=link["language"], link=f"{base}/sign-in/{link['token']}",
                        expires_minutes=link["expires_minutes"])
                except Exception:  # the broker is down: the person sees no mail and asks again
                    log.exception("sign-in link for member %s could not be handed to notifications",
                                  link["member_id"])

        return send
