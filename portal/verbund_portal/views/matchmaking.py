"""Matchmaking days (issue 18) over meetings-service's HTTP API, with the signed-in person's own token.

Participants (members confirmed for an event with matchmaking): take part or not, availability per slot,
whom to meet (ranked with reasons), requests with a message, accept (a time both are free, or left to the
organizers) / decline (a reason) / withdraw, the agenda as a page, ``.ics`` and PDF, and after each meeting
whether it took place and what came of it (``/events/<id>/meetings/<meeting>/outcome``, the address the
follow-up survey mail links to).

Organizers (of the event's associations, or admins): the set-up form, "schedule all", the schedule grid
(slots × tables) with conflicts, moving and locking single meetings, publishing (preliminary / final), and
the roll-up with its CSV. meetings-service decides who may do what; its refusals show as plain pages."""
from __future__ import annotations

import logging
from datetime import datetime
from itertools import groupby

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from verbund_portal import agenda_pdf, api, i18n
from verbund_portal.app import member_required, services, staff_required
from verbund_portal.confirm import confirm_page, confirmed
from verbund_portal.forms import (
    OUTCOMES,
    REQUEST_MODES,
    SCHEDULING_MODES,
    AcceptMeetingForm,
    AvailabilityForm,
    EmptyForm,
    MatchmakingSetupForm,
    MeetingOutcomeForm,
    MeetingRequestForm,
    PlacementForm,
    ReasonForm,
    RescheduleMeetingForm,
    refusal,
)
from verbund_portal.i18n import ZONE, event_zone, when_range
from verbund_portal.messages import plain

log = logging.getLogger(__name__)
blueprint = Blueprint("matchmaking", __name__)

# scheduler.check's codes (meetings-service) in plain words for the organizers
CONFLICTS = {"person_double_booked": _l("A participant has two meetings at the same time."),
             "table_double_booked": _l("A table holds two meetings at the same time."),
             "unavailable": _l("A meeting lies at a time one side is not available."),
             "over_limit": _l("A participant has more meetings in a time block than the set-up allows."),
             "locked_moved": _l("A locked meeting is no longer where it was locked."),
             "wrong_meeting_point": _l("A meeting is not at the participant's meeting point.")}

# why "schedule all" left a meeting out (meetings-service's unplaced_reason, scheduler's codes)
UNPLACED = {"no_common_slot": _l("The two have no time in common: ask one of them to free a slot."),
            "limit": _l("One of them already has the most meetings per time block the set-up allows."),
            "capacity": _l("All tables are taken (or the two are busy) at every time both have free."),
            "locked_conflict": _l("It is locked at a time or table that now breaks a rule; move or unlock it."),
            "outside_event": _l("Its time lay outside the event's new time: schedule again to give it a new one.")}


# --- helpers ------------------------------------------------------------------------------------------

def setup_of(event_id: str) -> dict | None:
    """The event's matchmaking set-up, or None when its organizers have not set one up."""
    try:
        return services().get("meetings", f"/events/{event_id}/meetings/setup")
    except api.ApiError as error:
        if error.status == 404:
            return None
        raise


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def meetings_outside(event: dict) -> int:
    """How many meetings participants can see (published, or picked by themselves) at a time outside
    ``event``'s current start and end (events-service's event, just saved): the organizers moved the event.
    Reads meetings-service's staff list, so it does not wait for event.updated to reach it. 0 without a
    set-up, or when meetings-service does not answer (the event page shows all the same)."""
    try:
        setup = setup_of(event["id"])
        items = services().get("meetings", f"/events/{event['id']}/meetings")["items"] if setup else []
    except (api.ApiError, api.ServiceDown) as error:
        log.warning("meetings outside event %s not counted: %s", event["id"], error)
        return 0
    start, end = _instant(event["starts_at"]), _instant(event["ends_at"])
    return sum(1 for m in items if m["status"] == "accepted" and m["starts_at"]
               and (m["placed_by"] == "participants" or setup["published"] != "none")
               and (_instant(m["starts_at"]) < start or _instant(m["ends_at"]) > end))


def slot_label(slot: dict | None) -> str:
    """A slot as "Mi., 15. Sept. 2026, 9:00–9:30 Uhr" in the page's language, at the event's wall clock
    (meetings-service's ``starts_local``: the offset of the event's own time zone then), as the set-up
    form's times; Berlin time for a slot without it."""
    if not slot:
        return ""
    try:
        zone = datetime.fromisoformat(slot.get("starts_local") or "").tzinfo or ZONE
    except ValueError:
        zone = ZONE
    return when_range(slot["starts_at"], slot["ends_at"], zone)


