"""My profile: view, edit, download my data, delete my organisation."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Blueprint, Response, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from verbund_portal import api, sessions
from verbund_portal.app import member_required, services
from verbund_portal.forms import DeleteForm, ProfileForm, apply_errors

blueprint = Blueprint("member", __name__)


def _profile() -> dict:
    return services().get("members", f"/members/{g.member['member_id']}")


@blueprint.route("/profile")
@member_required
def profile():
    return render_template("profile.html", profile=_profile())


@blueprint.route("/profile/edit", methods=["GET", "POST"])
@member_required
def edit():
    """Change the profile (a JSON Merge Patch of the whole form); field errors come back on the form."""
    form = ProfileForm()
    form_errors = []
    if request.method == "GET":
        form.fill(_profile())
    elif form.validate_on_submit():
        try:
            updated = services().call("PATCH", "members", f"/members/{g.member['member_id']}", json=form.to_member())
        except api.ApiError as error:
            if error.status != 422:
                raise
            form_errors = apply_errors(form, error.fields)
        else:
            session["language"] = (updated.get("contact") or {}).get("language") or session.get("language")
            flash(_("Your profile has been saved."))
            return redirect(url_for("member.profile"))
    status = 422 if form.errors or form_errors else 200
    return render_template("profile_edit.html", form=form, form_errors=form_errors), status


@blueprint.route("/profile/my-data.json")
@member_required
def export():
    """Everything the platform holds about my organisation, as one JSON file (GDPR art. 15 and 20):
    the profile, event registrations, contact requests, partner projects, inbox and preferences."""
    member_id = g.member["member_id"]
    data = {"exported_at": datetime.now(UTC).isoformat(timespec="seconds"), "profile": _profile()}
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
    profile = _profile()
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
