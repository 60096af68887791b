"""Sign in by e-mail link, sign up, sign out, and the language switcher."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from verbund_portal import api, sessions
from verbund_portal.app import LANGUAGES, select_language, services
from verbund_portal.forms import EmptyForm, ProfileForm, SignInForm, refusal
from verbund_portal.messages import plain_all

blueprint = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host, no //, no backslash, which browsers read as /):
    never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target \
            or urlsplit(target).netloc:
        return None
    return target


def _request_link(email: str) -> None:
    """Ask members-service to mail a sign-in link; the answer is the same for every address."""
    services().post("members", "/auth/sign-in-requests", json={"email": email, "language": select_language()})


@blueprint.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """Enter the organisation's contact e-mail → a sign-in link is mailed (``/sign-in/sent``)."""
    form = SignInForm()
    if form.validate_on_submit():
        try:
            _request_link(form.email.data.strip())
        except api.ApiError as error:
            if error.status == 429:
                form.email.errors = [_("Too many sign-in requests. Please wait a while and try again.")]
            else:
                form.email.errors = plain_all(api.flatten_fields(error.fields).get("email") or [error.message])
        else:
            session["next"] = _safe_next(request.args.get("next"))
            return redirect(url_for("auth.sign_in_sent"))
    elif request.args.get("next"):
        session["next"] = _safe_next(request.args.get("next"))
    return render_template("sign_in.html", form=form), 200 if not form.errors else 422


@blueprint.route("/sign-in/sent")
def sign_in_sent():
    return render_template("sign_in_sent.html")


@blueprint.route("/sign-in/<token>", methods=["GET", "POST"])
def sign_in_link(token: str):
    """The link from the e-mail. Opening it shows a button; the button (a POST) signs in, so a mail
    scanner that follows links does not use up the single-use link."""
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            answer = services().post("members", "/auth/tokens", json={"sign_in_token": token})
        except api.ApiError:
            return render_template("sign_in_link.html", form=form, invalid=True), 400
        target, press_again = session.get("next"), session.get("press_again")
        role = answer.get("role", "member")
        sessions.start(answer["token"], answer.get("member_id"), role, answer.get("language"),
                       int(answer.get("expires_in") or 3600), staff_id=answer.get("staff_id"),
                       association=answer.get("association"))
        if press_again and _safe_next(target):
            flash(_("You are signed in again. What you pressed before was not done yet: please press the "
                    "button again."))
        start_page = url_for("partners.suggestions") if role == "member" else url_for("organize.events")
        return redirect(_safe_next(target) or start_page)
    return render_template("sign_in_link.html", form=form, invalid=False)


@blueprint.route("/sign-out", methods=["POST"])
def sign_out():
    form = EmptyForm()
    if form.validate_on_submit():
        sessions.end()
    return redirect(url_for("auth.signed_out"))


@blueprint.route("/signed-out")
def signed_out():
    return render_template("signed_out.html")


@blueprint.route("/sign-up", methods=["GET", "POST"])
def sign_up():
    """The registration form. On success members-service mails the contact e-mail a link that
    confirms the address and signs in (``/sign-in/sent?welcome=1`` says so); an e-mail another
    organisation uses already (409 on ``contact.email``) is shown at its field with a way to sign in."""
    form = ProfileForm()
    if request.method == "GET":
        form.language.data = select_language()
    form_errors = []
    email_taken = False
    if form.validate_on_submit():
        body = form.to_member()
        try:
            config = current_app.config["PORTAL"]  # registering is anonymous, whoever is signed in here
            api.Services(config.services, None, config.service_timeout_seconds, select_language(),
                         request.remote_addr).post("members", "/members", json=body)
        except api.ApiError as error:
            fields = api.flatten_fields(error.fields)
            email_taken = error.status == 409 and ("contact.email" in fields or not fields)
            form_errors = refusal(form, error, *(
                ("contact_email", _("An organisation with this e-mail address is registered already."))
                if email_taken else ("name", _("An organisation of this name is registered already."))))
        else:
            session["language"] = form.language.data
            return redirect(url_for("auth.sign_in_sent", welcome=1))
    status = 422 if form.errors or form_errors else 200
    return render_template("sign_up.html", form=form, form_errors=form_errors, email_taken=email_taken), status


@blueprint.route("/email-confirmation/<token>", methods=["GET", "POST"])
def confirm_email(token: str):
    """The link mailed to a changed contact e-mail. Opening it shows a button (mail scanners follow
    links); the button calls members ``POST /auth/email-confirmations``: the new address becomes
    the contact e-mail (``done``), or the link is used, replaced or expired (``invalid``, 400), or
    another organisation took the address meanwhile (``taken``, 409)."""
    form = EmptyForm()
    if not form.validate_on_submit():
        return render_template("email_confirmation.html", form=form, state="ask")
    try:
        profile = services().post("members", "/auth/email-confirmations", json={"token": token})
    except api.ApiError as error:
        if error.status not in (400, 404, 409, 410, 422):
            raise
        state = "taken" if error.status == 409 else "invalid"
        return render_template("email_confirmation.html", form=form, state=state), error.status
    return render_template("email_confirmation.html", form=form, state="done",
                           address=((profile or {}).get("contact") or {}).get("email"))


@blueprint.route("/language", methods=["POST"])
def language():
    """The switcher: remember the language for this browser, back to the page it came from."""
    form = EmptyForm()
    chosen = request.form.get("language")
    if form.validate_on_submit() and chosen in LANGUAGES:
        session["language"] = chosen
    return redirect(_safe_next(request.form.get("next")) or url_for("pages.home"))
