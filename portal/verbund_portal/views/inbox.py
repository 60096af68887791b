"""The inbox (unread count in the header), marking read, and notification preferences."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from verbund_portal import api
from verbund_portal.app import member_required, page_number, services
from verbund_portal.confirm import confirm_page, confirmed
from verbund_portal.forms import EmptyForm, WebhookForm, preferences_form, service_errors

blueprint = Blueprint("inbox", __name__)

# Where a notification's member acts on it, by its event type, while an inbox item has no ``link``.
PAGES_BY_TYPE = {"contact": "/contacts", "project": "/projects", "match": "/suggestions", "event": "/events",
                 "registration": "/events"}


def item_link(item: dict) -> str | None:
    """The portal page an inbox item leads to: the service's ``link`` (a path on this site), else
    one derived from its type (``contact.accepted`` → ``/contacts``)."""
    link = item.get("link")
    if isinstance(link, str) and link.startswith("/") and not link.startswith("//") and "\\" not in link:
        return link
    return PAGES_BY_TYPE.get(str(item.get("type") or "").split(".")[0])


@blueprint.app_template_filter("inbox_link")
def inbox_link_filter(item: dict) -> str | None:
    return item_link(item)


@blueprint.route("/inbox")
@member_required
def index():
    page = page_number()
    inbox = services().get("notifications", f"/members/{g.member['member_id']}/notifications",
                           params={"page": page, "per_page": 20})
    return render_template("inbox.html", inbox=inbox, page=page, form=EmptyForm())


@blueprint.route("/inbox/<int:notification_id>/read", methods=["POST"])
@member_required
def mark_read(notification_id: int):
    if EmptyForm().validate_on_submit():
        services().post("notifications", f"/members/{g.member['member_id']}/notifications/{notification_id}/read")
    return redirect(url_for("inbox.index"))


@blueprint.route("/inbox/read", methods=["POST"])
@member_required
def mark_all_read():
    if EmptyForm().validate_on_submit():
        services().post("notifications", f"/members/{g.member['member_id']}/notifications/read")
        flash(_("All messages are marked as read."))
    return redirect(url_for("inbox.index"))


@blueprint.route("/preferences", methods=["GET", "POST"])
@member_required
def preferences():
    """How news reaches me: per kind at once, in the digest or the inbox only (notifications'
    ``kinds``), the digest's frequency, webhooks; e-mail consent and language are the profile's
    own (members-service), so the profile and this page never disagree. The inbox always gets everything."""
    member_id = g.member["member_id"]
    path = f"/members/{member_id}/preferences"
    current = services().get("notifications", path)
    profile = services().get("members", f"/members/{member_id}")
    kinds = current.get("kinds") or {}
    # the webhook switch means something only with an address to send to: without one the page offers
    # to add one instead, and saving keeps the channel as it is (so a webhook added later gets messages)
    endpoints = services().get("notifications", "/webhooks")
    has_webhooks = bool(endpoints.get("items", endpoints) if isinstance(endpoints, dict) else endpoints)
    form = preferences_form(kinds)
    form_errors = []
    if request.method == "GET":
        # e-mail goes out only with both: the profile's consent and notifications' channel (which an
        # unsubscribe link turns off); saving here sets both alike
        form.email.data = bool((profile.get("consent") or {}).get("email")) and \
            bool((current.get("channels") or {}).get("email", True))
        form.webhook.data = (current.get("channels") or {}).get("webhook")
        form.frequency.data = current.get("frequency")
        form.language.data = (profile.get("contact") or {}).get("language") or "de"
        for field in form.kind_fields():
            field.data = kinds.get(field.name.removeprefix("kind_"))
    elif form.validate_on_submit():
        changed = {field.name.removeprefix("kind_"): field.data for field in form.kind_fields()
                   if field.data != kinds.get(field.name.removeprefix("kind_"))}
        try:
            services().call("PATCH", "members", f"/members/{member_id}", json={
                "contact": {"language": form.language.data}, "consent": {"email": form.email.data}})
            # The profile's consent and language are the settings; notifications follows them
            # (its own language override cleared, its e-mail channel on when consent is given).
            services().call("PUT", "notifications", path, json={
                "channels": {"inbox": True, "email": form.email.data,
                             "webhook": form.webhook.data if has_webhooks else
                             bool((current.get("channels") or {}).get("webhook", True))},
                "frequency": form.frequency.data, "language": None, **({"kinds": changed} if changed else {})})
        except api.ApiError as error:
            if error.status != 422:
                raise
            form_errors = service_errors(form, error)
        else:
            session["language"] = form.language.data
            flash(_("Your preferences have been saved."))
            return redirect(url_for("inbox.preferences"))
    status = 422 if form.errors or form_errors else 200
    return render_template("preferences.html", form=form, form_errors=form_errors, has_webhooks=has_webhooks,
                           email_address=(profile.get("contact") or {}).get("email")), status


@blueprint.route("/webhooks", methods=["GET", "POST"])
@member_required
def webhooks():
    """For members whose own systems (a CRM) want their notifications: signed HTTPS calls.
    The signing secret is shown once, on the page that answers the new endpoint."""
    form = WebhookForm()
    form_errors, created = [], None
    if form.validate_on_submit():
        try:
            created = services().post("notifications", "/webhooks", json={
                "url": form.url.data.strip(), "description": (form.description.data or "").strip() or None})
        except api.ApiError as error:
            if error.status not in (403, 422):
                raise
            form_errors = service_errors(form, error)
        else:
            form = WebhookForm(formdata=None)
    endpoints = services().get("notifications", "/webhooks")
    endpoints = endpoints.get("items", endpoints) if isinstance(endpoints, dict) else endpoints
    status = 422 if form.errors or form_errors else 200
    return render_template("webhooks.html", form=form, form_errors=form_errors, endpoints=endpoints,
                           created=created, delete_form=EmptyForm()), status


@blueprint.route("/webhooks/<endpoint_id>/delete", methods=["GET", "POST"])
@member_required
def delete_webhook(endpoint_id: str):
    """Remove a webhook, after a confirmation page (GET) naming its address."""
    endpoints = services().get("notifications", "/webhooks")
    endpoints = endpoints.get("items", endpoints) if isinstance(endpoints, dict) else endpoints
    endpoint = next((w for w in endpoints if str(w["id"]) == endpoint_id), None)
    if endpoint is None:  # removed already, or not this member's
        return redirect(url_for("inbox.webhooks"))
    if confirmed():
        services().call("DELETE", "notifications", f"/webhooks/{endpoint_id}")
        flash(_("The webhook has been removed."))
        return redirect(url_for("inbox.webhooks"))
    lines = [_("%(url)s will no longer receive your notifications, and its signing secret stops being used.",
               url=endpoint["url"]),
             _("To receive them there again, you add the address anew and get a new secret.")]
    return confirm_page(_("Remove this webhook?"), lines, _("Yes, remove the webhook"), url_for("inbox.webhooks"),
               _("No, keep the webhook"))
