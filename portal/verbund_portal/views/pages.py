"""The home page and the accessibility statement."""
from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from verbund_portal import api
from verbund_portal.app import LANGUAGES, services
from verbund_portal.forms import EmptyForm

blueprint = Blueprint("pages", __name__)


@blueprint.route("/")
def home():
    services()
    if g.member:
        if g.member["role"] != "member":
            return redirect(url_for("organize.events"))
        return redirect(url_for("partners.suggestions"))
    return render_template("home.html")


@blueprint.route("/accessibility")
def accessibility():
    return render_template("accessibility.html", feedback=current_app.config["PORTAL"].feedback_email)


@blueprint.route("/health")
def health():
    return {"status": "ok"}


@blueprint.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    """The unsubscribe link of every mail (``{PORTAL_URL}/unsubscribe/<token>``). Opening it shows a
    button and changes nothing (mail scanners follow links); the button (a POST) calls
    notifications' ``POST /unsubscribe/{token}``, which turns e-mail off for the member. An
    invalid or outdated link says so (404). ``?language=de|en`` from the mail sets the language."""
    if request.args.get("language") in LANGUAGES:
        session["language"] = request.args["language"]
    form = EmptyForm()
    path = f"/unsubscribe/{token}"
    try:
        if form.validate_on_submit():
            services().post("notifications", path, raw=True)
            return render_template("unsubscribe.html", form=form, state="done")
        services().get("notifications", path, raw=True)  # is the link valid? (the service's GET changes nothing)
    except api.ApiError as error:
        if error.status not in (400, 404, 410):
            raise
        return render_template("unsubscribe.html", form=form, state="invalid"), 404
    return render_template("unsubscribe.html", form=form, state="ask")
