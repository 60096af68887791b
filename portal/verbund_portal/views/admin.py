"""The admins' pages: staff accounts (invite an organizer or admin by e-mail, revoke) through
members-service's ``/staff``, integrator accounts (create with the connection URI and token shown
once, revoke) through its ``/integrators``, and each service's health (``/ready``) with its dead-lettered messages
(``verbund_messages_dead_lettered_total`` in ``/metrics``) and the notifications that could not be
delivered (notifications-service ``/failures``)."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor, wait

from flask import Blueprint, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _

from verbund_portal import api
from verbund_portal.app import services, staff_required
from verbund_portal.config import SERVICES
from verbund_portal.confirm import confirm_page, confirmed
from verbund_portal.forms import EmptyForm, IntegratorForm, StaffInviteForm, event_scopes, refusal

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
            except api.ApiError as error:  # 409: members-service has an active account with this address
                form_errors = refusal(form, error, "email", _("There is already a staff account with this e-mail "
                                                              "address: it is in the list below."))
            else:
                flash(_("%(name)s has been invited and gets a sign-in link by e-mail.", name=body["name"]))
                return redirect(url_for("admin.staff"))
    accounts = services().get("members", "/staff")["items"]
    status = 422 if form.errors or form_errors else 200
    return render_template("admin/staff.html", form=form, form_errors=form_errors, accounts=accounts,
                           button=EmptyForm(), me=g.member.get("staff_id")), status


@blueprint.route("/staff/<staff_id>/revoke", methods=["GET", "POST"])
@staff_required("admin")
def revoke(staff_id: str):
    """Revoke a staff account, after a confirmation page (GET) naming the person: its next request is
    refused (members-service checks every staff token)."""
    account = next((a for a in services().get("members", "/staff")["items"]
                    if a["id"] == staff_id and a["status"] != "revoked"), None)
    if account is None or staff_id == g.member.get("staff_id"):  # nothing to revoke here: the list says why
        return redirect(url_for("admin.staff"))
    if confirmed():
        services().post("members", f"/staff/{staff_id}/revoke")
        flash(_("The account has been revoked. It can no longer sign in or act."))
        return redirect(url_for("admin.staff"))
    role = _("Admin") if account["role"] == "admin" else _("Organizer")
    lines = [_("%(name)s (%(email)s, %(role)s) can no longer sign in or act: an open session ends with the next "
               "page, and unused sign-in links stop working.", name=account["name"], email=account["email"],
               role=role),
             _("This cannot be undone; to give access again, invite the person anew.")]
    return confirm_page(_("Revoke the access of %(name)s?", name=account["name"]), lines, _("Yes, revoke the access"),
               url_for("admin.staff"), _("No, keep the access"))


@blueprint.route("/integrators", methods=["GET", "POST"])
@staff_required("admin")
def integrators():
    """Integrator accounts (read-only access to the event stream for an association's or member's own
    systems). Creating one shows its connection URI (with the generated password) and token on the
    answer page only: they are kept nowhere, so this page cannot show them again."""
    form = IntegratorForm()
    form_errors: list[str] = []
    created = None
    if form.validate_on_submit():
        body = {"name": form.name.data, "events": form.events.data, "personal": bool(form.personal.data)}
        try:
            created = services().post("members", "/integrators", json=body)
        except api.ApiError as error:
            form_errors = refusal(form, error, "name", _("An integrator of this name exists. Revoke it first or "
                                                         "choose another name."))
        else:
            form = IntegratorForm(formdata=None)
    items = services().get("members", "/integrators")["items"]
    status = 422 if form.errors or form_errors else 201 if created else 200
    return render_template("admin/integrators.html", form=form, form_errors=form_errors, items=items,
                           created=created, scopes=event_scopes()), status


@blueprint.route("/integrators/<name>/revoke", methods=["GET", "POST"])
@staff_required("admin")
def revoke_integrator(name: str):
    """Revoke an integrator, after a confirmation page (GET): its RabbitMQ user, queues and tokens go
    (members-service)."""
    active = any(i["name"] == name and not i.get("revoked_at")
                 for i in services().get("members", "/integrators")["items"])
    if not active:
        return redirect(url_for("admin.integrators"))
    if confirmed():
        services().post("members", f"/integrators/{name}/revoke")
        flash(_("The integrator %(name)s has been revoked: its access to the broker and its token no longer work.",
                name=name))
        return redirect(url_for("admin.integrators"))
    lines = [_("The broker access of %(name)s, its queues with the messages waiting in them and its token are "
               "deleted; its webhooks are switched off.", name=name),
             _("This cannot be undone; a new access under the same name gets a new address and token.")]
    return confirm_page(_("Revoke the integrator %(name)s?", name=name), lines, _("Yes, revoke the integrator"),
               url_for("admin.integrators"), _("No, keep the integrator"))


def service_name(service: str) -> str:
    """A service's name in the page's language ("Mitglieder" for ``members``); an unknown one as it is."""
    names = {"members": _("Members"), "events": _("Events"), "matching": _("Partner suggestions"),
             "notifications": _("Notifications"), "meetings": _("Matchmaking meetings")}
    return names.get(service, service)


def _check_text(name: str, value: str) -> dict:
    """One readiness check in words: ``{"name", "ok": bool, "text", "detail"}`` ("Database: OK").

    Known check names (kit ``readiness_checks``: database, broker; matching: engine, semantic) are
    shown in the page's language; a name a service adds later is shown as it comes."""
    names = {"database": _("Database"), "broker": _("Message broker"), "engine": _("Matching engine"),
             "semantic": _("Matching by meaning"), "mail": _("Mail delivery")}
    if value == "ok":
        text, ok = _("OK"), True
    elif value == "loading":  # matching's engine while it reads its model: not a failure
        text, ok = _("starting up"), True
    elif str(value).startswith("degraded"):
        text, ok = _("works with limits (%(why)s)", why=str(value).partition(":")[2].strip()), True
    else:
        text, ok = _("not reachable"), False
    return {"name": names.get(name, name), "ok": ok, "text": text,
            "detail": "" if value == "ok" else str(value)}


