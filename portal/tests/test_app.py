"""The portal without services: headers, cookies, CSRF, sessions, language, error pages, the
mapping of the services' field errors, and the catalogues. Service addresses point at a closed
port, so every call to a service fails as a stopped service does."""
from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from verbund_portal import create_app, i18n, sessions
from verbund_portal.api import flatten_fields
from verbund_portal.config import PortalConfig
from verbund_portal.forms import ProfileForm, apply_errors
from verbund_portal.views.auth import _safe_next

from verbund.testing import free_port


def config(**overrides) -> PortalConfig:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    values = dict(portal_url="http://localhost:8000", host="127.0.0.1", port=8000, secret_key="unit-test-secret",
                  services={s: down for s in ("members", "events", "matching", "notifications")},
                  service_timeout_seconds=2.0)
    values.update(overrides)
    return PortalConfig(**values)


@pytest.fixture
def app():
    return create_app(config())


@pytest.fixture
def client(app):
    return app.test_client()


def csrf(client, path: str = "/sign-in") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_every_page_carries_a_strict_csp_and_the_usual_security_headers(client):
    response = client.get("/sign-in")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers  # plain http in development
    assert "<script" not in response.get_data(as_text=True)  # the pages need no script at all


def test_the_session_cookie_is_httponly_lax_and_secure_behind_https():
    for url, secure in (("http://localhost:8000", False), ("https://verbund.example", True)):
        client = create_app(config(portal_url=url)).test_client()
        response = client.get("/sign-in")
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure
        if secure:
            assert "max-age" in response.headers["Strict-Transport-Security"]


def test_a_form_without_its_csrf_token_is_refused_with_a_page_not_a_500(client):
    response = client.post("/sign-in", data={"email": "a@b.example"}, headers={"Accept-Language": "en"})
    assert response.status_code == 400
    assert "The form had expired" in response.get_data(as_text=True)
    assert client.post("/sign-out").status_code == 400


