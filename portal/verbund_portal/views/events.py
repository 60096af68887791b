"""Joint events: list and filter, detail, register with seats, cancel, waitlist position, .ics."""
from __future__ import annotations

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from verbund_portal import api
from verbund_portal.app import member_required, services
from verbund_portal.confirm import confirm_page, confirmed
from verbund_portal.forms import RegistrationForm, refusal
from verbund_portal.i18n import choices, topic_choices, when_range_zoned

blueprint = Blueprint("events", __name__)

KINDS = ("fair", "workshop", "meetup", "webinar", "conference")


def _my_registrations() -> dict[str, dict]:
    """My live registrations by event id."""
    items = services().get("events", f"/members/{g.member['member_id']}/registrations")["items"]
    return {item["event_id"]: item for item in items if item["status"] != "cancelled"}


@blueprint.route("/events")
@member_required
def index():
    """Upcoming events, filtered by kind, sector and topic (a GET form: works without script, bookmarkable)."""
    filters = {key: request.args.get(key) for key in ("kind", "sector", "topic") if request.args.get(key)}
    valid = {"kind": set(KINDS), "sector": {c[0] for c in choices("sector")}, "topic": {c[0] for c in topic_choices()}}
    filters = {key: value for key, value in filters.items() if value in valid[key]}
    page = services().get("events", "/events", params={"status": "scheduled", "per_page": 100, **filters})
    return render_template("events.html", events=page["items"], filters=filters, kinds=KINDS,
                           sectors=choices("sector"), topics=topic_choices(), mine=_my_registrations())


@blueprint.route("/events/<event_id>", methods=["GET", "POST"])
@member_required
def detail(event_id: str):
    """One event; register (seats) when not registered; a full event puts me on the waitlist."""
    event = services().get("events", f"/events/{event_id}")
    mine = _my_registrations().get(event_id)
    form = RegistrationForm()
    form_errors = []
    if request.method == "POST" and not mine and form.validate_on_submit():
        try:
            registration = services().post("events", f"/events/{event_id}/registrations",
                                           json={"seats": form.seats.data})
        except api.ApiError as error:
            form_errors = refusal(form, error)
        else:
            if registration["status"] == "waitlisted":
                flash(_("The event is full. You are on the waitlist at position %(position)s; we will tell "
                        "you when a place becomes free.", position=registration.get("waitlist_position")))
            else:
                flash(_("You are registered."))
            return redirect(url_for("events.detail", event_id=event_id))
    status = 422 if form.errors or form_errors else 200
    from verbund_portal.views.matchmaking import event_section

    return render_template("event.html", event=event, mine=mine, form=form, form_errors=form_errors,
                           matchmaking=event_section(event_id, mine)), status


@blueprint.route("/events/<event_id>/cancel", methods=["GET", "POST"])
@member_required
def cancel(event_id: str):
    """Cancel my registration, after a confirmation page (GET) that names the event and what follows."""
    mine = _my_registrations().get(event_id)
    if not mine:  # nothing (left) to cancel: the event's page says how things stand
        return redirect(url_for("events.detail", event_id=event_id))
    if confirmed():
        services().call("DELETE", "events", f"/events/{event_id}/registrations/{mine['id']}")
        flash(_("Your registration has been cancelled."))
        return redirect(url_for("events.detail", event_id=event_id))
    event = services().get("events", f"/events/{event_id}")
    lines = [_("Your registration for “%(title)s” (%(when)s) will be cancelled.", title=event["title"],
               when=when_range_zoned(event))]
    lines.append(ngettext("Your place becomes free for others. If you want to come after all, you register again; "
                          "by then the event may be full.",
                          "Your %(num)d places become free for others. If you want to come after all, you register "
                          "again; by then the event may be full.", mine.get("seats") or 1)
                 if mine["status"] == "confirmed" else _("You lose your place on the waitlist."))
    return confirm_page(_("Cancel your registration?"), lines, _("Yes, cancel my registration"),
               url_for("events.detail", event_id=event_id), _("No, keep my registration"))


@blueprint.route("/events/<event_id>/calendar.ics")
def calendar(event_id: str):
    """The event as an .ics file for one's calendar (public, as the events themselves)."""
    response = services().get("events", f"/events/{event_id}/calendar.ics", raw=True)
    return Response(response.content, mimetype="text/calendar",
                    headers={"Content-Disposition": 'attachment; filename="verbund-event.ics"'})
