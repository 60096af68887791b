"""The inbox (unread count in the header), marking read, and notification preferences."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from verbund_portal import api
from verbund_portal.app import member_required, services
from verbund_portal.forms import EmptyForm, PreferencesForm, WebhookForm, apply_errors

blueprint = Blueprint("inbox", __name__)


@blueprint.route("/inbox")
@member_required
def index():
    page = max(1, request.args.get("page", 1, type=int) or 1)
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
    """How and how often news reaches me; the inbox always gets everything."""
    path = f"/members/{g.member['member_id']}/preferences"
    form = PreferencesForm()
    form_errors = []
    if request.method == "GET":
        current = services().get("notifications", path)
        form.email.data = (current.get("channels") or {}).get("email")
        form.webhook.data = (current.get("channels") or {}).get("webhook")
        form.frequency.data = current.get("frequency")
        form.language.data = current.get("language") or "de"
    elif form.validate_on_submit():
        try:
            services().call("PUT", "notifications", path, json={
                "channels": {"inbox": True, "email": form.email.data, "webhook": form.webhook.data},
                "frequency": form.frequency.data,
                "language": form.language.data})
        except api.ApiError as error:
            if error.status != 422:
                raise
            form_errors = apply_errors(form, error.fields) or [error.message]
        else:
            flash(_("Your preferences have been saved."))
            return redirect(url_for("inbox.preferences"))
    status = 422 if form.errors or form_errors else 200
    return render_template("preferences.html", form=form, form_errors=form_errors), status


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
            form_errors = apply_errors(form, error.fields) or [error.message]
        else:
            form = WebhookForm(formdata=None)
    endpoints = services().get("notifications", "/webhooks")
    endpoints = endpoints.get("items", endpoints) if isinstance(endpoints, dict) else endpoints
    status = 422 if form.errors or form_errors else 200
    return render_template("webhooks.html", form=form, form_errors=form_errors, endpoints=endpoints,
                           created=created, delete_form=EmptyForm()), status


@blueprint.route("/webhooks/<endpoint_id>/delete", methods=["POST"])
@member_required
def delete_webhook(endpoint_id: str):
    if EmptyForm().validate_on_submit():
        services().call("DELETE", "notifications", f"/webhooks/{endpoint_id}")
        flash(_("The webhook has been removed."))
    return redirect(url_for("inbox.webhooks"))
