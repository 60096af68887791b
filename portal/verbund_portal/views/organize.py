"""The organizers' workspace: joint events (create, edit, cancel, registrations with the waitlist,
exports, the public page and calendar link) and the member lists (directory search, import with a
dry run first). Every call carries the organizer's own token: events-service and members-service
decide what an organizer of which association may do; a refusal shows as a friendly 403 page."""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from pathlib import Path

from flask import Blueprint, Response, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from verbund.settings import data_dir
from verbund_portal import api
from verbund_portal.app import page_number, services, staff_required
from verbund_portal.confirm import confirm_page, confirmed
from verbund_portal.forms import (
    KIND_NAMES,
    CancelEventForm,
    ConfirmImportForm,
    EmptyForm,
    EventForm,
    ImportForm,
    MemberSearchForm,
    refusal,
    service_errors,
)
from verbund_portal.i18n import when_range_zoned
from verbund_portal.messages import page_message, plain
from verbund_portal.views.matchmaking import meetings_outside

blueprint = Blueprint("organize", __name__, url_prefix="/organize")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
UPLOAD_MINUTES = 60  # a dry-run file waits this long for the real import
# The import report names members-service's columns; the organizer reads them as their file's headings.
IMPORT_COLUMNS = {"name": _l("Name"), "sector": _l("Sector"), "associations": _l("Association"),
                  "state": _l("Federal state"), "postcode": _l("Postcode"), "city": _l("City"),
                  "employees": _l("Employees"), "turnover_eur": _l("Turnover"),
                  "balance_sheet_eur": _l("Balance sheet total"), "website": _l("Website"),
                  "contact_name": _l("Contact person"), "contact_email": _l("E-mail"), "language": _l("Language"),
                  "offers": _l("Offers"), "needs": _l("Needs"), "topics": _l("Topics"),
                  "suggest_as_partner": _l("Partner suggestions"), "email_consent": _l("E-mail consent")}


def _public_url(endpoint: str, **values) -> str:
    return current_app.config["PORTAL"].portal_url + url_for(endpoint, **values)


@blueprint.route("/events")
@staff_required()
def events():
    """The events of the organizer's association (admins: all), soonest first, with fill and waitlist."""
    params = {"per_page": 200}
    if g.member["role"] == "organizer" and g.member.get("association"):
        params["association"] = g.member["association"]
    page = services().get("events", "/events", params=params)
    return render_template("organize/events.html", events=page["items"], kind_names=KIND_NAMES)


ONCE_WAIT_SECONDS = 10  # how long a second submission of a new event's form waits for the first one's event
ONCE_KEEP_HOURS = 24


