"""My profile: view, edit, download my data, delete my organisation."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from verbund_portal import api, sessions
from verbund_portal.app import member_required, services
from verbund_portal.forms import DeleteForm, ProfileForm, refusal

blueprint = Blueprint("member", __name__)


def own_profile() -> dict:
    """The signed-in member's profile (members-service ``GET /members/{id}``)."""
    return services().get("members", f"/members/{g.member['member_id']}")


def _follow_profile(email_consent: bool) -> None:
    """Let notifications follow the profile's e-mail consent and language (one setting each, see
    ``inbox.preferences``); the profile is saved already, so a hiccup here is only logged."""
    try:
        services().call("PUT", "notifications", f"/members/{g.member['member_id']}/preferences",
                        json={"channels": {"inbox": True, "email": email_consent}, "language": None})
    except (api.ApiError, api.ServiceDown) as error:
        current_app.logger.warning("notification preferences not aligned with the profile: %s", error)


@blueprint.route("/profile")
@member_required
def profile():
    return render_template("profile.html", profile=own_profile())


@blueprint.route("/profile/edit", methods=["GET", "POST"])
@member_required
def edit():
    """Change the profile (a JSON Merge Patch of the whole form); field errors come back on the form."""
    form = ProfileForm()
    form_errors = []
    current = own_profile()
    if request.method == "GET":
        form.fill(current)
    elif form.validate_on_submit():
        try:
            updated = services().call("PATCH", "members", f"/members/{g.member['member_id']}", json=form.to_member())
        except api.ApiError as error:  # 409: the address belongs to another organisation
            form_errors = refusal(form, error, "contact_email",
                                  _("This e-mail address belongs to another organisation."))
        else:
            contact = updated.get("contact") or {}
            _follow_profile(bool((updated.get("consent") or {}).get("email")))
            session["language"] = contact.get("language") or session.get("language")
            flash(_("Your profile has been saved."))
            if contact.get("pending_email") and contact["pending_email"] != (current.get("contact") or {}).get(
                    "pending_email"):
                flash(_("We have sent a link to %(address)s. The new address applies once it is confirmed there.",
                        address=contact["pending_email"]))
            return redirect(url_for("member.profile"))
    status = 422 if form.errors or form_errors else 200
    return render_template("profile_edit.html", form=form, form_errors=form_errors,
                           pending_email=(current.get("contact") or {}).get("pending_email")), status


@blueprint.route("/profile/my-data.json")
@member_required
def export():
    """Everything the platform holds about my organisation, as one JSON file (GDPR art. 15 and 20):
    the profile, event registrations, contact requests, partner projects, inbox and preferences."""
    member_id = g.member["member_id"]
    data = {"exported_at": datetime.now(UTC).isoformat(timespec="seconds"), "profile": own_profile()}
    parts = {
        "event_registrations": ("events", f"/members/{member_id}/registrations", None),
        "contact_requests_incoming": ("members", "/contact-requests", {"direction": "incoming"}),
        "contact_requests_outgoing": ("members", "/contact-requests", {"direction": "outgoing"}),
        "partner_projects": ("matching", f"/members/{member_id}/proposals", None),
        "partner_suggestions": ("matching", f"/members/{member_id}/suggestions", None),
        "inbox": ("notifications", f"/members/{member_id}/notifications", {"per_page": 100}),
        "notification_preferences": ("notifications", f"/members/{member_id}/preferences", None),
    }
    for key, (service, path, params) in parts.items():
        data[key] = services().get(service, path, params=params)  # a part missing would make the copy incomplete
    data["profile"].pop("access_token", None)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": 'attachment; filename="verbund-my-data.json"'})


@blueprint.route("/profile/delete", methods=["GET", "POST"])
@member_required
def delete():
    """Delete my organisation: a confirmation step (type the name), then erasure everywhere."""
    profile = own_profile()
    form = DeleteForm()
    if form.validate_on_submit():
        if form.confirm_name.data.strip().casefold() != profile["name"].strip().casefold():
            form.confirm_name.errors = [_("The name does not match. Nothing was deleted.")]
        else:
            services().call("DELETE", "members", f"/members/{g.member['member_id']}")
            sessions.end()
            return redirect(url_for("member.deleted"))
    return render_template("profile_delete.html", form=form, profile=profile), 422 if form.errors else 200


@blueprint.route("/profile/deleted")
def deleted():
    return render_template("deleted.html")