def sessions_of(setup: dict) -> list[tuple[int, list[dict]]]:
    """The set-up's slots grouped by session: [(session number from 1, [slot, ...]), ...]."""
    return [(number + 1, list(slots)) for number, slots in groupby(setup["slots"], key=lambda s: s["session"])]


def names(member_ids, known: dict[str, str] | None = None) -> dict[str, str]:
    """Organisation names by member id: ``known`` ones (meetings-service's, matching's candidates) as given,
    the others from members-service's ``/members/cards`` in one call per request (``api.cards``); an erased
    or unknown member is "(an organisation)"."""
    cache = g.setdefault("member_names", {})
    cache.update({k: v for k, v in (known or {}).items() if v})
    missing = sorted(set(member_ids) - set(cache))
    found = api.cards(services(), missing)
    cache.update({member_id: (found.get(member_id) or {}).get("name") or _("(an organisation)")
                  for member_id in missing})
    return cache


def partner_names(items: list[dict]) -> dict[str, str]:
    """The organisation names meetings-service gives with meetings (``other_name`` for a member,
    ``requester_name``/``recipient_name`` for staff), by member id; unknown (erased) ones left out."""
    known = {}
    for m in items:
        for id_key, name_key in (("other_id", "other_name"), ("requester_id", "requester_name"),
                                 ("recipient_id", "recipient_name")):
            if m.get(name_key) and m.get(id_key):
                known[m[id_key]] = m[name_key]
    return known


def free_for_both(event_id: str, meeting_id: str) -> list[int]:
    """The slot numbers both sides of a meeting have free with a table left (meetings-service's free-slots);
    empty when the service refuses (the form then offers what is left: the organizers, or nothing)."""
    try:
        answer = services().get("meetings", f"/events/{event_id}/meetings/{meeting_id}/free-slots")
    except api.ApiError as error:
        log.warning("free slots of %s left out: %s", meeting_id, error)
        return []
    return [s["number"] for s in answer["slots"]]


def _cancelled(event: dict):
    """The page of a cancelled event's matchmaking or agenda: it says so (with the organizers' reason),
    not "register first"."""
    message = _("This event has been cancelled, so its matchmaking and meetings do not take place.")
    if event.get("cancel_reason"):
        message = f"{message} {event['cancel_reason']}"
    return render_template("error.html", title=_("The event has been cancelled"), message=message,
                           back=url_for("events.detail", event_id=event["id"]), back_text=_("To the event")), 410


def _not_registered():
    return render_template("error.html", title=_("Not allowed"),
                           message=_("The matchmaking of this event is for its confirmed participants. Register "
                                     "for the event first; once your place is confirmed you can take part.")), 403


def _confirmed(event_id: str) -> bool:
    """Whether the signed-in member holds a confirmed registration for the event (events-service)."""
    from verbund_portal.views.events import _my_registrations

    return (_my_registrations().get(event_id) or {}).get("status") == "confirmed"


# Why meetings-service ended a request or meeting by itself (its ``reason`` codes), in plain words; a reason a
# person typed when declining or cancelling is shown as typed.
END_REASONS = {"opted_out": _l("One of you stopped taking part in the matchmaking."),
               "registration_cancelled": _l("A registration for the event was cancelled."),
               "event_cancelled": _l("The event was cancelled."),
               "member_deleted": _l("The organisation has left the platform.")}


def _mine(event_id: str) -> dict:
    """My requests and meetings at the event: ``{participant, items}`` (meetings-service)."""
    return services().get("meetings", f"/events/{event_id}/members/{g.member['member_id']}/meetings")


def _refused(error: api.ApiError) -> str:
    """A 409/422 of meetings-service as one plain sentence (field errors' first message, else the message)."""
    messages = [m for values in api.flatten_fields(error.fields).values() for m in values]
    return plain(messages[0] if messages else error.message)


def _back(event_id: str):
    return redirect(url_for("matchmaking.participant", event_id=event_id) + "#requests")


def event_section(event_id: str, registration: dict | None) -> dict | None:
    """What the member's event page shows of the matchmaking: None when the event has none (or
    meetings-service is away: the event page still works), else ``{setup, participant}``."""
    try:
        setup = setup_of(event_id)
        if setup is None:
            return None
        participant = None
        if registration and registration.get("status") == "confirmed":
            participant = _mine(event_id).get("participant")
    except (api.ServiceDown, api.ApiError) as error:
        log.warning("matchmaking section left out: %s", error)
        return None
    return {"setup": setup, "participant": participant}


# --- participants -------------------------------------------------------------------------------------