# A health page answers in a few seconds even when a service hangs: every service is asked at once,
# each call waits this long at most, and whoever has not answered by then is "not answering".
HEALTH_TIMEOUT_SECONDS = 3.0


def _health(service: str, ready, metrics) -> dict:
    """``{"service", "name", "ready": bool, "answering": bool, "checks": [_check_text], "dead_lettered": int | None}``
    from the outcome of /ready (``ready``: its answer, or the ServiceDown/ApiError it raised; a 503 lists its
    failing checks too; None: no answer in time) and of /metrics (``metrics``: its text, or None)."""
    state = {"service": service, "name": service_name(service), "ready": False, "answering": False, "checks": [],
             "dead_lettered": None}
    if isinstance(ready, api.ServiceDown):
        answer = ready.body or {}
        state["answering"] = bool(ready.body)
    elif isinstance(ready, api.ApiError) or ready is None:
        answer = {}
    else:
        answer = ready or {}
        state["ready"] = state["answering"] = True
    state["checks"] = [_check_text(name, value) for name, value in (answer.get("checks") or {}).items()]
    if isinstance(metrics, str):
        state["dead_lettered"] = int(sum(float(v) for v in DEAD_LETTERED.findall(metrics)))
    return state


def _ask_all(calls: dict, timeout: float) -> dict:
    """Run ``calls`` (key → function of no arguments) at once; key → its result, the ServiceDown or
    ApiError it raised, or None when it had not answered within ``timeout`` seconds (a request's own
    timeout bounds each call; this bounds the whole). Any other error is raised."""
    pool = ThreadPoolExecutor(max_workers=len(calls))
    futures = {key: pool.submit(call) for key, call in calls.items()}
    wait(futures.values(), timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)  # a straggler's thread ends with its request's timeout
    results = {}
    for key, future in futures.items():
        if not future.done():
            results[key] = None
        elif isinstance(future.exception(), (api.ServiceDown, api.ApiError)):
            results[key] = future.exception()
        else:
            results[key] = future.result()
    return results


@blueprint.route("/health")
@staff_required("admin")
def health():
    """Each service: ready or not, how many messages went to its dead-letter queue since it started;
    and the latest notifications that could not be delivered (notifications-service ``/failures``).
    All services are asked at once with a short timeout, so a hung one costs the page a few seconds."""
    mine = services()

    def ask(service: str, path: str, **kwargs):
        # one client per call: a requests.Session is not shared between threads
        client = api.Services(mine.urls, mine.token, HEALTH_TIMEOUT_SECONDS, mine.language, mine.client_ip)
        return lambda: client.get(service, path, **kwargs)

    calls = {}
    for service in SERVICES:
        calls[service, "ready"] = ask(service, "/ready")
        calls[service, "metrics"] = ask(service, "/metrics", raw=True)
    calls["failures"] = ask("notifications", "/failures", params={"per_page": 20})
    results = _ask_all(calls, HEALTH_TIMEOUT_SECONDS + 1)
    states = []
    for service in SERVICES:
        metrics = results[service, "metrics"]
        states.append(_health(service, results[service, "ready"],
                              metrics.text if hasattr(metrics, "text") else None))
    failures = results["failures"]
    if isinstance(failures, api.ApiError):
        raise failures
    if not isinstance(failures, dict):
        failures = None  # the table above says notifications is not ready
    return render_template("admin/health.html", states=states, failures=failures)
