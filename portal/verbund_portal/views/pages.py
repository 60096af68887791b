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
    """The unsubscribe link of every mail, in its footer and in its ``List-Unsubscribe`` header
    (``{PORTAL_URL}/unsubscribe/<token>``). Opening it shows a button and changes nothing (mail
    scanners follow links); the button (a POST with the form's CSRF token) calls notifications'
    ``POST /unsubscribe/{token}``, which turns e-mail off for the member.

    A mail program's RFC 8058 one-click POST (body ``List-Unsubscribe=One-Click``, form-encoded or
    multipart) comes without cookies or form token: the signed token in the URL is the secret, so that
    POST alone needs no CSRF token (the app exempts this view from the global check; see ``create_app``);
    it is answered 200 with the "done" page. Any other POST without a
    valid form token is refused (400) as everywhere. An invalid or outdated link says so (404).
    ``?language=de|en`` from the mail sets the language."""
    if request.args.get("language") in LANGUAGES:
        session["language"] = request.args["language"]
    one_click = request.method == "POST" and request.form.get("List-Unsubscribe") == "One-Click"
    if request.method == "POST" and not one_click:
        current_app.extensions["csrf"].protect()  # raises CSRFError: "the form had expired"
    form = EmptyForm(meta={"csrf": not one_click})
    path = f"/unsubscribe/{token}"
    try:
        if one_click or form.validate_on_submit():
            services().post("notifications", path, raw=True)
            return render_template("unsubscribe.html", form=form, state="done")
        services().get("notifications", path, raw=True)  # is the link valid? (the service's GET changes nothing)
    except api.ApiError as error:
        if error.status not in (400, 404, 410):
            raise
        return render_template("unsubscribe.html", form=form, state="invalid"), 404
    return render_template("unsubscribe.html", form=form, state="ask")