@blueprint.route("/events/<event_id>/matchmaking")
@member_required
def participant(event_id: str):
    """The participant's matchmaking page: taking part, availability, whom to meet, requests in and out."""
    event = services().get("events", f"/events/{event_id}")
    if event.get("status") == "cancelled":
        return _cancelled(event)
    setup = setup_of(event_id)
    if setup is None:
        return render_template("error.html", title=_("Not found"),
                               message=_("This event has no matchmaking.")), 404
    if not _confirmed(event_id):
        return _not_registered()
    mine = _mine(event_id)
    taking_part = (mine.get("participant") or {}).get("status") == "active"
    candidates = {"ranked": True, "notice": None, "items": []}
    if taking_part:
        candidates = services().get("meetings", f"/events/{event_id}/meetings/candidates")
    items = mine["items"]
    known = {**{c["member_id"]: c.get("name") for c in candidates["items"]}, **partner_names(items)}
    who = names([m["other_id"] for m in items] + list(known), known)
    slots = {s["number"]: s for s in setup["slots"]}
    available = (mine.get("participant") or {}).get("available")
    by_participants = setup["scheduling_mode"] == "participants"
    open_with = {m["other_id"]: m for m in items if m["status"] in ("pending", "accepted")}
    form = AvailabilityForm()
    form.slots.choices = [(s["number"], slot_label(s)) for s in setup["slots"]]
    form.slots.data = list(slots) if available is None else available
    form.meeting_point.data = (mine.get("participant") or {}).get("meeting_point")
    accept_forms, move_forms = {}, {}
    for meeting in items:
        if meeting["role"] == "recipient" and meeting["status"] == "pending":
            accept = AcceptMeetingForm(prefix=f"m{meeting['id'][:8]}")
            leave = ("", _("Leave the time to the organizers"))
            # only times that work for both sides (meetings-service knows the other's calendar)
            accept.slot.choices = [(str(n), slot_label(slots[n])) for n in free_for_both(event_id, meeting["id"])
                                   if n in slots] + [leave] if by_participants else [leave]
            accept_forms[meeting["id"]] = accept
        elif meeting["status"] == "accepted" and meeting["slot"] is not None and by_participants \
                and not meeting["locked"]:
            move = RescheduleMeetingForm(prefix=f"r{meeting['id'][:8]}")
            move.slot.choices = [(str(n), slot_label(slots[n])) for n in free_for_both(event_id, meeting["id"])
                                 if n in slots and n != meeting["slot"]]
            move_forms[meeting["id"]] = move
    return render_template("matchmaking/participant.html", event=event, setup=setup, mine=mine,
                           taking_part=taking_part, candidates=candidates, who=who, slots=slots,
                           sessions=sessions_of(setup), form=form, accept_forms=accept_forms, move_forms=move_forms,
                           reason_form=ReasonForm(), open_with=open_with, button=EmptyForm(),
                           slot_label=slot_label, request_modes=REQUEST_MODES, scheduling_modes=SCHEDULING_MODES,
                           end_reasons=END_REASONS)


@blueprint.route("/events/<event_id>/matchmaking/participation", methods=["POST"])
@member_required
def participation(event_id: str):
    """Take part, or save the slots one can meet in (every slot ticked: all, including later ones)."""
    setup = setup_of(event_id) or abort(404)
    form = AvailabilityForm()
    numbers = [s["number"] for s in setup["slots"]]
    form.slots.choices = [(n, str(n)) for n in numbers]
    if form.validate_on_submit():
        ticked = form.slots.data if "slots" in request.form or request.form.get("save") else None
        body = {"available": None if ticked is None or set(ticked) >= set(numbers) else ticked}
        if setup["mode"] == "meeting_points":
            body["meeting_point"] = (form.meeting_point.data or "").strip() or None
        try:
            services().put("meetings", f"/events/{event_id}/meetings/participation", json=body)
        except api.ApiError as error:
            if error.status not in (409, 422):
                raise
            flash(_refused(error))
        else:
            if not request.form.get("save"):
                flash(_("Saved. You take part in the matchmaking."))
            elif ticked == []:  # saved, but nobody can meet this member: say so rather than "saved"
                flash(_("Saved, but with no time ticked nobody can meet you. Tick the times you can meet, or "
                        "choose “Stop taking part”."))
            else:
                flash(_("Your times are saved."))
    else:
        flash(_("Please check your entries: %(errors)s", errors=" ".join(
            str(e) for errors in form.errors.values() for e in errors)))
    return redirect(url_for("matchmaking.participant", event_id=event_id))


@blueprint.route("/events/<event_id>/matchmaking/leave", methods=["GET", "POST"])
@member_required
def leave(event_id: str):
    """Stop taking part, after a confirmation page (GET): open requests and meetings are cancelled (the other
    side hears of it)."""
    if confirmed():
        services().call("DELETE", "meetings", f"/events/{event_id}/meetings/participation")
        flash(_("You no longer take part in the matchmaking. Your open requests and meetings are cancelled."))
        return redirect(url_for("matchmaking.participant", event_id=event_id))
    event = services().get("events", f"/events/{event_id}")
    lines = [_("You no longer take part in the matchmaking of “%(title)s”: your open requests and your meetings "
               "are cancelled, and the other organisations are told.", title=event["title"]),
             _("You can take part again later, but cancelled meetings have to be asked for anew.")]
    return confirm_page(_("Stop taking part in the matchmaking?"), lines, _("Yes, stop taking part"),
               url_for("matchmaking.participant", event_id=event_id), _("No, keep taking part"))


