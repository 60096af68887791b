"""The Flask application: configuration, language, security headers, error pages, and the
``verbund-portal`` command (``python -m portal.app``) that ``verbund up`` starts."""
from __future__ import annotations

import argparse
import functools
import logging
from datetime import timedelta

from flask import Flask, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import Babel
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect

from verbund.schema_fields import MAX_PAGE
from verbund.settings import data_dir
from verbund_portal import api, i18n, messages, sessions
from verbund_portal.config import PortalConfig

LANGUAGES = ("de", "en")

# Strict: nothing inline, nothing from elsewhere; the pages need no script at all.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The sign-in page's address holds the link's secret: never send it on.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

csrf = CSRFProtect()


def select_language() -> str:
    """The member's chosen language (switcher or profile), else the browser's Accept-Language, else German."""
    if session.get("language") in LANGUAGES:
        return session["language"]
    return request.accept_languages.best_match(LANGUAGES) or "de"


def services() -> api.Services:
    """The services' APIs as the signed-in member (or anonymously), once per request."""
    if "services" not in g:
        config = current_app.config["PORTAL"]
        member = sessions.current()
        g.member = member
        g.services = api.Services(config.services, member["token"] if member else None,
                                  config.service_timeout_seconds, select_language(), request.remote_addr)
    return g.services


STAFF_ROLES = ("organizer", "admin")


def _forbidden(roles: tuple[str, ...] = STAFF_ROLES):
    message = (_("This page is for the platform's admins. If you should have access, ask an admin of Verbund.")
               if roles == ("admin",) else
               _("This page is for the associations' organizers and admins. If you should have access, ask an "
                 "admin of Verbund."))
    return render_template("error.html", title=_("Not allowed"), message=message), 403


# POST-only actions and the page that shows their button (sign-in never comes back to a POST).
LIST_PAGES = ("projects", "contacts", "inbox", "webhooks", "suggestions", "events", "profile", "preferences")


def return_page() -> tuple[str, bool]:
    """Where to come back to after signing in, and whether a button has to be pressed again: the
    page itself for a GET; for a POST its page if it has one for GET, else the list page that
    shows its button (``/projects/<id>/accept`` → ``/projects``, ``/events/<id>/cancel`` → ``/events/<id>``)."""
    if request.method in ("GET", "HEAD"):
        return request.full_path.rstrip("?"), False
    return button_page(request.path), True


def button_page(path: str) -> str:
    """The page that shows the button of the POST-only address ``path``: the address itself when it
    has a page for GET, else its list page (``/inbox/1/read`` → ``/inbox``), else the start page."""
    try:
        current_app.url_map.bind("").match(path, method="GET")
        return path
    except Exception:  # werkzeug's NotFound/MethodNotAllowed: no page to GET at this address
        pass
    parts = path.strip("/").split("/")
    if parts[0] == "events" and len(parts) > 2:
        return f"/events/{parts[1]}"
    return f"/{parts[0]}" if parts[0] in LIST_PAGES else "/"


