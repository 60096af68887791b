"""The public page of a joint event: anyone with the link reads it, without signing in, at a stable
address the organizer copies from their event page (``/e/<event id>``). It shows what the event
announces (title, kind, time with its zone, venue, organizers, topics, free places, the calendar
file) and nothing about who registered. A cancelled or unknown event is a 404 page in plain words."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from verbund_portal import api
from verbund_portal.app import select_language
from verbund_portal.forms import KIND_NAMES

blueprint = Blueprint("public", __name__)


@blueprint.route("/e/<event_id>")
def event(event_id: str):
    """An event's public page; asked of events-service without anyone's token, so it can only ever
    hold what events-service shows to anyone (``GET /events/{id}``, no attendees)."""
    config = current_app.config["PORTAL"]
    anonymous = api.Services(config.services, None, config.service_timeout_seconds, select_language(),
                             request.remote_addr)
    try:
        found = anonymous.get("events", f"/events/{event_id}")
    except api.ApiError as error:
        if error.status not in (400, 404, 410):
            raise
        found = None
    if found is None or found.get("status") == "cancelled":
        return render_template("public_gone.html", cancelled=found is not None), 404
    return render_template("public_event.html", event=found, kind_names=KIND_NAMES)