@blueprint.route("/events/<event_id>/matchmaking/ask/<member_id>", methods=["GET", "POST"])
@member_required
def ask(event_id: str, member_id: str):
    """Ask another participant for a meeting, with a message; the service's refusal at the form."""
    event = services().get("events", f"/events/{event_id}")
    setup = setup_of(event_id) or abort(404)
    candidates = services().get("meetings", f"/events/{event_id}/meetings/candidates")["items"]
    candidate = next((c for c in candidates if c["member_id"] == member_id), None)
    if candidate is None:
        return render_template("error.html", title=_("Not found"),
                               message=_("This organisation does not take part in the matchmaking (any more).")), 404
    who = names([member_id], {member_id: candidate.get("name")})
    form = MeetingRequestForm()
    form_errors: list[str] = []
    if form.validate_on_submit():
        try:
            services().post("meetings", f"/events/{event_id}/meetings",
                            json={"recipient_id": member_id, "message": (form.message.data or "").strip() or None})
        except api.ApiError as error:
            form_errors = refusal(form, error)
        else:
            flash(_("Your request has gone to %(name)s.", name=who[member_id]))
            return _back(event_id)
    status = 422 if form.errors or form_errors else 200
    return render_template("matchmaking/ask.html", event=event, setup=setup, candidate=candidate,
                           name=who[member_id], form=form, form_errors=form_errors), status


@blueprint.route("/events/<event_id>/matchmaking/<meeting_id>/accept", methods=["POST"])
@member_required
def accept(event_id: str, meeting_id: str):
    """Accept a request at a time both are free, or leave the time to the organizers."""
    form = AcceptMeetingForm(prefix=f"m{meeting_id[:8]}")
    form.slot.choices = [(request.form.get(form.slot.name, ""), "")]  # checked by the service
    if form.validate_on_submit():
        slot = form.slot.data
        try:
            services().post("meetings", f"/events/{event_id}/meetings/{meeting_id}/accept",
                            json={"slot": int(slot) if slot and slot.isdigit() else None})
        except api.ApiError as error:
            if error.status not in (409, 422):
                raise
            message = _refused(error)
            free = error.body.get("free_slots")
            if free is not None:
                setup = setup_of(event_id) or {"slots": []}
                labels = [slot_label(s) for s in setup["slots"] if s["number"] in free][:6]
                message += " " + (_("Free for both of you: %(times)s.", times="; ".join(labels)) if labels
                                  else _("No time is free for both of you; leave it to the organizers."))
            flash(message)
        else:
            flash(_("You have accepted the meeting."))
    return _back(event_id)


@blueprint.route("/events/<event_id>/matchmaking/<meeting_id>/reschedule", methods=["POST"])
@member_required
def reschedule(event_id: str, meeting_id: str):
    """Move an accepted meeting to another time both sides have free (participants schedule themselves)."""
    form = RescheduleMeetingForm(prefix=f"r{meeting_id[:8]}")
    form.slot.choices = [(request.form.get(form.slot.name, ""), "")]  # checked by the service
    if form.validate_on_submit() and (form.slot.data or "").isdigit():
        try:
            services().post("meetings", f"/events/{event_id}/meetings/{meeting_id}/reschedule",
                            json={"slot": int(form.slot.data)})
        except api.ApiError as error:
            if error.status not in (409, 422):
                raise
            flash(_refused(error))
        else:
            flash(_("The meeting is moved; the other side hears of it."))
    else:
        flash(_("Please choose a time."))
    return _back(event_id)


@blueprint.route("/events/<event_id>/matchmaking/<meeting_id>/cancel", methods=["GET", "POST"],
                 defaults={"action": "cancel"})
@blueprint.route("/events/<event_id>/matchmaking/<meeting_id>/<action>", methods=["POST"])
@member_required
def answer(event_id: str, meeting_id: str, action: str):
    """Decline a request (optional reason), or withdraw one's own request or cancel a meeting after a
    confirmation page (GET) naming the partner and the time."""
    if action not in ("decline", "cancel"):
        abort(404)
    if action == "cancel" and not confirmed():
        return _ask_cancel(event_id, meeting_id)
    form = ReasonForm()
    if form.validate_on_submit():
        try:
            services().post("meetings", f"/events/{event_id}/meetings/{meeting_id}/{action}",
                            json={"reason": (form.reason.data or "").strip() or None})
        except api.ApiError as error:
            if error.status not in (409, 422):
                raise
            flash(_refused(error))
        else:
            flash(_("You have declined the request.") if action == "decline" else _("It is cancelled."))
    else:
        flash(" ".join(str(e) for errors in form.errors.values() for e in errors))
    return _back(event_id)