def member_required(view):
    """Pages for signed-in members: others go to the sign-in page (and come back after; from a
    button, to the page with the button and a note to press it again)."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        services()
        if not g.member:
            return _to_sign_in()
        if g.member["role"] != "member":  # staff have no member profile: a friendly 403
            return render_template("error.html", title=_("Not allowed"),
                                   message=_("This page is for member organisations. Use the menu for your "
                                             "organizer pages.")), 403
        return view(*args, **kwargs)
    wrapped.member_only = True
    return wrapped


def staff_required(*roles: str):
    """Pages for staff of the given roles (default: organizers and admins). Others get a 403 page; the
    services decide again on every call (an organizer of another association gets their 403 too)."""
    allowed = roles or STAFF_ROLES

    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            services()
            if not g.member:
                return _to_sign_in()
            if g.member["role"] not in allowed:
                return _forbidden(allowed)
            return view(*args, **kwargs)
        return wrapped
    return decorate


def _to_sign_in():
    """Back to the sign-in page, coming back afterwards to the page (see ``return_page``)."""
    target, press_again = return_page()
    if press_again:
        session["press_again"] = True
    return redirect(url_for("auth.sign_in", next=target))


def page_number() -> int:
    """The list page asked for by the ``page`` query parameter, as the services take it: 1 to the kit's
    ``MAX_PAGE``. Text, 0 or a negative number is page 1; a number beyond (an edited address) the last page
    the services accept, which shows as an empty page, not as a failure."""
    page = request.args.get("page", 1, type=int) or 1
    return min(max(1, page), MAX_PAGE)


def language_next() -> str:
    """Where the language switch leads back to: the page itself (with its query) after a GET; after a POST
    that showed a form again with its errors (sign-up, an event, the profile), the form's own page, which
    answers GET too, so switching the language mid-form keeps one on the form (what was typed is not sent
    along: the switch is a form of its own); after a POST to an address that is only a button, the start."""
    if request.method == "GET":
        return request.full_path
    rule = request.url_rule
    return request.path if rule is not None and "GET" in (rule.methods or ()) else "/"


def create_app(config: PortalConfig | None = None) -> Flask:
    """The portal as a WSGI app; ``config`` defaults to ``PortalConfig.from_env()``."""
    config = config or PortalConfig.from_env()
    app = Flask(__name__)
    app.config.update(
        PORTAL=config,
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_NAME="verbund_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.absolute_hours),
        WTF_CSRF_TIME_LIMIT=None,  # the session's own expiry bounds a form's token
        WTF_CSRF_SSL_STRICT=config.secure_cookies,
        MAX_CONTENT_LENGTH=256 * 1024,
        BABEL_DEFAULT_LOCALE="de",
        BABEL_DEFAULT_TIMEZONE="Europe/Berlin",
        BABEL_TRANSLATION_DIRECTORIES=str(i18n.compiled_catalogues()),
    )
    if config.behind_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    sessions.init_app(app, data_dir() / "portal-sessions")
    csrf.init_app(app)
    Babel(app, locale_selector=select_language)
    app.jinja_env.add_extension("jinja2.ext.do")  # {% do %} in templates; autoescaping stays on
    i18n.register_filters(app)

    from verbund_portal.views import (
        admin,
        auth,
        dashboard,
        events,
        inbox,
        matchmaking,
        member,
        organize,
        pages,
        partners,
        public,
    )

    for module in (auth, member, partners, events, inbox, pages, organize, dashboard, admin, public, matchmaking):
        app.register_blueprint(module.blueprint)
    # RFC 8058's one-click POST carries no form token; the view checks every other POST itself. Exempted
    # here, on the instance this app uses (``python -m verbund_portal.app`` loads this module twice).
    csrf.exempt(pages.unsubscribe)

    @app.context_processor
    def page_context():
        services()
        unread = None
        if g.member and g.member.get("member_id"):
            try:
                unread = services().get("notifications", f"/members/{g.member['member_id']}/notifications",
                                        params={"unread": "true", "per_page": 1})["unread"]
            except (api.ServiceDown, api.ApiError, api.SessionExpired, KeyError, TypeError):
                unread = None  # the header goes without the count; the page itself still works
        role = g.member["role"] if g.member else None
        return {"member": g.member, "role": role, "is_staff": role in STAFF_ROLES, "language": select_language(),
                "unread": unread, "language_next": language_next(),
                "session_expired": session.pop("expired", False)}

    @app.after_request
    def security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if config.secure_cookies:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if "token" in session or request.path.startswith(("/sign-in/", "/unsubscribe/", "/email-confirmation/")):
            response.headers["Cache-Control"] = "no-store"  # personal pages stay out of shared caches
        return response

    @app.errorhandler(api.ServiceDown)
    def service_down(error):
        app.logger.warning("service unavailable: %s", error)
        return render_template("error.html", title=_("Temporarily unavailable"),
                               message=_("Part of Verbund is not answering right now. Please try again in a "
                                         "few minutes. Nothing you entered has been lost on our side.")), 503

    @app.errorhandler(api.SessionExpired)
    def session_expired(error):
        sessions.end()
        session["expired"] = "revoked" if getattr(error, "revoked", False) else True
        return redirect(url_for("auth.sign_in"))

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        services()
        view = app.view_functions.get(request.endpoint)
        if not g.member and getattr(view, "member_only", False):
            # the session (and its form token) is gone: a member's button leads to signing in again
            return _to_sign_in()
        return render_template("error.html", title=_("The form had expired"),
                               message=_("For your security, forms are only valid for a while. Please go back, "
                                         "reload the page and send it again.")), 400

    @app.errorhandler(api.ApiError)
    def api_error(error):
        status = error.status if error.status in (403, 404, 409, 410, 429) else 400
        titles = {403: _("Not allowed"), 404: _("Not found")}
        # The service decided; say it in the page's language and in plain words, not the API's.
        message = messages.page_message(status, error.message)
        if status == 403 and g.get("member") and g.member["role"] in STAFF_ROLES:
            message = _("Your account may not see or change this (it may belong to another association). "
                        "If you think it should, ask an admin of Verbund.")
        return render_template("error.html", title=titles.get(status, _("That did not work")),
                               message=message), status

    @app.errorhandler(404)
    def not_found(error):
        return render_template("error.html", title=_("Not found"),
                               message=_("This page does not exist. Check the address or use the menu.")), 404

    @app.errorhandler(405)
    def method_not_allowed(error):
        # a button's address opened directly (reload, bookmark, a mail scanner): nothing happened
        return render_template("error.html", title=_("Nothing was changed"),
                               message=_("This address only works with a button on its page; opening it directly "
                                         "does nothing. Go to the page and press the button there if you still "
                                         "want to."),
                               back=button_page(request.path), back_text=_("To the page with the button")), \
            405, {"Allow": ", ".join(sorted(error.valid_methods or ()))}

    @app.errorhandler(500)
    def internal(error):
        return render_template("error.html", title=_("Something went wrong"),
                               message=_("We could not show this page. Please try again later.")), 500

    return app


def main(argv: list[str] | None = None) -> int:
    """``verbund-portal [--host H] [--port P]``: serve the portal (waitress when installed, else Werkzeug)."""
    parser = argparse.ArgumentParser(prog="verbund-portal", description="Serve the Verbund portal")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    config = PortalConfig.from_env()
    host, port = args.host or config.host, args.port or config.port
    app = create_app(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s portal %(levelname)s %(message)s")
    print(f"portal listening on http://{host}:{port}", flush=True)
    from waitress import serve

    serve(app, host=host, port=port, threads=8, ident="verbund-portal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
