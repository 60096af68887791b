"""notifications-service entrypoints: the event subscriber, the timers that
send, and the HTTP API. Entrypoints only: each parses (the ``@api``
schemas load bodies and query strings), authorises and hands its work to one
use case (``notifications.services``), query (``notifications.queries``) or
sender (``notifications.dispatch``)."""
from __future__ import annotations

import html
import logging
import sys
import time

from nameko.timer import timer
from werkzeug.wrappers import Response

from notifications import dispatch, meetings, queries, schemas, services, sign_in
from notifications.config import Config
from notifications.dependencies import Channels
from notifications.schemas import InboxQuerySchema, PageQuerySchema
from verbund.errors import NotFound
from verbund.personal import MemberKeys
from verbund.reference import LANGUAGES
from verbund.rpc import rpc
from verbund.service import Companion, ServiceBase
from verbund.settings import data_dir, env
from verbund.subscriber import subscribe
from verbund.web import ANYONE, api, json_response

log = logging.getLogger(__name__)

CONFIG = Config.from_env()  # timer intervals are read when the class is defined
OWNERS = ("admin", "member")
WEBHOOK_OWNERS = ("admin", "member", "integrator")


def _page(title: str, text: str, form_action: str | None = None, status: int = 200) -> Response:
    button = (f'<form method="post" action="{html.escape(form_action)}">'
              '<button type="submit">E-Mails abbestellen / Unsubscribe</button></form>') if form_action else ""
    body = (f'<!doctype html><html lang="de"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}</body></html>")
    return Response(body, status=status, mimetype="text/html")


class NotificationsService(ServiceBase):
    name = "notifications"
    channels = Channels()
    member_keys = MemberKeys()  # the contact person of member.* v2, decrypted with the member's key

    @classmethod
    def companions(cls) -> list[Companion]:
        """Embedded default: with no SMTP_HOST, mails go to a local catcher that keeps each one as an
        ``.eml`` file (``verbund up`` starts it)."""
        if env("SMTP_HOST", service="notifications"):
            return []
        port = env("SMTP_PORT", "8025", service="notifications")
        return [Companion("mail catcher", [sys.executable, "-m", "notifications.mailcatcher", "--port", port],
                          f"smtp://127.0.0.1:{port}   (mails as .eml files in {data_dir() / 'mail'})")]

    # --- consuming ---------------------------------------------------------------------------------

    @subscribe(batch=True)
    def on_events(self, events):
        """A batch of consumed events (one at a time when CONSUME_BATCH_SIZE is 1) in one transaction:
        ``services.on_events`` for those not handled before. The members' keys the batch needs are
        fetched before that transaction opens, so no RPC waits while it holds the database."""
        started = time.monotonic()
        counts = {}
        keys = self.member_keys.prefetch(events)

        def handle(uow, fresh):
            counts.update(services.on_events(uow, fresh, keys, self.channels.config.policy))

        fresh = self.db.handle_batch(events, handle)
        if any(counts.values()):
            log.info("%d event(s) from %s fanned out in %.0f ms: %s", len(fresh), events[0]["id"],
                     (time.monotonic() - started) * 1000, counts)

    # --- sign-in links (RPC from members-service only: the link's secret is never an event) ----------

    @rpc
    def send_sign_in_link(self, email: str, contact_name: str | None, organisation: str | None,
                          language: str | None, link: str, expires_minutes: int, purpose: str = "sign_in") -> dict:
        """Mail a sign-in ``link`` (``{PORTAL_URL}/sign-in/<secret>``, valid ``expires_minutes``) to
        ``email`` in ``language`` (de/en), at once, whatever the member's notification preferences:
        the person asked for it. ``purpose`` (``sign_in.TEMPLATES``): ``sign_in``; ``welcome`` (after a
        self-registration, the link also confirms the address); ``confirm_email`` (the link that
        confirms a changed contact e-mail, to the new address); ``email_change_notice`` (to the old
        address, linking to the profile). Returns ``{"sent": bool, "error"?}``; nothing is stored."""
        with self.channels.smtp() as sender:
            return sign_in.send(self.channels.config, self.channels.renderer, sender, email=email,
                                contact_name=contact_name, organisation=organisation, language=language,
                                link=link, expires_minutes=expires_minutes, purpose=purpose)

    @rpc
    def send_staff_invitation(self, email: str, name: str | None, role: str, association: str | None,
                              language: str | None, invited_by: str | None, link: str, expires_hours: int) -> dict:
        """Mail a new staff account (``role`` organizer of ``association``, or admin) its invitation with
        the sign-in ``link`` (valid ``expires_hours``) in ``language`` (de/en), at once. Returns
        ``{"sent": bool, "error"?}``; nothing is stored, neither link nor address is logged."""
        with self.channels.smtp() as sender:
            return sign_in.send_invitation(self.channels.config, self.channels.renderer, sender, email=email,
                                           name=name, role=role, association=association, language=language,
                                           invited_by=invited_by, link=link, expires_hours=expires_hours)

    # --- sending -----------------------------------------------------------------------------------

    @timer(interval=CONFIG.dispatch_interval)
    def send_emails(self):
        with self.channels.smtp() as sender:
            dispatch.send_due_emails(self.db, self.channels.config, self.channels.renderer, self.channels.secret,
                                     sender, pacer=self.channels.pacer)

    @timer(interval=min(CONFIG.dispatch_interval, 0.5))
    def send_webhooks(self):
        self.channels.webhooks.dispatch_due(self.db)

    @timer(interval=CONFIG.digest_check_interval)
    def send_digests(self):
        with self.channels.smtp() as sender:
            dispatch.send_due_digests(self.db, self.channels.config, self.channels.renderer, self.channels.secret,
                                      sender)

    @timer(interval=CONFIG.meeting_check_interval)
    def write_meeting_mails(self):
        """Reminders before meetings, the daily summary of open requests, the survey
        (``meetings.run_timers``); the e-mail timer sends what they write."""
        policy = self.channels.config.policy

        def notify(uow, event):
            services.fanout.notify(uow, event, policy)

        counts = meetings.run_timers(self.db, self.channels.config.meeting_times, notify)
        if any(counts.values()):
            log.info("meeting mails written: %s", counts)

    # --- preferences and inbox ---------------------------------------------------------------------

    @api("GET", "/members/<string:member_id>/preferences", roles=OWNERS, errors=(410,),
         responses={200: ("The member's preferences (defaults until it sets some)", schemas.PREFERENCES)})
    def get_preferences(self, request, member_id):
        """Read a member's notification preferences."""
        with self.db.unit_of_work() as uow:
            return queries.get_preferences(uow.session, request.principal, member_id,
                                           self.channels.config.default_frequency)

    @api("PUT", "/members/<string:member_id>/preferences", roles=OWNERS, body=schemas.PreferencesSchema,
         errors=(410,), responses={200: ("The preferences as they now are", schemas.PREFERENCES)})
    def set_preferences(self, request, member_id):
        """Set channels, frequency (how often news arrive by e-mail), per-kind choices (``kinds``),
        topics and language; fields left out stay as they were."""
        with self.db.unit_of_work() as uow:
            return services.preferences.set_preferences(uow, request.principal, member_id, request.body_data,
                                                        self.channels.config.default_frequency)

    @api("GET", "/members/<string:member_id>/notifications", roles=OWNERS, query=InboxQuerySchema,
         errors=(410,), responses={200: ("A page of the inbox, newest first", schemas.INBOX_PAGE)})
    def inbox(self, request, member_id):
        """A member's inbox, newest first; ?unread=true for the unread ones. Entries are worded in the
        language the request's ``Accept-Language`` asks for (German or English, RFC 9110 section 12.5.4:
        the portal sends its page's language), else in the member's own."""
        with self.db.unit_of_work() as uow:
            return queries.inbox(uow.session, request.principal, member_id, request.query_data,
                                 self.channels.renderer, language=_asked_language(request))

    @api("POST", "/members/<string:member_id>/notifications/<int:notification_id>/read", roles=OWNERS,
         responses={200: ("The entry, now read", schemas.INBOX_ENTRY)})
    def mark_read(self, request, member_id, notification_id):
        """Mark one inbox entry read; the entry is worded as in the inbox (``Accept-Language``)."""
        with self.db.unit_of_work() as uow:
            return services.inbox.mark_read(uow, request.principal, member_id, notification_id,
                                            self.channels.renderer, language=_asked_language(request))

    @api("POST", "/members/<string:member_id>/notifications/read", roles=OWNERS,
         responses={200: ("How many entries were marked", {"type": "object",
                                                          "properties": {"marked": {"type": "integer"}}})})
    def mark_all_read(self, request, member_id):
        """Mark every inbox entry read."""
        with self.db.unit_of_work() as uow:
            return services.inbox.mark_all_read(uow, request.principal, member_id)

    # --- unsubscribe links (no login: the signed token is the permission) ---------------------------

    @api("GET", "/unsubscribe/<string:token>", roles=ANYONE,
         responses={200: ("A page with a button that unsubscribes", schemas.HTML_PAGE),
                    404: ("A page saying the link is invalid", schemas.HTML_PAGE)})
    def unsubscribe_page(self, request, token):
        """The page an unsubscribe link in a mail opens; an invalid link says so at once."""
        # A GET changes nothing: mail scanners follow links. The button POSTs.
        try:
            with self.db.unit_of_work() as uow:
                queries.unsubscribe_member(uow.session, token, self.channels.secret)
        except NotFound as exc:
            return _page("Link ungültig / Invalid link", exc.message, status=404)
        return _page("E-Mails abbestellen / Unsubscribe",
                     "Keine E-Mails mehr von Verbund erhalten? Ihr Posteingang auf der Plattform bleibt. / "
                     "Stop e-mails from Verbund? Your inbox on the platform stays.",
                     form_action=f"/unsubscribe/{token}")

    @api("POST", "/unsubscribe/<string:token>", roles=ANYONE,
         responses={200: ("E-mail is off for the member", schemas.HTML_PAGE),
                    404: ("A page saying the link is invalid", schemas.HTML_PAGE)})
    def unsubscribe(self, request, token):
        """Turn e-mail off (RFC 8058 one-click, or the page's button)."""
        # RFC 8058 one-click (body "List-Unsubscribe=One-Click") and the page's button alike.
        try:
            with self.db.unit_of_work() as uow:
                services.preferences.unsubscribe(uow, token, self.channels.secret)
        except NotFound as exc:
            return _page("Link ungültig / Invalid link", exc.message, status=404)
        return _page("Abgemeldet / Unsubscribed",
                     "Sie erhalten keine E-Mails mehr. / You will not receive e-mails any more.")

    # --- webhooks ----------------------------------------------------------------------------------

    @api("POST", "/webhooks", roles=WEBHOOK_OWNERS, body=schemas.WebhookSchema, errors=(410,),
         responses={201: ("The endpoint with its signing secret, shown this once", schemas.WEBHOOK)})
    def create_webhook(self, request):
        """Register a webhook: a member's gets its notifications, an integrator's the platform events it names."""
        with self.db.unit_of_work() as uow:
            return 201, services.webhooks.create_webhook(uow, request.principal, request.body_data)

    @api("GET", "/webhooks", roles=WEBHOOK_OWNERS,
         responses={200: ("The caller's endpoints (an admin's: all)", {
             "type": "object", "properties": {"items": {"type": "array", "items": schemas.WEBHOOK}}})})
    def list_webhooks(self, request):
        """List your webhook endpoints."""
        with self.db.unit_of_work() as uow:
            return queries.list_webhooks(uow.session, request.principal)

    @api("GET", "/webhooks/<string:endpoint_id>", roles=WEBHOOK_OWNERS,
         responses={200: ("The endpoint", schemas.WEBHOOK)})
    def get_webhook(self, request, endpoint_id):
        """Read a webhook endpoint."""
        with self.db.unit_of_work() as uow:
            return queries.get_webhook(uow.session, request.principal, endpoint_id)

    @api("PATCH", "/webhooks/<string:endpoint_id>", roles=WEBHOOK_OWNERS, body=schemas.WebhookPatchSchema,
         responses={200: ("The endpoint as it now is", schemas.WEBHOOK)})
    def update_webhook(self, request, endpoint_id):
        """Change an endpoint's URL, types or description; enable it again after a 410."""
        with self.db.unit_of_work() as uow:
            return services.webhooks.update_webhook(uow, request.principal, endpoint_id, request.body_data)

    @api("DELETE", "/webhooks/<string:endpoint_id>", roles=WEBHOOK_OWNERS,
         responses={204: "Removed, with its log"})
    def delete_webhook(self, request, endpoint_id):
        """Remove a webhook endpoint and its delivery log."""
        with self.db.unit_of_work() as uow:
            services.webhooks.delete_webhook(uow, request.principal, endpoint_id)
        return json_response(None, 204)

    @api("GET", "/webhooks/<string:endpoint_id>/deliveries", roles=WEBHOOK_OWNERS, query=PageQuerySchema,
         responses={200: ("Deliveries, newest first, each with every attempt", schemas.DELIVERY_PAGE)})
    def webhook_deliveries(self, request, endpoint_id):
        """The delivery log of an endpoint."""
        with self.db.unit_of_work() as uow:
            return queries.webhook_deliveries(uow.session, request.principal, endpoint_id, request.query_data)

    @api("GET", "/failures", roles=("admin",), query=PageQuerySchema,
         responses={200: ("Deliveries that gave up, with why", schemas.DELIVERY_PAGE)})
    def failures(self, request):
        """The failure log: e-mails and webhooks that could not be delivered."""
        with self.db.unit_of_work() as uow:
            return queries.failures(uow.session, request.query_data)


def _asked_language(request) -> str | None:
    """The language of ``Accept-Language`` among those notifications are written in; None if it names none."""
    return request.accept_languages.best_match(LANGUAGES)
