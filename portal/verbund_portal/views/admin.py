"""The admins' pages: staff accounts (invite an organizer or admin by e-mail, revoke) through
members-service's ``/staff``, and each service's health (``/ready``) with its dead-lettered messages
(``verbund_messages_dead_lettered_total`` in ``/metrics``) and the notifications that could not be
delivered (notifications-service ``/failures``)."""
from __future__ import annotations

import re

from flask import Blueprint, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _

from verbund_portal import api
from verbund_portal.app import services, staff_required
from verbund_portal.config import SERVICES
from verbund_portal.forms import EmptyForm, StaffInviteForm, apply_errors

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

DEAD_LETTERED = re.compile(r"^verbund_messages_dead_lettered_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M)


@blueprint.route("/staff", methods=["GET", "POST"])
@staff_required("admin")
def staff():
    """Staff accounts; the form invites an organizer (of one association) or an admin: members-service
    creates the account and mails a sign-in link in the chosen language."""
    form = StaffInviteForm()
    form_errors: list[str] = []
    if form.validate_on_submit():
        body = {"email": form.email.data.strip(), "name": form.name.data.strip(), "role": form.role.data,
                "language": form.language.data}
        if form.role.data == "organizer":
            if not form.association.data:
                form.association.errors = [_("An organizer belongs to one association: please choose it.")]
            body["association"] = form.association.data
        if not form.errors:
            try:
                services().post("members", "/staff", json=body)
            except api.ApiError as error:
                if error.status not in (409, 422):
                    raise
                form_errors = apply_errors(form, error.fields) or [error.message]
            else:
                flash(_("%(name)s has been invited and gets a sign-in link by e-mail.", name=body["name"]))
                return redirect(url_for("admin.staff"))
    accounts = services().get("members", "/staff")["items"]
    status = 422 if form.errors or form_errors else 200
    return render_template("admin/staff.html", form=form, form_errors=form_errors, accounts=accounts,
                           button=EmptyForm(), me=g.member.get("staff_id")), status


@blueprint.route("/staff/<staff_id>/revoke", methods=["POST"])
@staff_required("admin")
def revoke(staff_id: str):
    """Revoke a staff account: its next request is refused (members-service checks every staff token)."""
    if EmptyForm().validate_on_submit():
        services().post("members", f"/staff/{staff_id}/revoke")
        flash(_("The account has been revoked. It can no longer sign in or act."))
    return redirect(url_for("admin.staff"))


def _health(service: str) -> dict:
    """``{"service", "ready": bool, "detail", "dead_lettered": int | None}`` from /ready and /metrics."""
    state = {"service": service, "ready": False, "detail": "", "dead_lettered": None}
    try:
        answer = services().get(service, "/ready")
        state["ready"] = True
        state["detail"] = ", ".join(f"{k}: {v}" for k, v in (answer or {}).items() if isinstance(v, (str, bool)))
    except (api.ServiceDown, api.ApiError) as error:
        state["detail"] = str(error)
    try:
        text = services().get(service, "/metrics", raw=True).text
        state["dead_lettered"] = int(sum(float(v) for v in DEAD_LETTERED.findall(text)))
    except (api.ServiceDown, api.ApiError):
        pass
    return state


@blueprint.route("/health")
@staff_required("admin")
def health():
    """Each service: ready or not, how many messages went to its dead-letter queue since it started;
    and the latest notifications that could not be delivered (notifications-service ``/failures``)."""
    states = [_health(service) for service in SERVICES]
    try:
        failures = services().get("notifications", "/failures", params={"per_page": 20})
    except api.ServiceDown:
        failures = None  # the table above says notifications is not ready
    return render_template("admin/health.html", states=states, failures=failures)