def _once_file(token: str | None) -> Path | None:
    """Where the event created by the new-event form with ``token`` is noted (data folder, shared by the
    portal's processes); None for a token that is none of ours. Notes older than a day are dropped."""
    if not token or not re.fullmatch(r"[A-Za-z0-9_-]{20,64}", token):
        return None
    folder = data_dir() / "portal-once"
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - ONCE_KEEP_HOURS * 3600
    for old in folder.glob("*"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
    return folder / hashlib.sha256(token.encode()).hexdigest()


def _create_once(token: str | None, body: dict) -> dict:
    """``POST /events`` once per form token: the first submission claims the token (a file created
    exclusively) and notes the new event's id; a second one (a double click, a resent form) waits up to
    ``ONCE_WAIT_SECONDS`` for that id and answers ``{"id": …, "again": True}`` without creating anything (id
    None when the first is still at work by then).
    A refused first submission frees the token, so the corrected form can be sent. Raises ``api.ApiError``."""
    note = _once_file(token)
    if note is None:
        return services().post("events", "/events", json=body)
    try:
        claim = os.open(note, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        deadline = time.monotonic() + ONCE_WAIT_SECONDS
        while time.monotonic() < deadline:
            created = note.read_text(encoding="ascii").strip() if note.exists() else ""
            if created:
                return {"id": created, "again": True}
            if not note.exists():  # the first submission was refused: this one goes ahead
                return _create_once(token, body)
            time.sleep(0.2)
        return {"id": None, "again": True}  # the first one still at work: the events list will show it
    try:
        saved = services().post("events", "/events", json=body)
    except BaseException:
        os.close(claim)
        note.unlink(missing_ok=True)
        raise
    os.write(claim, saved["id"].encode("ascii"))
    os.close(claim)
    return saved


def _event_form_page(form: EventForm, event: dict | None):
    """Save the form (create or PATCH); on the services' 422 the form comes back with its field errors."""
    form_errors: list[str] = []
    if event is None and not form.once.data:
        form.once.data = secrets.token_urlsafe(24)
    if form.validate_on_submit():
        body = form.to_event()
        try:
            if event is None:
                saved = _create_once(form.once.data, body)
                if not saved.get("again"):
                    flash(_("The event has been scheduled. Members of its sectors and topics hear of it."))
            else:
                saved = services().call("PATCH", "events", f"/events/{event['id']}", json=body)
                flash(_("Your changes have been saved. Registered members hear of them."))
        except api.ApiError as error:
            form_errors = refusal(form, error)
        else:
            if not saved.get("id"):
                return redirect(url_for("organize.events"))
            return redirect(url_for("organize.event", event_id=saved["id"]))
    status = 422 if form.errors or form_errors else 200
    return render_template("organize/event_form.html", form=form, form_errors=form_errors, event=event), status


@blueprint.route("/events/new", methods=["GET", "POST"])
@staff_required()
def new_event():
    """Schedule a joint event; an organizer's own association is ticked already (co-organizers added)."""
    form = EventForm()
    if request.method == "GET" and g.member.get("association"):
        form.organizers.data = [g.member["association"]]
    return _event_form_page(form, None)


@blueprint.route("/events/<event_id>/edit", methods=["GET", "POST"])
@staff_required()
def edit_event(event_id: str):
    """Change an event. The registrations page (readable only by its organizers) is asked first, so an
    organizer of another association gets the service's 403 before seeing a form."""
    event = services().get("events", f"/events/{event_id}/registrations")["event"]
    form = EventForm(stored=event)
    if request.method == "GET":
        form.fill(event)
    return _event_form_page(form, event)


@blueprint.route("/events/<event_id>")
@staff_required()
def event(event_id: str):
    """An event with its registrations: confirmed, the waitlist in order, cancelled; exports and links; a notice
    when the event's times leave meetings of its published schedule outside (after a move)."""
    answer = services().get("events", f"/events/{event_id}/registrations")
    items = answer["items"]
    confirmed = [r for r in items if r["status"] == "confirmed"]
    waitlist = sorted((r for r in items if r["status"] == "waitlisted"),
                      key=lambda r: (r.get("waitlist_position") or 0))
    cancelled = [r for r in items if r["status"] == "cancelled"]
    return render_template("organize/event.html", event=answer["event"], confirmed=confirmed, waitlist=waitlist,
                           meetings_outside=meetings_outside(answer["event"]),
                           cancelled=cancelled, kind_names=KIND_NAMES, button=EmptyForm(),
                           targets=_move_targets(answer["event"]),
                           public_url=_public_url("public.event", event_id=event_id),
                           member_url=_public_url("events.detail", event_id=event_id),
                           calendar_url=_public_url("events.calendar", event_id=event_id))


def _move_targets(event: dict) -> list[dict]:
    """The events a registration here may move to: scheduled, not begun, of an association that also
    organizes this one (and, for an organizer, of their own association), soonest first."""
    if event["status"] != "scheduled":
        return []
    params = {"status": "scheduled", "per_page": 200}
    if g.member["role"] == "organizer" and g.member.get("association"):
        params["association"] = g.member["association"]
    found = services().get("events", "/events", params=params)["items"]
    return sorted((e for e in found if e["id"] != event["id"] and set(e["organizers"]) & set(event["organizers"])
                   and e["status"] == "scheduled"), key=lambda e: e["starts_at"])


@blueprint.route("/events/<event_id>/registrations/<registration_id>/move", methods=["POST"])
@staff_required()
def move_registration(event_id: str, registration_id: str):
    """Move a member's registration to another event of the same organizers (the same workshop on another
    date): cancelled here, confirmed or waitlisted there; the member is told of both."""
    to_event_id = request.form.get("to_event_id", "")
    if EmptyForm().validate_on_submit() and to_event_id:
        try:
            moved = services().post("events", f"/events/{event_id}/registrations/{registration_id}/move",
                                    json={"to_event_id": to_event_id})["registration"]
        except api.ApiError as error:
            if error.status not in (409, 422):
                raise
            flash(_move_refusal(error))
        else:
            if moved["status"] == "confirmed":
                flash(_("The registration has been moved; the member has a place at the other event."))
            else:
                flash(_("The registration has been moved; the other event is full, so the member is on its "
                        "waitlist at position %(position)s.", position=moved.get("waitlist_position")))
    elif not to_event_id:
        flash(_("Please choose the event to move the registration to."))
    return redirect(url_for("organize.event", event_id=event_id))


def _move_refusal(error: api.ApiError) -> str:
    """Why a move was refused, in the page's language."""
    said = " ".join([error.message, *(m for ms in (error.fields or {}).values() for m in ms)])
    if "other event already" in said:
        return _("This member is registered for that event already.")
    if "takes no registrations" in said:
        return _("The other event takes no registrations any more.")
    if "seat(s) in all" in said:
        return _("The other event has fewer places in all than this registration asks for.")
    if "same organising association" in said:
        return _("A registration can only move to an event of the same organising association.")
    return page_message(error.status, error.message)


@blueprint.route("/events/<event_id>/registrations/<registration_id>/cancel", methods=["GET", "POST"])
@staff_required()
def cancel_registration(event_id: str, registration_id: str):
    """Cancel one member's registration (the first on the waitlist moves up, the member hears of it), after a
    confirmation page (GET) naming the member and the event."""
    answer = services().get("events", f"/events/{event_id}/registrations")
    found = next((r for r in answer["items"] if r["id"] == registration_id and r["status"] != "cancelled"), None)
    if found is None:  # unknown or cancelled already: the event's page shows how things stand
        return redirect(url_for("organize.event", event_id=event_id))
    if confirmed():
        services().call("DELETE", "events", f"/events/{event_id}/registrations/{registration_id}")
        flash(_("The registration has been cancelled; the member is told."))
        return redirect(url_for("organize.event", event_id=event_id))
    event, name = answer["event"], found.get("member_name") or _("this member")
    lines = [_("The registration of %(name)s for “%(title)s” (%(when)s) will be cancelled, and %(name)s is told.",
               name=name, title=event["title"], when=when_range_zoned(event))]
    if found["status"] == "confirmed":
        waiting = any(r["status"] == "waitlisted" for r in answer["items"])
        seats = found.get("seats") or 1
        lines.append(ngettext("The booked place becomes free, and the first on the waitlist moves up.",
                              "The %(num)d booked places become free, and the first on the waitlist moves up.", seats)
                     if waiting else
                     ngettext("The booked place becomes free.", "The %(num)d booked places become free.", seats))
    return confirm_page(_("Cancel the registration of %(name)s?", name=name), lines, _("Yes, cancel the registration"),
               url_for("organize.event", event_id=event_id), _("No, keep the registration"))


@blueprint.route("/events/<event_id>/cancel", methods=["GET", "POST"])
@staff_required()
def cancel_event(event_id: str):
    """A confirmation step with an optional reason, then the event and every registration are cancelled."""
    event = services().get("events", f"/events/{event_id}/registrations")["event"]
    form = CancelEventForm()
    form_errors: list[str] = []
    if form.validate_on_submit():
        try:
            services().post("events", f"/events/{event_id}/cancel", json={"reason": form.reason.data or None})
        except api.ApiError as error:
            if error.status not in (409, 422):
                raise
            if error.status == 409:
                flash(page_message(409, error.message))
                return redirect(url_for("organize.event", event_id=event_id))
            form_errors = service_errors(form, error)  # the reason refused: at its field, the text kept
        else:
            flash(_("The event has been cancelled. Every registered member is told."))
            return redirect(url_for("organize.event", event_id=event_id))
    return render_template("organize/event_cancel.html", event=event, form=form, form_errors=form_errors), \
        422 if form.errors or form_errors else 200


@blueprint.route("/events/<event_id>/attendees.<kind>")
@staff_required()
def attendees(event_id: str, kind: str):
    """The attendee list from events-service, as CSV (German Excel in German) or Excel."""
    if kind not in ("csv", "xlsx"):
        return render_template("error.html", title=_("Not found"), message=_("There is no such export.")), 404
    # Headings in the page's language (the service sends the column keys to programs by default).
    params = {"headers": "labels"} if kind == "csv" else None
    response = services().get("events", f"/events/{event_id}/attendees.{kind}", raw=True, params=params)
    # content_type as the service sent it (mimetype= would add a second charset parameter)
    content_type = XLSX if kind == "xlsx" else response.headers.get("Content-Type", "text/csv; charset=utf-8")
    return Response(response.content, content_type=content_type,
                    headers={"Content-Disposition": f'attachment; filename="attendees-{event_id[:8]}.{kind}"'})


# --- member lists -------------------------------------------------------------------------------------

@blueprint.route("/members")
@staff_required()
def members():
    """The directory filtered as members-service's ``GET /members`` does (same results as the API)."""
    form = MemberSearchForm(request.args)
    searched = bool(request.args)
    page = page_number()
    result, form_errors = None, []
    if form.validate():
        try:
            result = services().get("members", "/members", params={**form.query(), "page": page, "per_page": 50})
        except api.ApiError as error:
            if error.status != 422:
                raise
            form_errors = service_errors(form, error)
    status = 422 if form.errors or form_errors else 200
    return render_template("organize/members.html", form=form, form_errors=form_errors, result=result,
                           searched=searched, page=page), status


def _uploads() -> Path:
    folder = data_dir() / "portal-imports"
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - UPLOAD_MINUTES * 60
    for old in folder.glob("*.upload"):  # files nobody imported after their dry run
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
    return folder


def _import(content: bytes, content_type: str, dry_run: bool, invite: str = "none") -> dict:
    return services().call("POST", "members", "/members/import",
                           params={"dry_run": "true" if dry_run else "false", "invite": invite},
                           data=content, content_type=content_type)


@blueprint.route("/members/import", methods=["GET", "POST"])
@staff_required()
def import_members():
    """Step 1: upload a CSV or Excel file → a dry run; the per-row report (in the organizer's language,
    members-service answers in the Accept-Language) shows what is wrong, and nothing is imported yet."""
    form = ImportForm()
    report, form_errors = None, []
    if form.validate_on_submit():
        upload = form.file.data
        content = upload.read()
        content_type = XLSX if upload.filename.lower().endswith(".xlsx") else "text/csv"
        try:
            report = _import(content, content_type, dry_run=True)
        except api.ApiError as error:
            if error.status not in (400, 409, 413, 415, 422):
                raise
            form.file.errors = [plain(error.message, error.language)]
        else:
            # The file waits on the portal's side (not in the cookie) for step 2, for this session only.
            key = secrets.token_urlsafe(16)
            (_uploads() / f"{key}.upload").write_bytes(content)
            session["import"] = {"key": key, "type": content_type, "name": upload.filename[:200]}
    status = 422 if form.errors or form_errors else 200
    return render_template("organize/import.html", form=form, report=report, columns=IMPORT_COLUMNS,
                           confirm=ConfirmImportForm(),
                           filename=(session.get("import") or {}).get("name")), status


@blueprint.route("/members/import/confirm", methods=["POST"])
@staff_required()
def confirm_import():
    """Step 2: import the file checked in the dry run (the same bytes, kept for this session only);
    members-service mails a sign-in link to the imported members with e-mail consent, or to all."""
    form = ConfirmImportForm()
    pending = session.get("import")
    path = _uploads() / f"{pending['key']}.upload" if pending else None
    if not form.validate_on_submit() or path is None or not path.exists():
        flash(_("Please choose the file again: the checked file is no longer here."))
        return redirect(url_for("organize.import_members"))
    report = _import(path.read_bytes(), pending["type"], dry_run=False,
                     invite="all" if form.invite_all.data else "consented")
    path.unlink(missing_ok=True)
    session.pop("import", None)
    return render_template("organize/import_done.html", report=report)