def _ask_cancel(event_id: str, meeting_id: str):
    """The question before a request is withdrawn or a meeting cancelled: with whom, when, that they are told."""
    meeting = next((m for m in _mine(event_id)["items"]
                    if m["id"] == meeting_id and m["status"] in ("pending", "accepted")), None)
    if meeting is None:  # answered, cancelled or not one's own meanwhile: the page shows how things stand
        return _back(event_id)
    partner = names([meeting["other_id"]], partner_names([meeting]))[meeting["other_id"]]
    back = url_for("matchmaking.participant", event_id=event_id) + "#requests"
    if meeting["status"] == "pending":
        return confirm_page(_("Withdraw your request to %(name)s?", name=partner),
                            [_("%(name)s will no longer see your request for a meeting.", name=partner)],
                            _("Yes, withdraw the request"), back, _("No, keep the request"))
    slot = next((s for s in (setup_of(event_id) or {}).get("slots", []) if s["number"] == meeting.get("slot")), None)
    lines = [_("Your meeting with %(name)s (%(when)s) will be cancelled, and %(name)s is told.", name=partner,
               when=slot_label(slot)) if slot else
             _("Your meeting with %(name)s will be cancelled, and %(name)s is told.", name=partner),
             _("To meet after all, you ask again; the time may be taken by then.")]
    return confirm_page(_("Cancel the meeting with %(name)s?", name=partner), lines, _("Yes, cancel the meeting"),
                        back, _("No, keep the meeting"))


def _candidate_names(event_id: str) -> dict[str, str]:
    """Names of the other participants as matching gives them with the candidates (members-service does not
    show a member another member's profile); empty when one no longer takes part."""
    try:
        items = services().get("meetings", f"/events/{event_id}/meetings/candidates")["items"]
    except api.ApiError:
        return {}
    return {c["member_id"]: c.get("name") for c in items}


def _with_names(member_ids: list[str], items: list[dict], event_id: str) -> dict[str, str]:
    """Names for ``member_ids``: as meetings-service gives them with ``items``, else from the candidates."""
    known = partner_names(items)
    if set(member_ids) - set(known):
        known = {**_candidate_names(event_id), **known}
    return names(member_ids, known)


def _agenda(event_id: str) -> tuple[dict, dict, dict[str, str]]:
    setup = setup_of(event_id) or abort(404)
    agenda = services().get("meetings", f"/events/{event_id}/members/{g.member['member_id']}/agenda")
    who = _with_names([m["other_id"] for m in agenda["items"]], agenda["items"], event_id)
    return setup, agenda, who


def where(meeting: dict) -> str:
    if meeting.get("table"):
        return _("Table %(table)s", table=meeting["table"])
    return meeting.get("meeting_point") or _("Meeting point of the organisation asked")


def published_text(published: str) -> str:
    return {"none": _("The organizers have not published the schedule yet; you see the times you picked."),
            "preliminary": _("Preliminary schedule: times may still change."),
            "final": _("Final schedule.")}.get(published, "")


@blueprint.route("/events/<event_id>/agenda")
@member_required
def agenda(event_id: str):
    """My agenda: meetings with a visible time and place, in time order; downloads as .ics and PDF.
    An unknown event is a 404 (events-service says so), not "for confirmed participants"."""
    event = services().get("events", f"/events/{event_id}")  # ApiError 404: the "not found" page
    if event.get("status") == "cancelled":
        return _cancelled(event)
    if not _confirmed(event_id):
        return _not_registered()
    setup, answer_, who = _agenda(event_id)
    zone, zone_name = event_zone(answer_["event"])
    return render_template("matchmaking/agenda.html", setup=setup, agenda=answer_, who=who, where=where,
                           when_range=lambda starts, ends: when_range(starts, ends, zone), zone_name=zone_name,
                           published_text=published_text(answer_["published"]))


@blueprint.route("/events/<event_id>/agenda.ics")
@member_required
def agenda_ics(event_id: str):
    """The agenda as iCalendar from meetings-service (stable UIDs: a moved meeting moves in the calendar)."""
    response = services().get("meetings", f"/events/{event_id}/members/{g.member['member_id']}/agenda.ics", raw=True)
    return Response(response.content, mimetype="text/calendar",
                    headers={"Content-Disposition": 'attachment; filename="matchmaking-agenda.ics"'})