def test_a_service_that_is_down_gives_a_friendly_page_in_the_page_language(client):
    token = csrf(client)
    response = client.post("/sign-in", data={"email": "a@b.example", "csrf_token": token},
                           headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "Vorübergehend nicht erreichbar" in body and "Traceback" not in body


def test_bad_input_comes_back_with_its_field_error_before_anything_is_sent(client):
    token = csrf(client)
    response = client.post("/sign-in", data={"email": "no-address", "csrf_token": token},
                           headers={"Accept-Language": "en"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'aria-invalid="true"' in body and 'aria-describedby="email-error"' in body
    assert "This is not a valid e-mail address." in body


def test_language_from_the_browser_then_from_the_switcher(client):
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "en-GB,en"}).get_data(as_text=True)
    assert '<html lang="de">' in client.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    token = csrf(client, "/")
    switched = client.post("/language", data={"language": "en", "next": "/accessibility", "csrf_token": token})
    assert switched.status_code == 302 and switched.headers["Location"] == "/accessibility"
    page = client.get("/accessibility", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="en">' in page and "Accessibility statement" in page
    away = client.post("/language", data={"language": "de", "next": "https://evil.example/", "csrf_token": token})
    assert away.headers["Location"] == "/"  # never an open redirect


def test_switching_the_language_on_a_form_shown_again_with_its_errors_stays_on_the_form(client):
    """A form sent with a mistake comes back (422, here the sign-in's); its language switch leads back to the
    form's page in the other language, not to the start page (a POST-only button's answer still goes there)."""
    token = csrf(client, "/sign-in")
    page = client.post("/sign-in", data={"csrf_token": token, "email": "kein-link"}, headers={"Accept-Language": "de"})
    assert page.status_code == 422
    back = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page.get_data(as_text=True)).group(1)
    assert back == "/sign-in"
    switched = client.post("/language", data={"language": "en", "next": back, "csrf_token": token})
    assert switched.headers["Location"] == "/sign-in"
    assert "Sign in" in client.get("/sign-in").get_data(as_text=True)
    # a page reached by GET keeps its query: a filtered list stays filtered
    html = client.get("/accessibility?from=footer").get_data(as_text=True)
    assert 'name="next" value="/accessibility?from=footer"' in html


def test_member_pages_send_a_stranger_to_sign_in(client):
    for path in ("/suggestions", "/contacts", "/projects", "/events", "/inbox", "/profile", "/preferences"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in?next=")


def test_a_session_ends_when_idle_and_the_token_is_not_readable_in_the_cookie(app, monkeypatch):
    with app.test_request_context("/"):
        from flask import session

        sessions.start("header.payload.signature", "m-1", "member", "en", expires_in=3600)
        assert "payload" not in session["token"]  # encrypted, not merely signed
        assert sessions.current()["token"] == "header.payload.signature"
        later = time.time() + app.config["PORTAL"].idle_minutes * 60 + 5
        monkeypatch.setattr(time, "time", lambda: later)
        assert sessions.current() is None and session.get("language") == "en"


def test_a_session_ends_with_its_token_even_when_used(app, monkeypatch):
    with app.test_request_context("/"):
        sessions.start("t", "m-1", "member", None, expires_in=60)
        now = time.time()
        for step in range(1, 4):  # used every 25 s: never idle, but the token lives 60 s
            monkeypatch.setattr(time, "time", lambda step=step: now + step * 25)
            alive = sessions.current()
        assert alive is None


def test_the_services_field_errors_land_on_the_form_fields_in_plain_words(app, caplog):
    nested = {"region": {"postcode": ["a German postcode has five digits"]},
              "contact": {"email": ["Not a valid email address."]},
              "offers": {"3": {"label": ["Longer than maximum length 200."]}}, "unknown": ["Something else."]}
    assert flatten_fields(nested)["region.postcode"] == ["a German postcode has five digits"]
    with app.test_request_context("/sign-up", method="POST", headers={"Accept-Language": "de"}):
        form = ProfileForm(meta={"csrf": False})
        left = apply_errors(form, nested)
        assert form.postcode.errors == ["Eine deutsche Postleitzahl hat fünf Ziffern."]
        assert form.contact_email.errors == ["Das ist keine gültige E-Mail-Adresse."]
        assert form.offers.entries[3].errors == ["Höchstens 200 Zeichen."]
        assert left == ["Bitte prüfen Sie diese Angabe."]  # unknown: generic, and logged
    assert "Something else." in caplog.text


# What the services said in the tester's report → what a member reads (German, English).
SERVICE_MESSAGES = [
    ("must not contain a control or invalid character (U+202E at position 36)", "unsichtbares", "invisible"),
    ("the event has 1 seat(s) in all; a request can ask for at most that many", "insgesamt 1 Platz.",
     "1 place in all"),
    ("the event has 12 seat(s) in all; a request can ask for at most that many", "insgesamt 12 Plätze",
     "12 places in all"),
    ("must be after starts_at", "Ende muss nach dem Beginn", "end must be after the start"),
    ("must lie in the future", "in der Zukunft", "in the future"),
    ("give a venue or an online_url (or both)", "Ort oder eine Online-Adresse", "venue or an online address"),
    ("the URL must start with http:// or https://", "mit https:// beginnen", "must start with https://"),
    ("127.0.0.1 is a loopback address", "privaten Netz", "private network"),
    ("10.0.0.1 is a private address", "privaten Netz", "private network"),
    ("printer.local resolves to 169.254.1.1, a link-local address", "privaten Netz", "private network"),
    ("Not a valid URL.", "keine gültige Internetadresse", "not a valid web address"),
    ("'<' at position 9 is not allowed in a URL", "keine gültige Internetadresse", "not a valid web address"),
    # an event's edit: capacity below the confirmed seats (events-service capacity_problem)
    ("2 seat(s) are already confirmed; the capacity cannot go below that. Cancel registrations first.",
     "2 Plätze sind bereits bestätigt", "2 places are already confirmed"),
    ("a registration asks for 5 seats; the capacity cannot go below that", "mindestens 5", "at least 5"),
    ("must be between the years 2000 and 2100", "zwischen den Jahren 2000 und 2100", "between the years 2000"),
    # sign-in and sign-up: umlauts before the @ (kit schema_fields.Email)
    ("the part before the @ must be written without umlauts or accents (ASCII); mail cannot be delivered to such "
     "an address", "ohne Umlaute", "without them"),
    # matchmaking: asking again for a meeting that is accepted already is not "an open request"
    ("there is already an open request between you two (accepted)", "schon ein Treffen", "already have a meeting"),
    ("there is already an open request between you two (pending)", "schon eine offene Anfrage",
     "already an open request"),
    # an offer or a need of emoji or punctuation only (members-service CompetencySchema)
    ("must contain a letter or digit: name it in words", "mindestens ein Buchstabe", "at least one letter"),
]


@pytest.mark.parametrize(("message", "german", "english"), SERVICE_MESSAGES)
def test_service_messages_read_in_plain_words_without_codes(app, message, german, english):
    from verbund_portal.messages import plain

    for language, expected in (("de", german), ("en", english)):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            text = plain(message)
        assert expected in text, text
        assert "U+" not in text and "127.0.0.1" not in text and "position" not in text


def test_a_refusal_the_service_wrote_in_the_pages_language_is_shown_as_it_is(app):
    """members-service answers an import in the Accept-Language the portal forwards and says so in
    Content-Language; the portal shows such a text instead of "Bitte prüfen Sie diese Angabe."."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from verbund_portal import api
    from verbund_portal.messages import plain

    refusal = "Die Datei ist doppelt als UTF-8 kodiert (Zeile 1: „MÃ¼ller“, gemeint ist wohl „Müller“)"
    asked_in = []

    class Members(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            asked_in.append(self.headers.get("Accept-Language"))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"error": refusal}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Language", asked_in[-1])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Members)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        members = api.Services({"members": f"http://127.0.0.1:{server.server_port}"}, None, 5, language="de")
        with pytest.raises(api.ApiError) as refused:
            members.post("members", "/members/import", data=b"x", content_type="text/csv")
    finally:
        server.shutdown()
    assert asked_in == ["de"] and refused.value.language == "de"
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert plain(refused.value.message, refused.value.language) == refusal
        assert plain(refused.value.message) == "Bitte prüfen Sie diese Angabe."  # no language said: not shown
    with app.test_request_context("/", headers={"Accept-Language": "en"}):  # German text on an English page
        assert plain(refused.value.message, refused.value.language) == "Please check this entry."


def test_a_refusal_page_says_it_plainly_in_the_page_language(app):
    from verbund_portal import api

    @app.route("/refused/<int:status>")
    def refused(status):
        raise api.ApiError(status, {403: "only the member asked may answer a contact request",
                                    404: "no event not-a-uuid"}[status])

    client = app.test_client()
    forbidden = client.get("/refused/403", headers={"Accept-Language": "de"})
    assert forbidden.status_code == 403
    body = forbidden.get_data(as_text=True)
    assert "Nicht erlaubt" in body and "only the member" not in body and "Sie dürfen das nicht" in body
    missing = client.get("/refused/404", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Nicht gefunden" in missing and "not-a-uuid" not in missing and "no event" not in missing


def test_one_service_error_shows_once_at_its_field_and_never_validation_failed(app):
    from verbund_portal import api
    from verbund_portal.forms import RegistrationForm, service_errors

    problem = "the event has 1 seat(s) in all; a request can ask for at most that many"
    with app.test_request_context("/", method="POST", headers={"Accept-Language": "en"}):
        form = RegistrationForm(meta={"csrf": False})
        left = service_errors(form, api.ApiError(422, problem, {"seats": [problem, problem]}))
        assert left == [] and len(form.seats.errors) == 1
        form = RegistrationForm(meta={"csrf": False})
        left = service_errors(form, api.ApiError(422, "validation failed", {"nonsense": ["x"]}))
        assert "validation failed" not in " ".join(left + list(form.seats.errors))


def test_an_address_pasted_with_spaces_is_trimmed_before_the_check(app):
    from verbund_portal.forms import SignInForm

    with app.test_request_context("/sign-in", method="POST", data={"email": "  anna@example.org \t"}):
        form = SignInForm(meta={"csrf": False})
        assert form.validate(), form.errors
        assert form.email.data == "anna@example.org"


def test_a_webhook_must_be_https_as_the_hint_says(app):
    from verbund_portal.forms import WebhookForm

    for url, ok in (("http://crm.example.org/hook", False), (" https://crm.example.org/hook ", True)):
        with app.test_request_context("/webhooks", method="POST", data={"url": url},
                                      headers={"Accept-Language": "de"}):
            form = WebhookForm(meta={"csrf": False})
            assert form.validate() is ok, form.errors
            if not ok:
                assert form.url.errors == ["Die Adresse muss mit https:// beginnen."]


def test_dates_read_like_the_mails_and_the_day_once(app):
    start, end = "2027-03-03T08:30:00Z", "2027-03-03T11:00:00Z"  # 9:30–12:00 in Berlin
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert i18n.when_range(start, end) == "Mi., 3. März 2027, 9:30–12:00 Uhr"
        assert i18n.when(start) == "Mi., 3. März 2027, 9:30 Uhr"
        assert i18n.when_range(start, "2027-03-04T16:00:00Z") == \
            "Mi., 3. März 2027, 9:30 Uhr – Do., 4. März 2027, 17:00 Uhr"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert i18n.when_range(start, end) == "Wed, 3 March 2027, 09:30–12:00"
        assert i18n.when("2026-12-06T15:48:00Z") == "Sun, 6 December 2026, 16:48"  # UK style, not "Dec 6, 2026"


def test_a_month_of_the_statistics_reads_as_the_page_language_names_it(app):
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert i18n.month("2026-12") == "Dezember 2026" and i18n.month("2027-03") == "März 2027"
        assert i18n.month("no month") == "no month"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert i18n.month("2026-12") == "December 2026"


def test_the_german_length_message_is_good_german(app):
    from verbund_portal.forms import ContactRequestForm

    with app.test_request_context("/", method="POST", data={"message": "x" * 1001},
                                  headers={"Accept-Language": "de"}):
        form = ContactRequestForm(meta={"csrf": False})
        assert not form.validate()
        assert form.message.errors == ["Höchstens 1000 Zeichen."]


def test_a_button_pressed_after_the_session_ended_comes_back_to_its_page_not_to_a_post_route(app, client):
    from verbund_portal.app import LIST_PAGES  # noqa: F401  (the pages a button belongs to)

    cases = {"/projects/p-1/accept": "/projects", "/contacts/r-1/decline": "/contacts", "/inbox/4/read": "/inbox",
             "/events/e-1/cancel": "/events/e-1/cancel", "/webhooks/w-1/delete": "/webhooks/w-1/delete",
             "/events/e-1/matchmaking/m-1/decline": "/events/e-1"}
    token = csrf(client)
    for action, page in cases.items():
        response = client.post(action, data={"csrf_token": token})
        assert response.status_code == 302, action
        assert response.headers["Location"] == f"/sign-in?next={page}", action
    # the session and its form token gone altogether (a new browser, the store emptied): the same
    gone = app.test_client().post("/contacts/r-1/accept", data={"csrf_token": "stale"})
    assert gone.status_code == 302 and gone.headers["Location"] == "/sign-in?next=/contacts"
    assert client.get("/projects").headers["Location"] == "/sign-in?next=/projects"


def test_the_cookie_holds_only_a_session_id_and_a_copy_is_dead_after_sign_out(app):
    client = app.test_client()
    with app.app_context():
        sealed = sessions._fernet().encrypt(b"a.bearer.token").decode()
    with client.session_transaction() as session:  # as a sign-in leaves it
        now = int(time.time())
        session.update({"token": sealed, "member_id": "m-1", "role": "member", "started": now,
                        "seen": now, "ends": now + 3600})
    copied = client.get_cookie("verbund_session").value
    assert len(copied) >= 32 and "m-1" not in copied and "." not in copied  # a random id, no data, no signature
    token = csrf(client, "/sign-in")
    assert client.post("/sign-out", data={"csrf_token": token}).status_code == 302
    assert client.get_cookie("verbund_session") is None or client.get_cookie("verbund_session").value != copied
    thief = app.test_client()
    thief.set_cookie("verbund_session", copied)
    with thief.session_transaction() as session:
        assert "token" not in session and "member_id" not in session  # deleted from the store
    response = thief.get("/profile")
    assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in")


def test_inbox_items_link_to_their_page():
    from verbund_portal.views.inbox import item_link

    assert item_link({"type": "contact.accepted"}) == "/contacts"
    assert item_link({"type": "project.proposed"}) == "/projects"
    assert item_link({"type": "registration.promoted", "link": "/events/e-1"}) == "/events/e-1"
    assert item_link({"type": "contact.accepted", "link": "//evil.example/"}) == "/contacts"
    assert item_link({"type": "something.else"}) is None


def test_only_paths_on_this_site_are_followed_after_sign_in():
    assert _safe_next("/events?kind=fair") == "/events?kind=fair"
    for target in ("https://evil.example/", "//evil.example/x", "evil", None, "/\\evil.example"):
        assert _safe_next(target) is None


def test_every_message_has_its_german_translation_and_the_catalogues_compile(tmp_path):
    with open(i18n.CATALOGUES / "de" / "LC_MESSAGES" / "messages.po", "rb") as source:
        catalog = read_po(source, locale="de")
    missing = [m.id for m in catalog if m.id and (m.fuzzy or not (m.string if isinstance(m.string, str)
                                                                    else all(m.string)))]
    assert not missing
    # Every text the code and templates use is in the catalogue (an entry gone obsolete while its
    # text came back in a template showed in English on a German page).
    from babel.messages.extract import extract_from_dir

    portal = Path(i18n.__file__).parent
    with open(portal.parent / "babel.cfg") as config:
        from babel.messages.frontend import parse_mapping_cfg

        method_map, options_map = parse_mapping_cfg(config)
    used = {message[2] if isinstance(message[2], str) else message[2][0]
            for message in extract_from_dir(portal, method_map, options_map,
                                            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "_l": None,
                                                      "lazy_gettext": None})}
    held = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    assert not sorted(used - held)
    compiled = i18n.compiled_catalogues(tmp_path)
    assert (compiled / "de" / "LC_MESSAGES" / "messages.mo").stat().st_size > 10_000


def test_the_english_pages_say_time_block_wherever_the_german_say_zeitblock(app):
    """The German pages call a matchmaking session a Zeitblock; the English ones a time block, never a session
    (the API's field names stay ``sessions``); the service's set-up errors read the same in either wording."""
    from verbund_portal.messages import plain

    with open(i18n.CATALOGUES / "de" / "LC_MESSAGES" / "messages.po", "rb") as source:
        catalog = read_po(source, locale="de")
    blocks = [english for m in catalog if m.id and "Zeitbl" in str(m.string)
              for english in (m.id if isinstance(m.id, tuple) else (m.id,))]  # a plural: both forms
    assert len(blocks) >= 10
    for english in blocks:
        assert "time block" in english.lower() and "session" not in english.lower(), english
    for said in ("time block 2 lies outside the event's time", "session 2 lies outside the event's time"):
        with app.test_request_context("/", headers={"Accept-Language": "en"}):
            assert plain(said) == "Time block 2 lies outside the event's time."
        with app.test_request_context("/", headers={"Accept-Language": "de"}):
            assert plain(said) == "Zeitblock 2 liegt außerhalb der Zeit der Veranstaltung."
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert plain("time blocks overlap: 09:00–12:00 UTC and 11:00–13:00 UTC") == (
            "Two time blocks overlap. Please separate them.")


def test_member_text_is_escaped(app):
    with app.test_request_context("/"):
        from flask import render_template

        html = render_template("error.html", title="<script>x</script>", message="<img src=x onerror=alert(1)>")
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html and "<img" not in html


STAFF_PAGES = ("/organize/dashboard", "/organize/dashboard.csv", "/organize/events", "/organize/events/new",
               "/organize/events/e-1", "/organize/events/e-1/edit", "/organize/events/e-1/cancel",
               "/organize/events/e-1/attendees.xlsx", "/organize/members", "/organize/members/import")
ADMIN_PAGES = ("/admin/staff", "/admin/integrators", "/admin/health")
MEMBER_PAGES = ("/suggestions", "/contacts", "/projects", "/events", "/inbox", "/profile", "/preferences")


def signed_in(app, client, role: str, association: str | None = None) -> None:
    """Put a session for ``role`` into the portal's session store, as signing in leaves it."""
    with app.app_context():
        sealed = sessions._fernet().encrypt(b"t").decode()
    member_id = "m-1" if role == "member" else None
    with client.session_transaction() as session:
        now = int(time.time())
        session.update({"token": sealed, "member_id": member_id, "role": role,
                        "staff_id": None if member_id else "s-1", "association": association,
                        "started": now, "seen": now, "ends": now + 3600, "language": "en"})


@pytest.mark.parametrize("role, association, refused", [
    ("member", None, STAFF_PAGES + ADMIN_PAGES),
    ("organizer", "it-cluster", ADMIN_PAGES + MEMBER_PAGES),
    ("admin", None, MEMBER_PAGES),
])
def test_each_role_is_refused_the_pages_of_the_others_before_any_service_is_asked(app, client, role, association,
                                                                                  refused):
    for path in STAFF_PAGES + ADMIN_PAGES:  # a stranger is sent to sign in first
        response = app.test_client().get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in?next="), path
    signed_in(app, client, role, association)
    for path in refused:
        response = client.get(path)
        # 403 (not 503): the portal refused without calling the services, which are down here
        assert response.status_code == 403, path
        assert "Not allowed" in response.get_data(as_text=True)
    if role != "member":  # the staff menu, not the member's
        html = client.get("/admin/health" if role == "admin" else "/organize/members/import").get_data(as_text=True)
        assert "Member lists" in html and "Suggestions" not in html
        assert ("Staff accounts" in html) == (role == "admin")


def test_the_event_form_sends_wall_clock_times_in_the_chosen_zone_and_shows_stored_ones_in_it(app):
    from verbund_portal.forms import EventForm

    with app.test_request_context("/", method="POST", data={
            "title": "Messe", "kind": "fair", "organizers": ["it-cluster"], "timezone": "Europe/Lisbon",
            "starts_at": "2027-03-15T09:30", "ends_at": "2027-03-15T17:00", "capacity": "40",
            "venue_name": "Halle 3", "venue_city": "Lissabon"}):
        form = EventForm(meta={"csrf": False})
        assert form.validate(), form.errors
        event = form.to_event()
        assert event["timezone"] == "Europe/Lisbon" and event["starts_at"] == "2027-03-15T09:30"
        assert event["venue"] == {"name": "Halle 3", "address": None, "city": "Lissabon"}
        assert event["registration_deadline"] is None and event["online_url"] is None
        assert list(form.timezone.choices.values())[0][0][0] == "Europe/Berlin"  # the default first in the list
        shown = EventForm(meta={"csrf": False}, formdata=None)
        shown.fill({"title": "Messe", "kind": "fair", "organizers": ["it-cluster"], "timezone": "Europe/Berlin",
                    "starts_at": "2027-07-01T07:30:00+00:00", "ends_at": "2027-07-01T15:00:00Z", "capacity": 40})
        assert shown.starts_at.data == "2027-07-01T09:30" and shown.ends_at.data == "2027-07-01T17:00"  # CEST


class _FakeService:
    """A service on a real port that answers each ``(method, path)`` with a scripted
    ``(status, json, headers)`` and records what it was sent."""

    def __init__(self, answers: dict):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.answers, self.received = answers, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.received.append((self.command, self.path, dict(self.headers), body))
                status, payload, headers = fake.answers[(self.command, self.path.split("?")[0])]
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 (http.server's names)

            def log_message(self, *args):
                pass

        # threads: the health page asks every service at once
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def members_service():
    services = []

    def start(answers):
        services.append(_FakeService(answers))
        return services[-1]

    yield start
    for service in services:
        service.close()


def german_admin(members):
    """A test client signed in as admin on German pages, with every service answered by ``members``."""
    app = create_app(config(services={"members": members.url, "events": members.url, "matching": members.url,
                                      "notifications": members.url}))
    client = app.test_client()
    signed_in(app, client, "admin")
    with client.session_transaction() as session:
        session["language"] = "de"
    return client


def test_inviting_an_address_that_has_a_staff_account_says_so_in_german_at_the_email_field(members_service):
    members = members_service({
        ("GET", "/staff"): (200, {"items": []}, {}),
        ("POST", "/staff"): (409, {"error": "a staff account with this e-mail address exists already",
                                   "field": "email"}, {}),
    })
    client = german_admin(members)
    response = client.post("/admin/staff", data={
        "csrf_token": csrf(client, "/admin/staff"), "name": "Olga Organisatorin", "email": "olga@cluster.example",
        "role": "admin", "association": "", "language": "de"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "exists already" not in html
    at_the_field = re.search(r'<ul class="errors" id="email-error">(.*?)</ul>', html, re.S).group(1)
    assert "Es gibt bereits ein Mitarbeiterkonto mit dieser E-Mail-Adresse" in at_the_field


def test_one_refusal_helper_puts_a_conflict_at_its_field_the_field_errors_at_theirs_and_raises_the_rest(app):
    from verbund_portal import api
    from verbund_portal.forms import RegistrationForm, StaffInviteForm, refusal

    with app.test_request_context("/", method="POST", headers={"Accept-Language": "de"}):
        form = StaffInviteForm(meta={"csrf": False})
        taken = api.ApiError(409, "a staff account with this e-mail address exists already", {"email": ["taken"]})
        assert refusal(form, taken, "email", "Schon vergeben.") == []
        assert form.email.errors == ["Schon vergeben."] and not form.name.errors  # the text alone, at its field
        form = StaffInviteForm(meta={"csrf": False})
        left = refusal(form, api.ApiError(422, "validation failed", {"name": ["Longer than maximum length 200."],
                                                                      "nonsense": ["x"]}))
        assert form.name.errors == ["Höchstens 200 Zeichen."] and left == ["Bitte prüfen Sie diese Angabe."]
        form = RegistrationForm(meta={"csrf": False})  # no conflict field: a 409 reads like a 422
        problem = "the event has 1 seat(s) in all; a request can ask for at most that many"
        assert refusal(form, api.ApiError(409, problem, {"seats": [problem]})) == []
        assert len(form.seats.errors) == 1 and "insgesamt 1 Platz" in form.seats.errors[0]
        assert refusal(form, api.ApiError(409, "the event takes no registrations any more")) == [
            "Bitte prüfen Sie diese Angabe."]
        for status in (400, 403, 404, 429, 500):
            with pytest.raises(api.ApiError):
                refusal(StaffInviteForm(meta={"csrf": False}), api.ApiError(status, "no"), "email", "Schon vergeben.")


def test_a_taken_integrator_name_is_said_at_the_name_field_in_the_page_language(members_service):
    members = members_service({
        ("GET", "/integrators"): (200, {"items": []}, {}),
        ("POST", "/integrators"): (409, {"error": "an active integrator named crm-sync exists",
                                         "fields": {"name": ["exists"]}}, {}),
    })
    client = german_admin(members)
    response = client.post("/admin/integrators", data={
        "csrf_token": csrf(client, "/admin/integrators"), "name": "crm-sync", "events": ["event.*"]})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    at_the_field = re.search(r'<ul class="errors" id="name-error">(.*?)</ul>', html, re.S).group(1)
    assert "Eine Integration mit diesem Namen gibt es schon" in at_the_field
    assert "active integrator" not in html and "Bitte prüfen Sie diese Angabe" not in html


def test_a_staff_name_over_the_limit_is_refused_at_the_field_not_cut_by_the_browser(members_service):
    members = members_service({("GET", "/staff"): (200, {"items": []}, {})})
    app = create_app(config(services={"members": members.url, "events": members.url, "matching": members.url,
                                      "notifications": members.url}))
    client = app.test_client()
    signed_in(app, client, "admin")
    page = client.get("/admin/staff").get_data(as_text=True)
    assert "maxlength" not in page  # a browser would cut a pasted name there without a word
    response = client.post("/admin/staff", data={
        "csrf_token": csrf(client, "/admin/staff"), "name": "N" * 250, "email": "olga@cluster.example",
        "role": "admin", "association": "", "language": "de"})
    assert response.status_code == 422
    assert "At most 200 characters." in response.get_data(as_text=True)
    assert not [r for r in members.received if r[0] == "POST"]  # nothing sent, nothing cut


def test_the_agenda_of_an_unknown_event_is_not_found_not_forbidden(members_service):
    events = members_service({
        ("GET", "/members/m-1/registrations"): (200, {"items": []}, {}),
        ("GET", "/events/no-such-event"): (404, {"error": "no event no-such-event"}, {}),
    })
    app = create_app(config(services={"members": events.url, "events": events.url, "matching": events.url,
                                      "notifications": events.url, "meetings": events.url}))
    client = app.test_client()
    signed_in(app, client, "member")
    response = client.get("/events/no-such-event/agenda")
    assert response.status_code == 404
    assert "confirmed participants" not in response.get_data(as_text=True)


A, B, C = "0b9e7c7e-1111-4a4a-8b8b-000000000001", "0b9e7c7e-1111-4a4a-8b8b-000000000002", \
    "0b9e7c7e-1111-4a4a-8b8b-000000000003"


def _one_fake_for_all(members_service, answers):
    fake = members_service(answers)
    return fake, create_app(config(services={s: fake.url for s in ("members", "events", "matching", "notifications",
                                                                     "meetings")}))


def test_the_staff_grid_asks_for_the_names_it_lacks_in_one_call(members_service):
    slot = {"number": 0, "session": 0, "starts_at": "2027-03-15T09:00:00+00:00", "ends_at": "2027-03-15T09:30:00+00:00"}
    meeting = {"status": "accepted", "slot": 0, "table": 1, "locked": False, "unplaced_reason": None}
    fake, app = _one_fake_for_all(members_service, {
        ("GET", "/events/e-1/registrations"): (200, {"event": {"id": "e-1", "title": "Matchmaking-Tag",
                                                               "timezone": "Europe/Berlin"}, "items": []}, {}),
        ("GET", "/events/e-1/meetings/setup"): (200, {"event_id": "e-1", "published": "none", "tables": 2,
                                                      "slots": [slot], "sessions": [], "breaks": []}, {}),
        ("GET", "/events/e-1/meetings"): (200, {"event_id": "e-1", "published": "none", "items": [
            {**meeting, "id": "m-1", "requester_id": A, "recipient_id": B, "requester_name": None,
             "recipient_name": "Bekannt GmbH"},
            {**meeting, "id": "m-2", "requester_id": C, "recipient_id": A, "requester_name": None,
             "recipient_name": None, "table": 2}]}, {}),
        ("GET", "/events/e-1/meetings/conflicts"): (200, {"conflicts": [], "unscheduled": []}, {}),
        ("GET", "/members/cards"): (200, {"items": [{"id": A, "name": "Erste Guss GmbH", "sector": "automotive",
                                                     "state": "BW"}]}, {}),
    })
    client = app.test_client()
    signed_in(app, client, "admin")
    page = client.get("/organize/events/e-1/matchmaking/schedule")
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    html = page.get_data(as_text=True)
    assert "Erste Guss GmbH" in html and "Bekannt GmbH" in html and "(an organisation)" in html  # C: erased
    to_members = [path for method, path, *_ in fake.received if path.startswith("/members")]
    assert len(to_members) == 1 and to_members[0].startswith("/members/cards?ids=")
    from urllib.parse import parse_qs, urlsplit
    assert sorted(parse_qs(urlsplit(to_members[0]).query)["ids"][0].split(",")) == sorted([A, C])


@pytest.mark.parametrize(("language", "said"), [("de", "Bundesland: Baden-Württemberg"),
                                                ("en", "Federal state: Baden-Württemberg")])
def test_a_suggestion_card_names_the_partners_federal_state_even_without_a_region_reason(members_service, language,
                                                                                        said):
    reasons = [{"kind": "sme", "text": "Kleines oder mittleres Unternehmen"}]
    fake, app = _one_fake_for_all(members_service, {
        ("GET", "/members/m-1/suggestions"): (200, {"member_id": "m-1", "updated_at": None, "suggestions": [
            {"partner_id": A, "partner_name": "Guss Süd GmbH", "partner_sector": "automotive", "score": 0.5,
             "rank": 1, "parts": {}, "reasons": reasons},
            {"partner_id": B, "partner_name": "Gelöscht GmbH", "partner_sector": "it", "score": 0.4, "rank": 2,
             "parts": {}, "reasons": reasons}]}, {}),
        ("GET", "/contact-requests"): (200, {"items": []}, {}),
        ("GET", "/members/cards"): (200, {"items": [{"id": A, "name": "Guss Süd GmbH", "sector": "automotive",
                                                     "state": "BW"}]}, {}),
    })
    client = app.test_client()
    signed_in(app, client, "member")
    with client.session_transaction() as session:
        session["language"] = language
    html = client.get("/suggestions").get_data(as_text=True)
    states = re.findall(r'<span class="partner-state">(.*?)</span>', html)
    assert states == [said]  # the second partner left the platform meanwhile: its card says no state
    assert len([path for method, path, *_ in fake.received if path.startswith("/members/cards")]) == 1


def test_the_health_page_names_every_service_and_check_in_the_page_language(app):
    from verbund_portal.views.admin import _check_text, service_name

    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert service_name("meetings") == "Matchmaking-Termine"
        assert service_name("members") == "Mitglieder"
        semantic = _check_text("semantic", "ok")
        assert (semantic["name"], semantic["text"], semantic["ok"]) == ("Suche nach Bedeutung", "in Ordnung", True)
        assert _check_text("engine", "loading")["text"] == "startet"  # loading is not "not reachable"
        assert _check_text("broker", "error: refused")["text"] == "nicht erreichbar"
        assert _check_text("disk_space", "ok")["name"] == "disk_space"  # an unknown check as it comes
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert service_name("meetings") == "Matchmaking meetings"
        assert _check_text("semantic", "ok")["name"] == "Matching by meaning"


def test_shares_and_counts_are_written_as_the_page_language_writes_them(app):
    for language, share, count in (("de", "3,3\u00a0%", "1.250"), ("en", "3.3%", "1,250")):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            assert (i18n.percent(0.033), i18n.number(1250)) == (share, count)
            assert i18n.percent(None) in ("0\u00a0%", "0%")


def _event_post(**changes) -> dict:
    data = {"title": "Messe", "kind": "fair", "organizers": ["it-cluster"], "timezone": "Europe/Berlin",
            "starts_at": "2027-03-15T09:30", "ends_at": "2027-03-15T17:00", "capacity": "40",
            "venue_name": "Halle 3", "venue_city": "Chemnitz"}
    data.update(changes)
    return data


def test_the_event_form_shows_every_mistake_at_once_before_asking_the_service(app):
    from verbund_portal.forms import EventForm

    # a negative capacity, a vertical tab in the description, the end before the start: one round
    data = _event_post(capacity="-5", description="Ablauf:\x0bHalle 3", ends_at="2027-03-15T08:00")
    with app.test_request_context("/", method="POST", data=data, headers={"Accept-Language": "de"}):
        form = EventForm(meta={"csrf": False})
        assert not form.validate()
        assert set(form.errors) == {"capacity", "description", "ends_at"}, form.errors
        assert form.ends_at.errors == ["Das Ende muss nach dem Beginn liegen."]
        assert "unsichtbares" in form.description.errors[0]  # the plain words, not "U+000B"
    data = _event_post(venue_name="", registration_deadline="2027-03-16T09:00")
    with app.test_request_context("/", method="POST", data=data, headers={"Accept-Language": "en"}):
        form = EventForm(meta={"csrf": False})
        assert not form.validate()
        assert set(form.errors) == {"venue_name", "registration_deadline"}, form.errors


@pytest.mark.parametrize("value", ["2027-13-45T09:30", "2027-02-30T09:30", "2027-03-15T25:00", "morgen"])
def test_a_start_that_is_no_date_gets_an_error_at_the_start(app, value):
    from verbund_portal.forms import EventForm

    with app.test_request_context("/", method="POST", data=_event_post(starts_at=value),
                                  headers={"Accept-Language": "en"}):
        form = EventForm(meta={"csrf": False})
        assert not form.validate()
        assert form.errors == {"starts_at": ["Please enter a date and time, e.g. 2027-03-15T09:30."]}


def test_a_start_that_is_no_date_is_answered_with_the_form_not_a_500(app, client):
    signed_in(app, client, "organizer", "it-cluster")
    html = client.get("/organize/events/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    response = client.post("/organize/events/new", data={**_event_post(starts_at="2027-13-45T09:30"),
                                                           "csrf_token": token})
    assert response.status_code == 422  # the form again, and no service was asked (they are down here)
    page = response.get_data(as_text=True)
    assert re.search(r'id="starts_at"[^>]*aria-invalid="true"', page) or re.search(
        r'aria-invalid="true"[^>]*id="starts_at"', page)


def test_the_integrator_form_offers_every_event_family_of_the_catalogue_by_name(app):
    from verbund_portal.forms import IntegratorForm

    from verbund import catalogue

    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        choices = dict(IntegratorForm(meta={"csrf": False}).events.choices)
        assert choices["meeting.*"] == "Matchmaking-Termine (meeting.*)"
        assert {f"{family}.*" for family in catalogue.families()} | {"#"} == set(choices)
        assert all(label != pattern for pattern, label in choices.items())  # each family has a name


def test_a_match_by_meaning_says_how_well_in_words_not_as_a_percentage(app):
    from flask import render_template_string

    reason = {"kind": "need_met", "need": "Tourenplanung", "offer": "Routenoptimierung", "strength": 0.62,
              "fit": "well", "match": "semantic",
              "text": "Ihr Bedarf „Tourenplanung“ passt inhaltlich gut zu deren Angebot „Routenoptimierung“ "
                      "(Stärke 62 %)"}
    page = '{% from "_macros.html" import reason_text %}{{ reason_text(r) }}'
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        text = render_template_string(page, r=reason)
        assert text == "Ihr Bedarf „Tourenplanung“ passt inhaltlich gut zu deren Angebot „Routenoptimierung“"
        assert "%" not in text and "Stärke" not in text
        # the band is matching-service's (``fit``); the portal holds no copy of its thresholds
        assert "passt inhaltlich sehr gut zu" in render_template_string(page, r={**reason, "fit": "very_well"})
        # a link just above the threshold is a loose one, not a partial fit; so is "partly" of older suggestions
        for band in ("loosely", "partly", None):
            assert "passt inhaltlich nur entfernt zu" in render_template_string(page, r={**reason, "fit": band}), band
        assert "inhaltlich" not in render_template_string(page, r={**reason, "match": "vocabulary"})  # exact: no band
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert [html.unescape(render_template_string(page, r={**reason, "fit": band}))
                for band in ("very_well", "well", "loosely")] == [
            f"Your need “Tourenplanung” and their offer “Routenoptimierung”: {how} fit in substance"
            for how in ("a very close", "a good", "a loose")]
    for template in ("matchmaking/participant.html", "matchmaking/ask.html", "suggestions.html"):
        source = (Path(app.root_path) / "templates" / template).read_text()
        assert "<li>{{ reason_text(r) }}</li>" in source, template  # every card's reasons use the words


def test_a_match_through_a_related_term_or_a_shared_word_says_so_in_the_pages_language(app):
    from flask import render_template_string

    page = '{% from "_macros.html" import reason_text %}{{ reason_text(r) }}'
    related = {"kind": "offer_wanted", "need": "Tourenplanung", "offer": "live GPS tracking", "strength": 0.4,
               "match": "related", "via": "route-optimisation-software", "term": "fleet-telematics",
               "text": "Ihr Angebot „live GPS tracking“ ↔ deren Bedarf „Tourenplanung“ (verwandte Themen: "
                       "Tourenplanungssoftware und Flottentelematik)"}
    word = {"kind": "need_met", "need": "Express delivery", "offer": "delivery of spare parts", "strength": 0.36,
            "match": "word", "via": "delivery", "term": None,
            "text": "Your need 'Express delivery' ↔ their offer 'delivery of spare parts' (only the shared word "
                    "'delivery')"}
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert render_template_string(page, r=related) == (
            "Ihr Angebot „live GPS tracking“ – deren Bedarf „Tourenplanung“ "
            "(verwandte Themen: Tourenplanungssoftware und Flottentelematik)")
        assert render_template_string(page, r=word).endswith(" (nur das gemeinsame Wort „delivery“)")
        # suggestions stored before the reasons carried ``via`` still do not read as a direct match
        assert render_template_string(page, r={**related, "via": None}).endswith(" (ein verwandtes Thema)")
        assert render_template_string(page, r={**word, "via": None}).endswith(" (nur ein gemeinsames Wort)")
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert html.unescape(render_template_string(page, r=related)).endswith(
            " (related topics: Route planning and optimisation software and Fleet telematics)")
        assert html.unescape(render_template_string(page, r=word)).endswith(" (only the shared word “delivery”)")


def test_a_region_reason_is_worded_in_the_pages_language_with_the_state_named_in_it(app):
    from flask import render_template_string

    page = '{% from "_macros.html" import reason_text %}{{ reason_text(r) }}'
    neighbour = {"kind": "region", "text": "Benachbartes Bundesland (Sachsen)", "level": "neighbouring_state",
                 "state": "SN", "postcode_prefix": None}
    same_area = {"kind": "region", "text": "Gleiche Region (PLZ 01…, Sachsen)", "level": "same_postcode_area",
                 "state": "SN", "postcode_prefix": "01"}
    same_state = {"kind": "region", "text": "Same state (Bavaria)", "level": "same_state", "state": "BY"}
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert render_template_string(page, r=neighbour) == "Neighbouring federal state (Saxony)"
        assert render_template_string(page, r=same_area) == "Same region (postcode 01…, Saxony)"
        assert render_template_string(page, r=same_state) == "Same federal state (Bavaria)"
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert render_template_string(page, r=neighbour) == "Benachbartes Bundesland (Sachsen)"
        assert render_template_string(page, r=same_state) == "Gleiches Bundesland (Bayern)"
        # a reason from before the parts: the service's text, its old words as the mails put them
        assert render_template_string(page, r={"kind": "region", "text": "Nachbarland (Sachsen)"}) == \
            "Benachbartes Bundesland (Sachsen)"
        assert render_template_string(page, r={"kind": "region", "text": "Gleiche Gegend (Sachsen)"}) == \
            "Gleiche Gegend (Sachsen)"


def test_the_import_hint_names_the_consent_columns_that_default_to_no(app, client):
    signed_in(app, client, "organizer", "it-cluster")
    english = client.get("/organize/members/import").get_data(as_text=True)
    assert "Partnervorschläge/Partner suggestions" in english and "E-Mail-Einwilligung/Email consent" in english
    assert "an empty or missing cell means no" in english
    with client.session_transaction() as session:
        session["language"] = "de"
    german = client.get("/organize/members/import").get_data(as_text=True)
    assert '<html lang="de">' in german
    assert "Partnervorschläge und E-Mail-Einwilligung" in german and "heißt „nein“" in german
    # the names given are headers members-service reads (members/importer.py COLUMNS)
    from verbund import reference
    headers = pytest.importorskip("members.importer")._HEADER
    for header in ("Partnervorschläge", "Partner suggestions", "E-Mail-Einwilligung", "Email consent"):
        assert reference.name_key(header) in headers, header


def test_only_the_one_click_unsubscribe_post_goes_without_a_form_token(client):
    # RFC 8058: past the CSRF check to the service (down here: 503, not the 400 of an expired form)
    assert client.post("/unsubscribe/tok", data={"List-Unsubscribe": "One-Click"}).status_code == 503
    assert client.post("/unsubscribe/tok", data={"other": "1"}).status_code == 400
    assert client.post("/sign-in", data={"List-Unsubscribe": "One-Click"}).status_code == 400


def test_a_competency_reads_in_the_members_own_words_or_as_the_term_in_the_pages_language(app):
    from verbund_portal.i18n import competency_text

    typed = {"term": "high-pressure-die-casting", "label": "Druckguss"}  # a synonym the member typed
    chosen = {"term": "high-pressure-die-casting", "label": "Aluminium-Druckguss"}  # the term's German name
    for lang, name in (("de", "Aluminium-Druckguss"), ("en", "High-pressure die casting")):
        with app.test_request_context("/", headers={"Accept-Language": lang}):
            assert competency_text(typed) == "Druckguss"  # never replaced by the vocabulary's name
            assert competency_text(chosen) == name  # the term, in the page's language
            assert competency_text({"term": "high-pressure-die-casting"}) == name
            assert competency_text({"label": "Palettenortung in Echtzeit"}) == "Palettenortung in Echtzeit"


def test_every_kind_of_notification_the_service_knows_has_a_label_in_both_languages(app):
    from verbund_portal.forms import KIND_LABELS

    from notifications.domain import KINDS, POLICY

    known = set(POLICY) | set(KINDS.values())  # what /preferences can list
    assert known - set(KIND_LABELS) == set(), "a kind without a label would show as its raw id"
    for language in ("de", "en"):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            labels = [str(KIND_LABELS[kind]) for kind in known]
        assert not [label for label in labels if "_" in label], labels
        assert len(set(labels)) == len(labels), "two kinds read alike"
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert str(KIND_LABELS["meeting_survey"]) == "Umfrage, wie Ihre Gespräche verlaufen sind"


def _preferences_service(members_service, webhooks: list):
    notifications = {"channels": {"inbox": True, "email": True, "webhook": True}, "frequency": "weekly",
                     "kinds": {"contact_requested": "immediately", "meeting_requested": "immediately",
                               "meeting_survey": "immediately"}}
    return _one_fake_for_all(members_service, {
        ("GET", "/members/m-1/preferences"): (200, notifications, {}),
        ("PUT", "/members/m-1/preferences"): (200, notifications, {}),
        ("GET", "/members/m-1"): (200, {"id": "m-1", "consent": {"email": True},
                                        "contact": {"email": "tom@havel-it.example", "language": "de"}}, {}),
        ("PATCH", "/members/m-1"): (200, {"id": "m-1"}, {}),
        ("GET", "/webhooks"): (200, {"items": webhooks}, {}),
        ("GET", "/members/m-1/notifications"): (200, {"unread": 0, "items": []}, {}),
    })


def test_the_webhook_switch_shows_only_to_a_member_with_webhooks_and_saving_without_one_keeps_it(members_service):
    fake, app = _preferences_service(members_service, [])
    client = app.test_client()
    signed_in(app, client, "member")
    html = client.get("/preferences").get_data(as_text=True)
    assert 'name="webhook"' not in html and "add a webhook" in html
    labels = dict(re.findall(r'<label for="kind_(\w+)">([^<]*)</label>', html))
    assert labels["meeting_requested"] == "Someone asks you for a meeting at a matchmaking day"
    assert not [label for label in labels.values() if "_" in label], labels  # no raw id as a label
    response = client.post("/preferences", data={
        "csrf_token": csrf(client, "/preferences"), "email": "y", "frequency": "weekly", "language": "en",
        "kind_contact_requested": "immediately", "kind_meeting_requested": "immediately",
        "kind_meeting_survey": "immediately"})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    sent = [json.loads(body) for method, path, headers, body in fake.received
            if method == "PUT" and path == "/members/m-1/preferences"]
    assert sent[-1]["channels"]["webhook"] is True  # unchanged: a webhook added later gets the messages

    _fake, app = _preferences_service(members_service, [{"id": 1, "url": "https://crm.example/hook"}])
    client = app.test_client()
    signed_in(app, client, "member")
    html = client.get("/preferences").get_data(as_text=True)
    assert re.search(r'<input[^>]*checked[^>]*name="webhook"|<input[^>]*name="webhook"[^>]*checked', html)


@pytest.mark.parametrize("path, back", [("/inbox/1/read", "/inbox"), ("/sign-out", "/"), ("/language", "/"),
                                        ("/inbox/read", "/inbox"), ("/contacts/c-1/accept", "/contacts"),
                                        ("/projects/p-1/decline", "/projects"),
                                        ("/events/e-1/matchmaking/m-1/decline", "/events/e-1")])
def test_opening_a_button_address_directly_gives_a_page_in_the_portals_layout_and_language(client, path, back):
    response = client.get(path, headers={"Accept-Language": "de"})
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    html = response.get_data(as_text=True)
    assert "Method Not Allowed" not in html and '<html lang="de">' in html
    assert "Es wurde nichts geändert" in html and "Schaltfläche" in html
    assert f'href="{back}"' in html


def test_a_hung_service_costs_the_health_page_a_few_seconds_and_is_named(members_service):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from verbund_portal.views import admin

    release = threading.Event()

    class Hung(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            release.wait(30)

        def log_message(self, *args):
            pass

    hung = ThreadingHTTPServer(("127.0.0.1", 0), Hung)
    threading.Thread(target=hung.serve_forever, daemon=True).start()
    ready = {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}
    fake = members_service({("GET", "/ready"): (200, ready, {}),
                            ("GET", "/failures"): (200, {"items": [], "total": 0}, {})})
    fake.answers[("GET", "/metrics")] = (200, {}, {})
    urls = {service: fake.url for service in ("members", "events", "matching", "notifications", "meetings")}
    urls["matching"] = f"http://127.0.0.1:{hung.server_port}"
    app = create_app(config(services=urls, service_timeout_seconds=10.0))
    client = app.test_client()
    signed_in(app, client, "admin")
    try:
        started = time.monotonic()
        response = client.get("/admin/health")
        took = time.monotonic() - started
    finally:
        release.set()
        hung.shutdown()
        hung.server_close()
    assert response.status_code == 200
    assert took < admin.HEALTH_TIMEOUT_SECONDS + 2, took  # not 2 × 10 s one after the other
    rows = dict(re.findall(r'<th scope="row">([^<]+?) <span class="meta">.*?</th>\s*<td>(.*?)</td>',
                           response.get_data(as_text=True), re.S))
    assert "Not answering" in rows["Partner suggestions"]
    assert "Ready" in rows["Members"] and "Ready" in rows["Matchmaking meetings"]


@pytest.mark.parametrize("language, typed, whole", [
    ("de", "1.200", 1200), ("de", "1 200", 1200), ("de", "1\u00a0200", 1200), ("de", "1,200", 1200),
    ("de", "1200", 1200), ("de", "0", 0), ("en", "1,200", 1200), ("en", "1200", 1200),
    ("de", "1.2", None), ("de", "1,5", None), ("en", "1.5", None), ("en", "zwölf", None), ("de", "1.2.3", None),
])
def test_the_number_of_employees_reads_as_the_pages_language_writes_it(app, language, typed, whole):
    with app.test_request_context("/sign-up", method="POST", data={"employees": typed},
                                  headers={"Accept-Language": language}):
        form = ProfileForm(meta={"csrf": False})
        form.employees.validate(form)
        assert form.employees.data == whole, form.employees.errors
        if whole is None:
            error = " ".join(form.employees.errors)
            assert ("ganze Zahl" if language == "de" else "whole number") in error, error
            assert "1.200" in error if language == "de" else "1,200" in error
        else:
            assert not form.employees.errors


@pytest.mark.parametrize("language, typed, places", [
    ("de", "1.000", 1000), ("de", "1 000", 1000), ("de", "1000", 1000), ("en", "1,000", 1000), ("en", "40", 40),
    ("de", "1,5", None), ("en", "1.5", None), ("de", "vierzig", None),
])
def test_the_events_places_read_as_the_pages_language_writes_them_with_one_message_when_not(app, language, typed,
                                                                                              places):
    """A trade fair's "1.000" places on a German page are a thousand, as the form's own range message writes
    them ("von 1 bis 100.000"); what is no whole number is said once at the field, not twice."""
    from verbund_portal.forms import EventForm

    with app.test_request_context("/organize/events/new", method="POST", data={"capacity": typed},
                                  headers={"Accept-Language": language}):
        form = EventForm(meta={"csrf": False})
        form.capacity.validate(form)
        assert form.capacity.data == places, form.capacity.errors
        if places is None:
            assert form.capacity.errors == ["Bitte geben Sie eine Zahl von 1 bis 100.000 ein." if language == "de"
                                            else "Please enter a number from 1 to 100,000."]
        else:
            assert not form.capacity.errors


@pytest.mark.parametrize(("offers", "advice"), [
    ([], "Add what you offer and what you are looking for to your profile"),
    ([{"label": "Lagerfläche für Paletten"}], "No organisation fits your profile closely enough yet"),
])
def test_no_suggestions_gives_advice_that_fits_the_profile(members_service, offers, advice):
    fake, app = _one_fake_for_all(members_service, {
        ("GET", "/members/m-1/suggestions"): (200, {"member_id": "m-1", "updated_at": None, "suggestions": []}, {}),
        ("GET", "/members/m-1"): (200, {"id": "m-1", "offers": offers, "needs": []}, {}),
        ("GET", "/contact-requests"): (200, {"items": []}, {}),
        ("GET", "/members/cards"): (200, {"items": []}, {}),
    })
    client = app.test_client()
    signed_in(app, client, "member")
    with client.session_transaction() as session:
        session["language"] = "en"
    html = client.get("/suggestions").get_data(as_text=True)
    assert advice in html
    other = ("No organisation fits" if offers == [] else "Add what you offer and what you are looking for")
    assert other not in html  # one piece of advice, the one that fits


@pytest.mark.parametrize(("ticked", "said"), [
    ([], "with no time ticked nobody can meet you"),
    (["0"], "Your times are saved."),
])
def test_saving_ones_times_with_none_ticked_warns_that_nobody_can_meet_one(members_service, ticked, said):
    slot = {"number": 0, "session": 0, "starts_at": "2027-03-15T09:00:00+00:00", "ends_at": "2027-03-15T09:30:00+00:00"}
    fake, app = _one_fake_for_all(members_service, {
        ("GET", "/events/e-1/meetings/setup"): (200, {"event_id": "e-1", "published": "none", "tables": 2,
                                                      "mode": "tables", "slots": [slot, {**slot, "number": 1}],
                                                      "sessions": [], "breaks": []}, {}),
        ("PUT", "/events/e-1/meetings/participation"): (200, {"available": []}, {}),
    })
    client = app.test_client()
    signed_in(app, client, "member")
    with client.session_transaction() as session:
        session["language"] = "en"
    token = csrf(client, "/accessibility")  # the language switch in the layout carries the token
    client.post("/events/e-1/matchmaking/participation",
                data={"csrf_token": token, "save": "1", "slots": ticked})
    with client.session_transaction() as session:
        flashed = " ".join(message for _, message in session.get("_flashes", []))
    assert said in flashed
    sent = [json.loads(body) for method, path, headers, body in fake.received if method == "PUT"]
    assert sent and sent[-1]["available"] == [int(n) for n in ticked]


EVENT = {"id": "e-1", "title": "Leichtbau-Forum", "kind": "workshop", "timezone": "Europe/Berlin",
         "status": "scheduled",
         "starts_at": "2027-03-03T08:30:00Z", "ends_at": "2027-03-03T11:00:00Z", "organizers": ["it-cluster"],
         "capacity": 10, "seats_free": 0}
DESTRUCTIVE = {
    # address: (role, the service call it makes, what its confirmation page names (en, de), the page it came from)
    "/events/e-1/cancel": ("member", ("DELETE", "/events/e-1/registrations/r-1"),
                           ("Cancel your registration?", "Leichtbau-Forum", "Wed, 3 March 2027",
                            "Your 2 places become free for others."),
                           ("Ihre Anmeldung stornieren?", "Mi., 3. März 2027", "Ihre 2 Plätze werden für andere frei."),
                           "/events/e-1"),
    "/organize/events/e-1/registrations/r-1/cancel": (
        "organizer", ("DELETE", "/events/e-1/registrations/r-1"),
        ("Cancel the registration of Vogtland Teile GmbH?",
         "The 2 booked places become free, and the first on the waitlist moves up."),
        ("Anmeldung von Vogtland Teile GmbH stornieren?",
         "Die 2 gebuchten Plätze werden frei, und die erste Anmeldung der Warteliste rückt nach."),
        "/organize/events/e-1"),
    "/admin/staff/s-2/revoke": ("admin", ("POST", "/staff/s-2/revoke"),
                                ("Revoke the access of Otto Lenz?", "otto@it-cluster.example"),
                                ("Zugang von Otto Lenz sperren?", "nicht rückgängig"), "/admin/staff"),
    "/admin/integrators/crm-sync/revoke": ("admin", ("POST", "/integrators/crm-sync/revoke"),
                                           ("Revoke the integrator crm-sync?", "queues"),
                                           ("Integration crm-sync sperren?", "Warteschlangen"), "/admin/integrators"),
    "/webhooks/7/delete": ("member", ("DELETE", "/webhooks/7"),
                           ("Remove this webhook?", "https://crm.example/hook"),
                           ("Diesen Webhook entfernen?", "https://crm.example/hook"), "/webhooks"),
    "/events/e-1/matchmaking/leave": ("member", ("DELETE", "/events/e-1/meetings/participation"),
                                      ("Stop taking part in the matchmaking?", "Leichtbau-Forum"),
                                      ("Nicht mehr am Matchmaking teilnehmen?", "Leichtbau-Forum"),
                                      "/events/e-1/matchmaking"),
    "/events/e-1/matchmaking/mt-1/cancel": ("member", ("POST", "/events/e-1/meetings/mt-1/cancel"),
                                            ("Cancel the meeting with Saale Code GmbH?", "Mon, 15 March 2027"),
                                            ("Gespräch mit Saale Code GmbH absagen?", "Mo., 15. März 2027"),
                                            "/events/e-1/matchmaking#requests"),
}


def _destructive_services(members_service):
    registration = {"id": "r-1", "event_id": "e-1", "status": "confirmed", "seats": 2,
                    "member_name": "Vogtland Teile GmbH"}
    waiting = {"id": "r-2", "event_id": "e-1", "status": "waitlisted", "seats": 1, "member_name": "Erzgebirge Guss"}
    return _one_fake_for_all(members_service, {
        ("GET", "/members/m-1/registrations"): (200, {"items": [registration]}, {}),
        ("GET", "/events/e-1"): (200, EVENT, {}),
        ("GET", "/events/e-1/registrations"): (200, {"event": EVENT, "items": [registration, waiting]}, {}),
        ("DELETE", "/events/e-1/registrations/r-1"): (200, {}, {}),
        ("GET", "/staff"): (200, {"items": [{"id": "s-2", "name": "Otto Lenz", "email": "otto@it-cluster.example",
                                             "role": "organizer", "association": "it-cluster",
                                             "status": "active"}]}, {}),
        ("POST", "/staff/s-2/revoke"): (200, {}, {}),
        ("GET", "/integrators"): (200, {"items": [{"name": "crm-sync", "events": ["event.*"], "personal": False,
                                                   "granted_at": "2026-11-01T10:00:00Z", "revoked_at": None}]}, {}),
        ("POST", "/integrators/crm-sync/revoke"): (200, {}, {}),
        ("GET", "/webhooks"): (200, {"items": [{"id": 7, "url": "https://crm.example/hook", "enabled": True}]}, {}),
        ("DELETE", "/webhooks/7"): (200, {}, {}),
        ("DELETE", "/events/e-1/meetings/participation"): (200, {}, {}),
        ("GET", "/events/e-1/members/m-1/meetings"): (200, {"participant": {"status": "active"}, "items": [
            {"id": "mt-1", "status": "accepted", "other_id": A, "other_name": "Saale Code GmbH", "slot": 0}]}, {}),
        ("GET", "/events/e-1/meetings/setup"): (200, {"event_id": "e-1", "slots": [
            {"number": 0, "session": 0, "starts_at": "2027-03-15T09:00:00+00:00",
             "ends_at": "2027-03-15T09:30:00+00:00", "starts_local": "2027-03-15T10:00:00+01:00"}]}, {}),
        ("POST", "/events/e-1/meetings/mt-1/cancel"): (200, {}, {}),
        ("GET", "/members/m-1/notifications"): (200, {"unread": 0, "items": []}, {}),
    })


@pytest.mark.parametrize("address", list(DESTRUCTIVE))
def test_a_destructive_button_asks_first_on_a_page_of_its_own_and_a_post_without_that_acts_not(members_service,
                                                                                                address):
    role, call, english, german, back = DESTRUCTIVE[address]
    fake, app = _destructive_services(members_service)
    client = app.test_client()
    signed_in(app, client, role, "it-cluster" if role == "organizer" else None)
    for language, said in (("en", english), ("de", german)):
        with client.session_transaction() as session:
            session["language"] = language
        page = client.get(address)
        assert page.status_code == 200, page.get_data(as_text=True)[:500]
        html = page.get_data(as_text=True)
        assert f"<h1>{html_escape(said[0])}</h1>" in html
        for words in said[1:]:
            assert html_escape(words) in html, (words, html)
        form = re.search(r'<form method="post" action="([^"]+)"[^>]*class="confirm">(.*?)</form>', html, re.S)
        assert form.group(1) == address and 'name="confirmed" value="yes"' in form.group(2)
        assert f'href="{back}"' in form.group(2)  # the way back, beside the button
    # a POST without the confirmation page's field (an old page's button, a crafted form) asks first
    token = csrf(client, address)
    answer = client.post(address, data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["Location"] == address
    assert call not in [(m, p) for m, p, _h, _b in fake.received]
    answer = client.post(address, data={"csrf_token": token, "confirmed": "yes"})
    assert answer.status_code == 302 and answer.headers["Location"] == back
    assert call in [(m, p) for m, p, _h, _b in fake.received]


def html_escape(text: str) -> str:
    return html.escape(text, quote=True)


def _event_form_client(members_service, stored: dict | None = None):
    answers = {("POST", "/events"): (201, {"id": "e-9"}, {}), ("PATCH", "/events/e-1"): (200, {"id": "e-1"}, {}),
               ("GET", "/members/m-1/notifications"): (200, {"unread": 0, "items": []}, {})}
    if stored:
        answers[("GET", "/events/e-1/registrations")] = (200, {"event": stored, "items": []}, {})
    fake, app = _one_fake_for_all(members_service, answers)
    client = app.test_client()
    signed_in(app, client, "organizer", "it-cluster")
    with client.session_transaction() as session:
        session["language"] = "de"
    return fake, client


def _field_errors(html: str) -> dict[str, str]:
    return {name: re.sub(r"<[^>]+>", " ", text).strip()
            for name, text in re.findall(r'<ul class="errors" id="([a-z_]+)-error">(.*?)</ul>', html, re.S)}


def test_the_event_form_shows_the_services_verdicts_at_once_with_its_own_not_a_round_later(members_service):
    """What events-service would refuse (a start in the past, more than 31 days, a year out of range, a time
    the clocks skip, a web address it does not take) is said at the fields in the same answer as the form's
    own mistakes (no title), not after they are fixed and the form is sent again."""
    fake, client = _event_form_client(members_service)
    form = {"csrf_token": csrf(client, "/organize/events/new"), "title": "", "kind": "workshop",
            "organizers": ["it-cluster"], "timezone": "Europe/Berlin", "starts_at": "2020-04-15T09:00",
            "ends_at": "2020-06-15T17:00", "registration_deadline": "2020-03-29T02:30", "venue_name": "Halle 3",
            "online_url": "https://meet", "capacity": "10"}
    response = client.post("/organize/events/new", data=form)
    assert response.status_code == 422
    errors = _field_errors(response.get_data(as_text=True))
    assert errors["title"] == "Bitte geben Sie einen Titel ein."
    assert "Bitte wählen Sie einen Zeitpunkt in der Zukunft." in errors["starts_at"]
    assert "höchstens 31 Tage" in errors["ends_at"]
    assert "Uhr vorgestellt" in errors["registration_deadline"]  # 2:30 on the night summer time begins
    assert "keine gültige Internetadresse" in errors["online_url"]
    response = client.post("/organize/events/new", data={**form, "starts_at": "0999-03-15T09:00"})
    assert "zwischen den Jahren 1970 und 2999" in _field_errors(response.get_data(as_text=True))["starts_at"]
    assert not [r for r in fake.received if r[0] == "POST"]  # nothing sent while anything is wrong
    # All put right: sent, once.
    ok = {**form, "title": "Leichtbau-Forum", "starts_at": "2099-03-15T09:00", "ends_at": "2099-03-15T17:00",
          "registration_deadline": "", "online_url": "https://meet.example/leichtbau"}
    assert client.post("/organize/events/new", data=ok).status_code == 302
    assert len([r for r in fake.received if r[0] == "POST"]) == 1


def test_editing_an_event_checks_only_the_times_that_move_and_the_places_already_taken(members_service):
    stored = {**EVENT, "starts_at": "2020-03-03T08:30:00Z", "ends_at": "2020-03-03T11:00:00Z",
              "venue": {"name": "Halle 3", "address": None, "city": "Chemnitz"}, "online_url": None,
              "registration_deadline": "2020-03-01T08:30:00Z", "seats_confirmed": 6, "capacity": 10}
    fake, client = _event_form_client(members_service, stored)
    page = client.get("/organize/events/e-1/edit").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "title": "Leichtbau-Forum", "kind": "workshop", "organizers": ["it-cluster"],
            "timezone": "Europe/Berlin", "starts_at": "2020-03-03T09:30", "ends_at": "2020-03-03T12:00",
            "registration_deadline": "2020-03-01T09:30", "venue_name": "Halle 3", "venue_city": "Zwickau",
            "capacity": "5"}
    response = client.post("/organize/events/e-1/edit", data=form)
    assert response.status_code == 422
    errors = _field_errors(response.get_data(as_text=True))
    assert list(errors) == ["capacity"]  # the old times stay as they were: no "in the future" for them
    assert "6 Plätze sind bereits bestätigt" in errors["capacity"]
    response = client.post("/organize/events/e-1/edit", data={**form, "capacity": "6",
                                                              "starts_at": "2020-03-03T10:30"})
    assert list(_field_errors(response.get_data(as_text=True))) == ["starts_at"]  # a moved start must lie ahead
    assert not [r for r in fake.received if r[0] == "PATCH"]


def test_the_time_zone_select_offers_the_common_zones_first_readable_and_takes_every_iana_id(members_service):
    """Not ~600 raw ids in one list: the common zones first, then the others by region, each named in the
    page's language with its IANA id; any zone of the tz database stays valid (an old name from the API
    too, shown as the event has it), and a name that is none is refused at the field."""
    import zoneinfo

    fake, client = _event_form_client(members_service)
    html = client.get("/organize/events/new").get_data(as_text=True)
    select = re.search(r'<select[^>]*id="timezone"[^>]*>(.*?)</select>', html, re.S).group(1)
    groups = re.findall(r'<optgroup label="([^"]+)">', select)
    assert groups[:3] == ["Häufig gewählt", "Europa", "Amerika"] and "Indischer Ozean" in groups
    options = re.findall(r'<option[^>]*value="([^"]+)"[^>]*>([^<]+)</option>', select)
    assert options[0] == ("Europe/Berlin", "Berlin, Deutschland (Europe/Berlin)")
    assert re.search(r'<option selected value="Europe/Berlin"|<option value="Europe/Berlin" selected', select)
    assert ("Asia/Tokyo", "Tokio, Japan (Asia/Tokyo)") in options
    assert not [label for value, label in options if "_" in label.replace(f"({value})", "")]  # no raw ids
    values = [value for value, _label in options]
    assert len(values) == len(set(values))  # each zone once
    from babel.core import get_global

    left_out = {z for z in zoneinfo.available_timezones() if z.startswith(("Europe/", "America/", "Asia/"))} - set(
        values)
    assert left_out and left_out <= set(get_global("zone_aliases"))  # only old names of listed zones
    base = {"csrf_token": csrf(client, "/organize/events/new"), "title": "Messe", "kind": "fair",
            "organizers": ["it-cluster"], "starts_at": "2099-03-15T09:30", "ends_at": "2099-03-15T17:00",
            "venue_name": "Halle 3", "capacity": "40"}
    for zone in ("Asia/Calcutta", "Etc/GMT-3", "America/Argentina/Buenos_Aires"):  # listed or not: valid
        assert client.post("/organize/events/new", data={**base, "timezone": zone}).status_code == 302, zone
    sent = [json.loads(body)["timezone"] for method, path, _h, body in fake.received if method == "POST"]
    assert sent == ["Asia/Calcutta", "Etc/GMT-3", "America/Argentina/Buenos_Aires"]
    refused = client.post("/organize/events/new", data={**base, "timezone": "Mars/Olympus_Mons"})
    assert refused.status_code == 422
    assert "Bitte wählen Sie eine Zeitzone aus der Liste." in _field_errors(refused.get_data(as_text=True))["timezone"]
    with client.session_transaction() as session:
        session["language"] = "en"
    english = client.get("/organize/events/new").get_data(as_text=True)
    assert '<optgroup label="Frequently used">' in english and "Tokyo, Japan (Asia/Tokyo)" in english


def test_a_cancellation_reason_the_service_would_refuse_is_said_at_its_field_not_as_an_error_page(members_service):
    """An organizer's reason with a hidden control character (pasted from a mail, U+202E) is refused at the
    reason's field in the page's language, the event left as it is; a reason events-service refuses all
    the same (422) comes back to the same form with the service's word at the field, not as a failure page."""
    answers = {("GET", "/events/e-1/registrations"): (200, {"event": EVENT, "items": []}, {}),
               ("POST", "/events/e-1/cancel"): (422, {"error": "validation failed", "fields": {
                   "reason": ["Longer than maximum length 2000."]}}, {})}
    fake, app = _one_fake_for_all(members_service, answers)
    client = app.test_client()
    signed_in(app, client, "organizer", "it-cluster")
    with client.session_transaction() as session:
        session["language"] = "de"
    token = csrf(client, "/organize/events/e-1/cancel")
    response = client.post("/organize/events/e-1/cancel", data={"csrf_token": token,
                                                                "reason": "Referent krank \u202eevil"})
    assert response.status_code == 422
    assert "unsichtbares oder besonderes Zeichen" in _field_errors(response.get_data(as_text=True))["reason"]
    assert not [r for r in fake.received if r[0] == "POST"]
    response = client.post("/organize/events/e-1/cancel", data={"csrf_token": token, "reason": "Referent krank"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _field_errors(html)["reason"] == "Höchstens 2000 Zeichen." and "Referent krank" in html
    assert "hat nicht geklappt" not in html


def test_the_question_before_cancelling_one_seat_speaks_of_one_place_and_whose(members_service):
    """One seat is "your place" to the member and "the booked place" to an organizer, whose own places these
    are not (the German "Ihre Plätze" read as the organizer's own)."""
    registration = {"id": "r-1", "event_id": "e-1", "status": "confirmed", "seats": 1, "member_name": "Vogtland Teile"}
    for role, address, words in (
            ("member", "/events/e-1/cancel", {"en": "Your place becomes free for others.",
                                              "de": "Ihr Platz wird für andere frei."}),
            ("organizer", "/organize/events/e-1/registrations/r-1/cancel", {
                "en": "The booked place becomes free.", "de": "Der gebuchte Platz wird frei."})):
        fake, app = _one_fake_for_all(members_service, {
            ("GET", "/members/m-1/registrations"): (200, {"items": [registration]}, {}),
            ("GET", "/events/e-1"): (200, EVENT, {}),
            ("GET", "/events/e-1/registrations"): (200, {"event": EVENT, "items": [registration]}, {}),
            ("GET", "/members/m-1/notifications"): (200, {"unread": 0, "items": []}, {})})
        client = app.test_client()
        signed_in(app, client, role, "it-cluster" if role == "organizer" else None)
        for language, said in words.items():
            with client.session_transaction() as session:
                session["language"] = language
            html = client.get(address).get_data(as_text=True)
            assert html_escape(said) in html, html
            assert "Ihre Plätze" not in html and "places" not in html


@pytest.mark.parametrize(("reason", "english", "german"), [
    ("opted_out", "One of you stopped taking part in the matchmaking.",
     "Einer von Ihnen nimmt nicht mehr am Matchmaking teil."),
    ("registration_cancelled", "A registration for the event was cancelled.",
     "Eine Anmeldung zur Veranstaltung wurde storniert."),
    ("Messe fällt für uns aus", "Messe fällt für uns aus", "Messe fällt für uns aus"),
])
def test_a_request_the_service_ended_itself_gives_its_reason_in_words_not_as_a_code(members_service, reason,
                                                                                     english, german):
    """When the other side stops taking part, meetings-service cancels the request with the reason
    ``opted_out``: the member reads why in plain words, not the code; a reason a person typed stays as typed."""
    setup = {"event_id": "e-1", "scheduling_mode": "participants", "request_mode": "open", "slots": [
        {"number": 0, "session": 0, "starts_at": "2027-03-15T09:00:00+00:00", "ends_at": "2027-03-15T09:30:00+00:00",
         "starts_local": "2027-03-15T10:00:00+01:00"}]}
    meeting = {"id": "mt-1", "status": "cancelled", "role": "recipient", "other_id": A, "other_name": "Saale Code GmbH",
               "slot": None, "table": None, "locked": False, "message": "Hallo", "reason": reason,
               "expires_at": "2027-03-10T09:00:00Z"}
    fake, app = _one_fake_for_all(members_service, {
        ("GET", "/events/e-1"): (200, EVENT, {}),
        ("GET", "/events/e-1/meetings/setup"): (200, setup, {}),
        ("GET", "/members/m-1/registrations"): (200, {"items": [
            {"id": "r-1", "event_id": "e-1", "status": "confirmed", "seats": 1}]}, {}),
        ("GET", "/events/e-1/members/m-1/meetings"): (200, {"participant": {"status": "inactive"},
                                                            "items": [meeting]}, {}),
        ("GET", "/members/cards"): (200, {"items": []}, {}),
        ("GET", "/members/m-1/notifications"): (200, {"unread": 0, "items": []}, {})})
    client = app.test_client()
    signed_in(app, client, "member")
    for language, said in (("en", english), ("de", german)):
        with client.session_transaction() as session:
            session["language"] = language
        page = client.get("/events/e-1/matchmaking")
        html = page.get_data(as_text=True)
        assert page.status_code == 200, html[:800]
        assert html_escape(said) in html and (reason == said or reason not in html), html


def test_the_dashboard_csv_keeps_an_event_title_that_looks_like_a_formula_as_text(members_service):
    """An event titled "=HYPERLINK(…)" or "-Leichtbau-" reaches the spreadsheet as text (a leading
    apostrophe, OWASP CSV injection), as in events-service's attendee export; the figures stay numbers."""
    import csv
    import io

    stats = {"total": 3, "sme": 2, "by_sector": {"it": 3}, "by_state": {"SN": 3}, "by_size": {"small": 3},
             "growth": [{"month": "2026-12", "joined": 3, "total": 3}]}
    events = [{**EVENT, "title": '=HYPERLINK("https://evil.example","Klick")', "seats_confirmed": 4, "waitlisted": 0},
              {**EVENT, "id": "e-2", "title": "-Leichtbau-", "seats_confirmed": 2, "waitlisted": 1}]
    fake, app = _one_fake_for_all(members_service, {
        ("GET", "/stats/members"): (200, stats, {}),
        ("GET", "/stats/contacts"): (200, {"sent": 1, "accepted": 1, "declined": 0, "pending": 0, "expired": 0}, {}),
        ("GET", "/events"): (200, {"items": events}, {}),
        ("GET", "/stats/matching"): (200, {"suggestions": {"total": 0, "members": 0}, "proposals": {
            "total": 0, "proposed": 0, "formed": 0, "closed": 0, "closed_by_reason": {}}}, {})})
    client = app.test_client()
    signed_in(app, client, "admin")
    with client.session_transaction() as session:
        session["language"] = "en"
    answer = client.get("/organize/dashboard.csv")
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    titles = {row[1] for row in rows if row[0] == "Events: places booked"}
    assert titles == {'\'=HYPERLINK("https://evil.example","Klick")', "'-Leichtbau-"}
    assert ["Events: places booked", "'-Leichtbau-", "2"] in rows and ["Members", "total", "3"] in rows


@pytest.mark.parametrize(("asked", "sent"), [("99999999999999999999", 100_000), ("-3", 1), ("zwei", 1), ("2", 2)])
def test_a_list_page_number_out_of_range_asks_the_service_for_a_page_it_takes(members_service, asked, sent):
    """An edited address (``/inbox?page=99999999999999999999``) shows an empty last page, not "that did not
    work": the portal asks for a page between 1 and the services' ``MAX_PAGE``."""
    fake, app = _one_fake_for_all(members_service, {
        ("GET", "/members/m-1/notifications"): (200, {"unread": 0, "items": [], "page": 1, "per_page": 20,
                                                      "total": 0}, {})})
    client = app.test_client()
    signed_in(app, client, "member")
    answer = client.get(f"/inbox?page={asked}")
    assert answer.status_code == 200
    pages = {re.search(r"[?&]page=(\d+)", path).group(1) for method, path, _h, _b in fake.received
             if method == "GET" and "per_page=20" in path}
    assert pages == {str(sent)}


def test_a_new_events_form_sent_twice_schedules_the_event_once(members_service):
    """A double click or a resent form (the same form token) leads to the event the first submission created,
    without a second ``POST /events`` (members would hear of the event twice); a new form schedules anew."""
    fake, client = _event_form_client(members_service)
    page = client.get("/organize/events/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    once = re.search(r'<input id="once" name="once" type="hidden" value="([^"]+)">', page).group(1)
    form = {"csrf_token": token, "once": once, "title": "Leichtbau-Forum", "kind": "workshop",
            "organizers": ["it-cluster"], "timezone": "Europe/Berlin", "starts_at": "2099-03-15T09:00",
            "ends_at": "2099-03-15T17:00", "venue_name": "Halle 3", "capacity": "10"}
    first, second = client.post("/organize/events/new", data=form), client.post("/organize/events/new", data=form)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"] == "/organize/events/e-9"
    assert len([r for r in fake.received if r[:2] == ("POST", "/events")]) == 1
    again = re.search(r'name="once" type="hidden" value="([^"]+)"',
                      client.get("/organize/events/new").get_data(as_text=True)).group(1)
    assert again != once
    client.post("/organize/events/new", data={**form, "once": again})
    assert len([r for r in fake.received if r[:2] == ("POST", "/events")]) == 2


def _organizer_event_page(event: dict) -> dict:
    """The services' answers behind /organize/events/e-1: the event, no registrations, no matchmaking set-up,
    no other events to move registrations to."""
    return {("GET", "/events/e-1/registrations"): (200, {"event": event, "items": []}, {}),
            ("GET", "/events/e-1/meetings/setup"): (404, {"error": "no set-up"}, {}),
            ("GET", "/events"): (200, {"items": [], "total": 0}, {})}


@pytest.mark.parametrize("online_url, linked", [
    ("https://meet.example/leichtbau?pwd=a&b=1", True),
    ("http://meet.example/raum", True),
    ("javascript:alert(document.cookie)", False),
    (" JavaScript:alert(1)", False),
    ("data:text/html,<script>alert(1)</script>", False),
    ("https:///no-host", False),
])
def test_the_organizer_sees_the_online_address_as_a_link_only_when_it_is_http_or_https(
        members_service, online_url, linked):
    """An online or hybrid event's address on the organizer's event page, in both languages: a link for an
    http(s) address, plain (escaped) text for anything else, so a hostile address never becomes an href."""
    event = {**EVENT, "venue": {"name": "Haus der Wirtschaft", "city": "Chemnitz"}, "online_url": online_url}
    fake, app = _one_fake_for_all(members_service, _organizer_event_page(event))
    client = app.test_client()
    signed_in(app, client, "organizer", "it-cluster")
    for language, label in (("en", "Online address"), ("de", "Online-Adresse")):
        with client.session_transaction() as session:
            session["language"] = language
        page = client.get("/organize/events/e-1")
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        dd = re.search(r'<dt>([^<]*)</dt><dd id="online-url">(.*?)</dd>', text)
        assert dd and dd.group(1) == label
        links = re.findall(r'<a href="([^"]*)"', dd.group(2))
        if linked:
            assert [html.unescape(href) for href in links] == [online_url]
        else:
            assert links == [] and html.escape(online_url, quote=False) in dd.group(2)
        assert "<script>" not in dd.group(2)


def test_an_event_without_an_online_address_shows_none_to_its_organizer(members_service):
    fake, app = _one_fake_for_all(members_service, _organizer_event_page({**EVENT, "online_url": None}))
    client = app.test_client()
    signed_in(app, client, "organizer", "it-cluster")
    page = client.get("/organize/events/e-1")
    assert page.status_code == 200 and 'id="online-url"' not in page.get_data(as_text=True)


@pytest.mark.parametrize("online_url, linked", [("https://meet.example/leichtbau?pwd=a&b=1", True),
                                                ("javascript:alert(document.cookie)", False)])
def test_a_member_sees_the_online_address_as_a_link_only_when_it_is_http_or_https(members_service, online_url,
                                                                                  linked):
    """The member's event page links a webinar's address the way the organizer's page does: an href only
    for http(s), escaped text otherwise."""
    fake, app = _one_fake_for_all(members_service, {
        ("GET", "/events/e-1"): (200, {**EVENT, "online_url": online_url}, {}),
        ("GET", "/events/e-1/meetings/setup"): (404, {"error": "no set-up"}, {}),
        ("GET", "/members/m-1/registrations"): (200, {"items": []}, {}),
        ("GET", "/members/m-1/notifications"): (200, {"unread": 0, "items": []}, {})})
    client = app.test_client()
    signed_in(app, client, "member")
    page = client.get("/events/e-1")
    assert page.status_code == 200
    dd = re.search(r'<dd id="online-url">(.*?)</dd>', page.get_data(as_text=True))
    links = re.findall(r'<a href="([^"]*)"', dd.group(1))
    if linked:
        assert [html.unescape(href) for href in links] == [online_url]
    else:
        assert links == [] and html.escape(online_url, quote=False) in dd.group(1)


def test_an_offer_or_need_of_emoji_or_punctuation_only_is_refused_on_the_form(app):
    """The profile form refuses it at its input, in the page's language, before members-service does."""
    from types import SimpleNamespace

    from verbund_portal.forms import in_words
    from wtforms.validators import ValidationError

    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        for text in ("🚚📦🔥💸", "?!...,;:-–—"):
            with pytest.raises(ValidationError) as refused:
                in_words(None, SimpleNamespace(data=text))
            assert "mindestens ein Buchstabe" in str(refused.value)
        for text in ("Öl", "", "   ", "Tourenplanung 4.0"):
            in_words(None, SimpleNamespace(data=text))  # a word, or an empty input (left out)
