"""Partner suggestions, contact requests between members, and partner projects."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _

from verbund_portal import api
from verbund_portal.app import member_required, services
from verbund_portal.forms import ContactRequestForm, EmptyForm, service_errors
from verbund_portal.views.member import own_profile

blueprint = Blueprint("partners", __name__)


def _suggestions() -> list[dict]:
    return services().get("matching", f"/members/{g.member['member_id']}/suggestions")["suggestions"]


def _describes_itself() -> bool:
    """Whether the member's profile names at least one offer or need."""
    profile = own_profile()
    return bool(profile.get("offers") or profile.get("needs"))


def _requests(direction: str) -> list[dict]:
    return services().get("members", "/contact-requests", params={"direction": direction})["items"]


def _contacts() -> dict[str, dict]:
    """The members this member is in contact with (an accepted request or a formed partner project),
    by id: ``{member_id: {name, contact_name, contact_email, via: [...]}}`` (members-service
    ``GET /members/{id}/contacts``)."""
    items = services().get("members", f"/members/{g.member['member_id']}/contacts")["items"]
    return {item["member_id"]: item for item in items}


@blueprint.route("/suggestions")
@member_required
def suggestions():
    """Partner suggestions as cards: name, sector, Bundesland (members-service's ``/members/cards``, named in the
    page's language), and the reasons in plain words (a same or neighbouring region among them)."""
    suggestions = _suggestions()
    # With none, the advice depends on the profile: one without offers and needs is told to add them;
    # one that has them is told why nobody fits yet and what helps, not to add what it has.
    described = bool(suggestions) or _describes_itself()
    return render_template("suggestions.html", suggestions=suggestions, described=described,
                           requested=contact_states(),
                           cards=api.cards(services(), [s["partner_id"] for s in suggestions]), form=EmptyForm())


# When requests between two members differ, the one that says most wins.
_RANK = {"accepted": 4, "pending": 3, "asked_you": 2, "declined": 1}


def contact_states() -> dict[str, str]:
    """Per partner what the card shows instead of "request contact": ``accepted``, ``pending`` (my
    request waits), ``asked_you`` (theirs waits for me) or ``declined``; partners not in it get the button."""
    states: dict[str, str] = {}

    def note(partner: str, state: str) -> None:
        if _RANK.get(state, 0) > _RANK.get(states.get(partner, ""), 0):
            states[partner] = state

    for item in _requests("outgoing"):
        note(item["recipient_id"], item["status"])
    for item in _requests("incoming"):
        note(item["requester_id"], {"pending": "asked_you", "accepted": "accepted"}.get(item["status"], ""))
    return states


@blueprint.route("/suggestions/<partner_id>/contact", methods=["GET", "POST"])
@member_required
def request_contact(partner_id: str):
    """A short introduction to a suggested partner; they see the message and accept or decline."""
    partner = next((s for s in _suggestions() if s["partner_id"] == partner_id), None)
    if partner is None:
        abort(404)
    form = ContactRequestForm()
    form_errors = []
    if form.validate_on_submit():
        try:
            services().post("members", f"/members/{partner_id}/contact-requests",
                            json={"message": form.message.data.strip()})
        except api.ApiError as error:
            if error.status == 422:
                form_errors = service_errors(form, error)
            elif error.status == 409:
                form_errors = [_("You cannot ask this partner again right now: a request is still open, or "
                                 "they declined recently.")]
            elif error.status == 429:
                form_errors = [_("You have sent many requests today. Please try again tomorrow.")]
            else:
                raise
        else:
            flash(_("Your request has been sent to %(name)s.", name=partner["partner_name"]))
            return redirect(url_for("partners.contacts"))
    status = 422 if form.errors or form_errors else 200
    return render_template("contact_request.html", form=form, partner=partner, form_errors=form_errors), status


@blueprint.route("/contacts")
@member_required
def contacts():
    """Incoming and outgoing contact requests; for accepted ones, the other side's contact person."""
    incoming, outgoing = _requests("incoming"), _requests("outgoing")
    details = {}
    for item in incoming + outgoing:
        if item["status"] == "accepted":
            other = item["requester_id"] if item["recipient_id"] == g.member["member_id"] else item["recipient_id"]
            try:
                details[item["id"]] = services().get("members", f"/members/{other}/contact")
            except api.ApiError:  # the partner left the platform meanwhile
                details[item["id"]] = None
    # Members met through a formed partner project: in touch without a request of their own.
    teams = [item for item in _contacts().values() if any(via["kind"] == "project" for via in item["via"])]
    return render_template("contacts.html", incoming=incoming, outgoing=outgoing, details=details, teams=teams,
                           form=EmptyForm())


@blueprint.route("/contacts/<request_id>/<any(accept, decline):answer>", methods=["POST"])
@member_required
def answer_request(request_id: str, answer: str):
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            services().post("members", f"/contact-requests/{request_id}/{answer}")
        except api.ApiError as error:
            if error.status != 409:
                raise
            flash(_("This request has already been answered or has expired."))
        else:
            flash(_("You accepted the request. You now see each other's contact details.") if answer == "accept"
                  else _("You declined the request."))
    return redirect(url_for("partners.contacts"))


@blueprint.route("/projects")
@member_required
def projects():
    """Partner-project proposals with their team, what each member covers, and my answer."""
    items = services().get("matching", f"/members/{g.member['member_id']}/proposals")["items"]
    contacts = _contacts() if any(p["status"] == "formed" for p in items) else {}
    return render_template("projects.html", proposals=items, contacts=contacts, form=EmptyForm())


@blueprint.route("/projects/<proposal_id>/<any(accept, decline):answer>", methods=["POST"])
@member_required
def answer_project(proposal_id: str, answer: str):
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            services().post("matching", f"/proposals/{proposal_id}/responses", json={"response": answer})
        except api.ApiError as error:
            if error.status != 409:
                raise
            flash(_("This proposal can no longer be answered."))
        else:
            flash(_("Thank you, your answer has been saved."))
    return redirect(url_for("partners.projects") + f"#proposal-{proposal_id}")
