"""The home page and the accessibility statement."""
from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, render_template, url_for

from verbund_portal.app import services

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