@blueprint.route("/events/<event_id>/agenda.pdf")
@member_required
def agenda_pdf_download(event_id: str):
    """The agenda as a printable PDF in the page's language."""
    setup, answer_, who = _agenda(event_id)
    states = {"cancelled": _("Cancelled"), "tentative": _("Preliminary"), "confirmed": _("Confirmed")}
    zone, zone_name = event_zone(answer_["event"])
    rows = [(f'{when_range(m["starts_at"], m["ends_at"], zone)} ({zone_name})' if m["starts_at"]
             else _("New time to follow"),
             where(m) if m["starts_at"] else "", who.get(m["other_id"], ""),
             _("To be rescheduled: the event’s time changed") if m.get("outside_event") and m["status"] == "accepted"
             else states.get((m.get("calendar_status") or "").lower(), ""))
            for m in answer_["items"]]
    venue = answer_["event"].get("venue") or ""
    content = agenda_pdf.render(
        title=_("My meetings: %(event)s", event=answer_["event"]["title"]),
        subtitle=" · ".join(part for part in (venue, published_text(answer_["published"])) if part),
        columns=(_("When"), _("Where"), _("With"), _("Status")), rows=rows,
        empty=_("No meetings with a time yet."), footer=_("Verbund matchmaking agenda"))
    return Response(content, mimetype="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="matchmaking-agenda.pdf"'})


@blueprint.route("/events/<event_id>/meetings/<meeting_id>/outcome", methods=["GET", "POST"])
@member_required
def outcome(event_id: str, meeting_id: str):
    """After a meeting: did it take place, and what came of it. A stable address: the follow-up survey
    mail (notifications-service) links here."""
    meeting = next((m for m in _mine(event_id)["items"] if m["id"] == meeting_id), None)
    if meeting is None:
        return render_template("error.html", title=_("Not found"),
                               message=_("We could not find this meeting among yours.")), 404
    who = _with_names([meeting["other_id"]], [meeting], event_id)
    form = MeetingOutcomeForm()
    form_errors: list[str] = []
    if form.validate_on_submit():
        try:
            if form.took_place.data:
                services().put("meetings", f"/events/{event_id}/meetings/{meeting_id}/attendance",
                               json={"took_place": form.took_place.data == "yes"})
            if form.outcome.data:
                services().put("meetings", f"/events/{event_id}/meetings/{meeting_id}/outcome",
                               json={"outcome": form.outcome.data, "led_to_project": bool(form.led_to_project.data)})
        except api.ApiError as error:
            form_errors = refusal(form, error)
        else:
            flash(_("Thank you. Your answer is saved."))
            return redirect(url_for("matchmaking.outcome", event_id=event_id, meeting_id=meeting_id))
    elif request.method == "GET":
        mine = meeting["attendance"].get(meeting["role"])
        form.took_place.data = None if mine is None else ("yes" if mine else "no")
    status = 422 if form.errors or form_errors else 200
    return render_template("matchmaking/outcome.html", meeting=meeting, name=who[meeting["other_id"]], form=form,
                           form_errors=form_errors, event_id=event_id), status


# --- organizers ---------------------------------------------------------------------------------------

def _event_for_staff(event_id: str) -> dict:
    """The event as its organizers see it (events-service answers another association's organizer 403)."""
    return services().get("events", f"/events/{event_id}/registrations")["event"]


def _setup_fields(fields: dict) -> dict:
    """The service's nested errors of sessions and breaks at the list, as the form shows them."""
    return {key: ([m for values in api.flatten_fields({key: value}).values() for m in values]
                  if key in ("sessions", "breaks") and isinstance(value, dict) else value)
            for key, value in (fields or {}).items()}


@blueprint.route("/organize/events/<event_id>/matchmaking", methods=["GET", "POST"])
@staff_required()
def organize(event_id: str):
    """The set-up form (sessions, meeting length, breaks, tables or meeting points, limits, expiry, who may
    ask whom, request and scheduling mode); with a set-up, links to the schedule and the figures."""
    event = _event_for_staff(event_id)
    setup = setup_of(event_id)
    form = MatchmakingSetupForm()
    form_errors: list[str] = []
    if request.method == "GET" and setup:
        form.fill(setup)
    if form.validate_on_submit():
        try:
            services().put("meetings", f"/events/{event_id}/meetings/setup", json=form.to_setup())
        except api.ApiError as error:
            error.fields = _setup_fields(error.fields)
            form_errors = refusal(form, error)
        else:
            flash(_("The matchmaking set-up is saved."))
            return redirect(url_for("matchmaking.organize", event_id=event_id))
    status = 422 if form.errors or form_errors else 200
    return render_template("matchmaking/organize.html", event=event, setup=setup, form=form,
                           form_errors=form_errors, sessions=sessions_of(setup) if setup else [],
                           slot_label=slot_label, tab="setup"), status


def _staff_meetings(event_id: str) -> tuple[dict, list[dict], dict[str, str]]:
    answer_ = services().get("meetings", f"/events/{event_id}/meetings")
    items = answer_["items"]
    who = names({m[k] for m in items for k in ("requester_id", "recipient_id")}, partner_names(items))
    return answer_, items, who


@blueprint.route("/organize/events/<event_id>/matchmaking/schedule")
@staff_required()
def schedule(event_id: str):
    """The schedule grid (slots × tables), conflicts, unscheduled meetings; schedule all, move, lock, publish."""
    event = _event_for_staff(event_id)
    setup = setup_of(event_id)
    if setup is None:
        return redirect(url_for("matchmaking.organize", event_id=event_id))
    answer_, items, who = _staff_meetings(event_id)
    conflicts = services().get("meetings", f"/events/{event_id}/meetings/conflicts")
    accepted = [m for m in items if m["status"] == "accepted"]
    grid: dict[tuple[int, int | None], list[dict]] = {}
    for meeting in accepted:
        if meeting["slot"] is not None:
            grid.setdefault((meeting["slot"], meeting["table"]), []).append(meeting)
    tables = list(range(1, (setup["tables"] or 0) + 1))
    places = {}
    for meeting in accepted:
        place = PlacementForm(prefix=f"p{meeting['id'][:8]}")
        place.slot.choices = [(str(s["number"]), slot_label(s)) for s in setup["slots"]]
        place.table.choices = [("", _("Any free table"))] + [(str(t), str(t)) for t in tables]
        place.slot.data = str(meeting["slot"]) if meeting["slot"] is not None else None
        place.table.data = str(meeting["table"]) if meeting["table"] else ""
        places[meeting["id"]] = place
    outside = sum(1 for c in conflicts["conflicts"] if c["code"] == "outside_event")
    conflict_texts = [str(CONFLICTS.get(c["code"], _l("A rule of the set-up is broken.")))
                      for c in conflicts["conflicts"] if c["code"] != "outside_event"]
    if outside:  # the event moved: one line with the count, and what to do below it
        conflict_texts.insert(0, ngettext("%(num)d meeting lies outside the event's new time.",
                                          "%(num)d meetings lie outside the event's new time.", outside))
    return render_template("matchmaking/schedule.html", event=event, setup=setup, accepted=accepted, grid=grid,
                           tables=tables, who=who, places=places, conflicts=conflict_texts, outside=outside,
                           sessions_outside=[n + 1 for n in conflicts.get("sessions_outside", [])],
                           unscheduled=[m for m in accepted if m["slot"] is None], sessions=sessions_of(setup),
                           unplaced=[(m, str(UNPLACED.get(m["unplaced_reason"], _l("Not placed yet."))))
                                     for m in accepted if m.get("unplaced_reason")],
                           slot_label=slot_label, button=EmptyForm(), tab="schedule",
                           pending=sum(1 for m in items if m["status"] == "pending"))


def _staff_action(event_id: str, call, done: str):
    if EmptyForm().validate_on_submit():
        try:
            answer_ = call()
        except api.ApiError as error:
            if error.status not in (409, 422):
                raise
            flash(_refused(error))
        else:
            flash(done if isinstance(done, str) else done(answer_))
    return redirect(url_for("matchmaking.schedule", event_id=event_id))


@blueprint.route("/organize/events/<event_id>/matchmaking/schedule-all", methods=["POST"])
@staff_required()
def schedule_all(event_id: str):
    """Place every accepted meeting without a time (locked ones and participants' picks stay)."""
    def done(result):
        if not result["unplaced"]:
            return _("%(placed)s of %(meetings)s meetings have a time and a table.",
                     placed=result["placed"], meetings=result["meetings"])
        return _("%(placed)s of %(meetings)s meetings have a time and a table; %(left)s could not be placed "
                 "(see why under “Not placed”).",
                 placed=result["placed"], meetings=result["meetings"], left=len(result["unplaced"]))
    return _staff_action(event_id, lambda: services().post("meetings", f"/events/{event_id}/meetings/schedule",
                                                           json={}), done)


@blueprint.route("/organize/events/<event_id>/matchmaking/publish/<state>", methods=["POST"])
@staff_required()
def publish(event_id: str, state: str):
    """Publish the schedule as preliminary or final: participants see it and get calendar updates."""
    if state not in ("preliminary", "final"):
        abort(404)
    done = _("The preliminary schedule is published.") if state == "preliminary" else \
        _("The final schedule is published.")
    return _staff_action(event_id, lambda: services().post("meetings", f"/events/{event_id}/meetings/publish",
                                                           json={"state": state}), done)


@blueprint.route("/organize/events/<event_id>/matchmaking/<meeting_id>/place", methods=["POST"])
@staff_required()
def place(event_id: str, meeting_id: str):
    """Move one meeting to a slot (and a table); it is locked so that "schedule all" keeps it."""
    form = PlacementForm(prefix=f"p{meeting_id[:8]}")
    form.slot.choices = [(request.form.get(form.slot.name, ""), "")]
    form.table.choices = [(request.form.get(form.table.name, ""), "")]
    if form.validate_on_submit() and (form.slot.data or "").isdigit():
        table = form.table.data
        try:
            services().put("meetings", f"/events/{event_id}/meetings/{meeting_id}/placement",
                           json={"slot": int(form.slot.data), "table": int(table) if table.isdigit() else None,
                                 "locked": True})
        except api.ApiError as error:
            if error.status not in (409, 422):
                raise
            flash(_refused(error))
        else:
            flash(_("The meeting is moved and locked."))
    else:
        flash(_("Please choose a slot."))
    return redirect(url_for("matchmaking.schedule", event_id=event_id))


@blueprint.route("/organize/events/<event_id>/matchmaking/<meeting_id>/lock/<int:locked>", methods=["POST"])
@staff_required()
def lock(event_id: str, meeting_id: str, locked: int):
    done = _("The meeting is locked.") if locked else _("The meeting is unlocked.")
    return _staff_action(event_id, lambda: services().put(
        "meetings", f"/events/{event_id}/meetings/{meeting_id}/lock", json={"locked": bool(locked)}), done)


@blueprint.route("/organize/events/<event_id>/matchmaking/report")
@staff_required()
def report(event_id: str):
    """The roll-up: requests / accepted / scheduled / held / no-show / disputed, table occupancy, outcomes."""
    event = _event_for_staff(event_id)
    setup = setup_of(event_id)
    if setup is None:
        return redirect(url_for("matchmaking.organize", event_id=event_id))
    figures = services().get("meetings", f"/events/{event_id}/meetings/report")
    return render_template("matchmaking/report.html", event=event, setup=setup, figures=figures, outcomes=OUTCOMES,
                           tab="report")


@blueprint.route("/organize/events/<event_id>/matchmaking/report.csv")
@staff_required()
def report_csv(event_id: str):
    """The roll-up as CSV (UTF-8 with BOM, as meetings-service writes it)."""
    response = services().get("meetings", f"/events/{event_id}/meetings/report.csv", raw=True)
    return Response(response.content, content_type=response.headers.get("Content-Type", "text/csv; charset=utf-8"),
                    headers={"Content-Disposition": f'attachment; filename="matchmaking-{event_id[:8]}.csv"'})


# --- the roll-up over an association's matchmaking days ---------------------------------------------------

ROLLUP_FIGURES = (("requests", _l("Requests")), ("accepted", _l("Accepted")), ("scheduled", _l("With a time")),
                  ("held", _l("Took place")), ("no_show", _l("Did not take place (no-show)")),
                  ("disputed", _l("Disputed (one side says it took place, the other that it did not)")),
                  ("outcomes_reported", _l("Meetings with an answer")),
                  ("cooperation_cases", _l("Cooperation cases (negotiation or agreement)")),
                  ("agreements", _l("Cooperation agreements")), ("led_to_project", _l("Led to a joint project")))


def _rollup_scope() -> str | None:
    """Organizers see their own association; admins the cooperation (None) or one association (``?scope=``)."""
    if g.member["role"] != "admin":
        return g.member.get("association")
    chosen = request.args.get("scope")
    return chosen if chosen in dict(i18n.choices("association")) else None


@blueprint.route("/organize/matchmaking")
@staff_required()
def rollup():
    """Requests, accepted, scheduled, held, no-show, disputed and what came of the meetings over every matchmaking day
    of the organizer's association (admins: the cooperation or one association), per event and in total."""
    association = _rollup_scope()
    params = {"association": association} if association else {}
    data = services().get("meetings", "/meetings/rollup", params=params)
    return render_template("matchmaking/rollup.html", data=data, association=association, figures=ROLLUP_FIGURES,
                           outcomes=OUTCOMES, associations=i18n.choices("association"))


@blueprint.route("/organize/matchmaking.csv")
@staff_required()
def rollup_csv():
    """The roll-up as CSV from meetings-service: one row per matchmaking day and a total row."""
    association = _rollup_scope()
    params = {"association": association} if association else {}
    response = services().get("meetings", "/meetings/rollup.csv", params=params, raw=True)
    return Response(response.content, content_type=response.headers.get("Content-Type", "text/csv; charset=utf-8"),
                    headers={"Content-Disposition":
                             f'attachment; filename="matchmaking-{association or "cooperation"}.csv"'})
