"""The organizers' workspace in a real browser: an organizer schedules an event co-organized with
another association (bad input first), a member registers in their own browser, a second member
is waitlisted, the organizer sees both in order, exports CSV and Excel, cancels a registration (the
waitlist moves up), imports a member list (a dry run with a bad row, then the import), finds the
imported members in the directory and cancels the event; the member's inbox shows it. An organizer
of another association and a member get a 403 page. axe-core checks every staff page."""
from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import datetime, timedelta

import openpyxl
import pytest
import requests

from verbund.testing import bearer

pytestmark = pytest.mark.integration


def member(suffix: str, name: str, email: str) -> dict:
    return {
        "name": name, "sector": "automotive", "associations": ["automotive-cluster"],
        "region": {"state": "SN", "postcode": "09111", "city": "Chemnitz"}, "size": {"employees": 60},
        "contact": {"name": "Jana Keller", "email": email, "language": "de"},
        "offers": [{"label": "Druckguss"}], "needs": [], "topics": ["battery-value-chain"],
        "consent": {"suggest_as_partner": True, "email": True},
    }


def member_list(suffix: str) -> bytes:
    header = ["Firma", "Branche", "Verband", "Bundesland", "PLZ", "Ort", "Mitarbeiter", "Ansprechpartner", "E-Mail",
              "Sprache"]
    good = [f"Lausitz Antriebe {suffix} GmbH", "Automobil", "Automotive Cluster", "Brandenburg", "03046", "Cottbus",
            "35", "Karl Roth", f"karl.{suffix}@lausitz-antriebe.example", "Deutsch"]
    bad = [f"Fehlerhaft {suffix} GmbH", "Luftfahrt", "Automotive Cluster", "Sachsen", "01067", "Dresden", "viele",
           "Eva Lang", "kein-mail", "Deutsch"]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows([header, good, bad])
    return buffer.getvalue().encode("utf-8")


def test_an_organizer_runs_a_joint_event_and_a_member_import(platform, person, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    first = platform.register_member(**member(suffix, f"Erzgebirge Guss {suffix}", f"jana.{suffix}@guss.example"))
    second = platform.register_member(**member(suffix, f"Vogtland Teile {suffix}", f"tim.{suffix}@teile.example"))

    # --- an admin invites an organizer (bad input first); she signs in from the e-mail link -------------
    ada = person("de")
    ada.start_staff_session("admin")
    page = ada.open("/admin/staff")
    ada.check_accessibility()
    organizer_email = f"olga.{suffix}@automobilcluster.example"
    page.locator("#name").fill("Olga Brandt")
    page.locator("#email").fill(organizer_email)
    page.locator("#role").select_option("organizer")
    page.get_by_role("button", name="Einladung senden").click()
    assert page.locator("#association").get_attribute("aria-invalid") == "true"  # an organizer needs one
    ada.check_accessibility()
    page.locator("#association").select_option("automotive-cluster")
    page.get_by_role("button", name="Einladung senden").click()
    assert "Olga Brandt ist eingeladen" in page.inner_text("main")
    row = page.locator("tbody tr", has_text=organizer_email)
    assert "Automobilcluster" in row.inner_text() and "Aktiv" in row.inner_text()
    ada.screenshot("admin-staff")

    olga = person("de")
    olga.page.goto(platform.sign_in_link(organizer_email))
    olga.check_accessibility()
    olga.page.get_by_role("button", name="Jetzt anmelden").click()
    olga.page.wait_for_url("**/organize/events")
    page = olga.page

    # --- the organizer schedules a joint event; bad input first ---------------------------------------
    assert page.get_by_role("link", name="Mitgliederlisten").is_visible()
    assert page.get_by_role("link", name="Vorschläge").count() == 0  # no member menu for staff
    olga.check_accessibility()
    page.get_by_role("link", name="Veranstaltung anlegen").click()
    assert page.locator("#timezone").input_value() == "Europe/Berlin"
    assert page.locator("#organizers-0").is_checked()  # the organizer's own association, ticked
    olga.check_accessibility()
    page.get_by_role("button", name="Veranstaltung anlegen").click()
    assert page.locator("#error-summary").is_visible()
    assert page.locator("#title").get_attribute("aria-invalid") == "true"
    assert page.locator("#kind").get_attribute("aria-invalid") == "true"  # no silent default kind
    olga.check_accessibility()
    starts = (datetime.now() + timedelta(days=20)).replace(hour=9, minute=30)
    page.locator("#title").fill(f"Leichtbau-Forum {suffix}")
    page.locator("#kind").select_option("workshop")
    page.get_by_label("IT-Cluster").check()  # co-organized with another association
    page.locator("#starts_at").fill(starts.strftime("%Y-%m-%dT%H:%M"))
    page.locator("#ends_at").fill((starts - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))  # before the start
    page.locator("#venue_name").fill("Technologiezentrum")
    page.locator("#venue_city").fill("Chemnitz")
    page.locator("#capacity").fill("-5")
    page.locator("#description").fill("Ablauf:\x0bRundgang")  # a control character, copied along
    page.get_by_label("Automobil", exact=True).check()
    page.get_by_role("button", name="Veranstaltung anlegen").click()
    assert page.locator("#error-summary").is_visible()
    for field in ("capacity", "description", "ends_at"):  # every mistake at once, not one per round
        assert page.locator(f"#{field}").get_attribute("aria-invalid") == "true", field
    assert "Das Ende muss nach dem Beginn liegen." in page.inner_text("#error-summary")
    olga.check_accessibility()
    page.locator("#capacity").fill("1")
    page.locator("#description").fill("Ablauf: Rundgang")
    page.locator("#ends_at").fill((starts + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Veranstaltung anlegen").click()
    page.wait_for_url(re.compile(r".*/organize/events/[0-9a-f-]{36}$"))
    event_id = page.url.rsplit("/", 1)[1]
    assert "Automobilcluster" in page.inner_text("main") and "IT-Cluster" in page.inner_text("main")
    # From start to end in the event's own time zone
    assert page.locator("#when").inner_text().endswith(
        f"{starts.hour}:30–{starts.hour + 3}:30 Uhr (Europe/Berlin)"), page.locator("#when").inner_text()
    olga.check_accessibility()
    # Edit: the form shows the stored event in its own time zone; a change is saved.
    page.get_by_role("link", name="Veranstaltung bearbeiten").click()
    assert page.locator("#starts_at").input_value() == starts.strftime("%Y-%m-%dT%H:%M")
    assert page.locator("#organizers-1").is_checked()  # the co-organizer kept
    olga.check_accessibility()
    page.locator("#venue_city").fill("Zwickau")
    page.get_by_role("button", name="Änderungen speichern").click()
    page.wait_for_url(f"**/organize/events/{event_id}")
    assert "Ihre Änderungen sind gespeichert" in page.inner_text("main") and "Zwickau" in page.inner_text("main")

    # --- one member registers; another, in their own browser, goes on the waitlist --------------------
    answer = requests.post(f"{platform.url('events')}/events/{event_id}/registrations", json={"seats": 1},
                           headers=bearer("member", member_id=second["id"]), timeout=10)
    assert answer.json()["status"] == "confirmed"
    jana = person("de")
    jana.sign_in(first["contact"]["email"])
    jana.open(page.locator("#public-url").inner_text().replace(platform.portal_url, ""))
    jana.page.get_by_role("button", name="Auf die Warteliste").click()
    assert "Warteliste" in jana.page.inner_text("main")

    page.reload()
    confirmed = page.locator("table[aria-labelledby=confirmed-heading] tbody tr")
    waitlist = page.locator("table[aria-labelledby=waitlist-heading] tbody tr")
    assert confirmed.count() == 1 and f"Vogtland Teile {suffix}" in confirmed.first.inner_text()
    assert waitlist.count() == 1 and f"Erzgebirge Guss {suffix}" in waitlist.first.inner_text()
    assert waitlist.first.locator("td").first.inner_text() == "1"
    olga.check_accessibility()
    olga.screenshot("organizer-event")

    # --- exports: CSV and Excel, one click each ----------------------------------------------------------
    with page.expect_download() as download:
        page.get_by_role("link", name="Teilnehmende als Excel").click()
    assert download.value.suggested_filename.endswith(".xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(download.value.path().read_bytes()))
    cells = [str(c.value) for row in workbook.active.iter_rows() for c in row if c.value is not None]
    assert workbook.sheetnames[0] == "Teilnehmende" and workbook.active["C1"].value == "Organisation"
    assert any(f"Vogtland Teile {suffix}" in c for c in cells)
    with page.expect_download() as download:
        page.get_by_role("link", name="Teilnehmende als CSV").click()
    exported = open(download.value.path(), encoding="utf-8-sig", errors="replace").read()
    assert f"Vogtland Teile {suffix}" in exported
    assert exported.startswith("Status;Wartelistenplatz;Organisation;Branche") and "bestätigt" in exported

    # --- cancel one registration: the waitlist moves up ----------------------------------------------------
    page.get_by_role("link", name=f"Anmeldung von Vogtland Teile {suffix} stornieren").click()
    asked = page.locator("#confirm-what").inner_text()
    assert f"Vogtland Teile {suffix}" in asked and "rückt nach" in asked  # whom, and that the waitlist moves up
    olga.check_accessibility()
    page.get_by_role("button", name="Ja, Anmeldung stornieren").click()
    olga.reload_until(lambda p: p.locator("table[aria-labelledby=waitlist-heading]").count() == 0
                      and f"Erzgebirge Guss {suffix}" in p.locator("table[aria-labelledby=confirmed-heading]")
                      .inner_text(), message="the waitlisted member to move up")

    # --- an organizer of another association, and a member, get a 403 page --------------------------------
    lars = person("de")
    lars.start_staff_session("organizer", "logistics-network")
    response = lars.page.goto(f"{platform.portal_url}/organize/events/{event_id}/edit")
    assert response.status == 403 and "Nicht erlaubt" in lars.page.inner_text("main")
    lars.check_accessibility()
    response = jana.page.goto(f"{platform.portal_url}/organize/events")
    assert response.status == 403 and "Nicht erlaubt" in jana.page.inner_text("main")

    # --- import a member list: a dry run with a bad row, then the import ------------------------------------
    upload = tmp_path / "mitglieder.csv"
    upload.write_bytes(member_list(suffix))
    page = olga.open("/organize/members/import")
    olga.check_accessibility()
    page.locator("#file").set_input_files(str(upload))
    page.get_by_role("button", name="Datei prüfen").click()
    assert "1 von 2 Zeilen" in page.locator("#import-summary").inner_text()
    errors = page.locator("#import-errors").inner_text()
    assert "3" in errors and "Luftfahrt" in errors and "E-Mail" in errors  # row 3, in German
    olga.check_accessibility()
    olga.screenshot("organizer-import")
    found = requests.get(f"{platform.url('members')}/members", params={"q": f"Lausitz Antriebe {suffix}"},
                         headers=bearer("admin"), timeout=10).json()
    assert found["total"] == 0  # the dry run imported nothing
    page.get_by_label(re.compile("auch an Mitglieder ohne E-Mail-Einwilligung")).check()
    page.get_by_role("button", name="1 Mitglied jetzt importieren").click()
    assert "1 Mitglied importiert" in page.locator("#import-summary").inner_text()
    assert "1 Mitglied hat einen Anmeldelink" in page.locator("#invited").inner_text()
    assert platform.sign_in_link(f"karl.{suffix}@lausitz-antriebe.example")  # the invitation arrives
    olga.check_accessibility()

    # --- the directory finds it, with the same filters as the API -----------------------------------------
    page = olga.open("/organize/members")
    page.locator("#q").fill(f"Antriebe {suffix}")
    page.locator("#state").select_option(label="Brandenburg")
    page.locator("#sme").select_option("true")
    page.get_by_role("button", name="Suchen").click()
    assert f"Lausitz Antriebe {suffix} GmbH" in page.inner_text("main")
    assert "1 Mitglied gefunden" in page.inner_text("main")
    olga.check_accessibility()
    olga.screenshot("organizer-members")

    # --- cancel the event: the member's inbox shows it --------------------------------------------------------
    page = olga.open(f"/organize/events/{event_id}")
    page.get_by_role("link", name="Veranstaltung absagen").click()
    olga.check_accessibility()
    page.locator("#reason").fill("Die Halle ist nicht verfügbar.")
    page.get_by_role("button", name="Jetzt absagen").click()
    assert "Abgesagt" in page.inner_text("main")
    jana.open("/inbox")
    jana.reload_until(lambda p: f"Leichtbau-Forum {suffix}" in p.inner_text("main")
                      and "abgesagt" in p.inner_text("main").lower(), message="the cancellation in the inbox")


def test_admin_pages_and_the_menu_by_role(platform, person):
    ada = person("en")
    ada.start_staff_session("admin")
    page = ada.open("/admin/health")
    rows = page.locator("#health tbody tr")
    assert rows.count() == 5  # members, events, matching, notifications, meetings
    assert "Ready" in rows.first.inner_text()
    assert page.get_by_role("link", name="Staff accounts").is_visible()
    assert page.get_by_role("heading", name="Notifications that could not be delivered").is_visible()
    ada.check_accessibility()
    ada.screenshot("admin-health")
    page = ada.open("/organize/events")  # admins see every association's events
    assert page.get_by_role("heading", name="All joint events").is_visible()

    olga = person("en")
    olga.start_staff_session("organizer", "it-cluster")
    response = olga.page.goto(f"{platform.portal_url}/admin/health")
    assert response.status == 403
    assert olga.page.get_by_role("link", name="Staff accounts").count() == 0
    olga.check_accessibility()
    response = olga.page.goto(f"{platform.portal_url}/suggestions")  # no member pages for staff
    assert response.status == 403


def test_a_revoked_organizer_is_signed_out_on_the_next_request(platform, person):
    suffix = uuid.uuid4().hex[:6]
    ada = person("en")
    ada.start_staff_session("admin")
    page = ada.open("/admin/staff")
    email = f"otto.{suffix}@it-cluster.example"
    page.locator("#name").fill(f"Otto Lenz {suffix}")
    page.locator("#email").fill(email)
    page.locator("#role").select_option("organizer")
    page.locator("#association").select_option("it-cluster")
    page.locator("#language").select_option("en")  # his pages and mails in English
    page.get_by_role("button", name="Send the invitation").click()
    otto = person("en")
    otto.page.goto(platform.sign_in_link(email))
    otto.page.get_by_role("button", name="Sign in now").click()
    otto.page.wait_for_url("**/organize/events")
    assert otto.page.get_by_role("heading", name=re.compile("Events of IT cluster")).is_visible()

    page.get_by_role("link", name=f"Revoke Otto Lenz {suffix}").click()
    assert email in page.locator("#confirm-what").inner_text()
    ada.check_accessibility()
    page.get_by_role("button", name="Yes, revoke the access").click()
    assert "revoked" in page.inner_text("main")
    assert "Revoked" in page.locator("tbody tr", has_text=email).inner_text()
    ada.check_accessibility()
    # The services refuse the revoked account's token (within their check bound): the portal ends the session.
    otto.reload_until(lambda p: "/sign-in" in p.url, timeout=30, message="the revoked organizer to be signed out")


def test_an_import_where_no_row_can_be_imported_says_nothing_can_be_imported_yet(platform, person, tmp_path):
    """An organizer of the automotive cluster checks a file whose every row is wrong: a member of the
    logistics network only, a Munich firm whose 4-digit postcode would become a Saxon one, a name of
    zero-width spaces. The page names each problem, offers no import and says the file must be corrected
    first; the warning about an unknown column points to the column list shown on the same page."""
    suffix = uuid.uuid4().hex[:6]
    header = ["Firma", "Branche", "Verband", "Bundesland", "PLZ", "Ort", "Mitarbeiter", "Ansprechpartner", "E-Mail",
              "Notizen"]
    rows = [[f"Spedition Nord {suffix} GmbH", "Logistik", "Logistiknetzwerk", "Niedersachsen", "30159", "Hannover",
             "20", "Ole Hansen", f"ole.{suffix}@nord.example", ""],
            [f"Isar Antriebe {suffix} GmbH", "Automobil", "", "Bayern", "8033", "München", "40", "Max Huber",
             f"max.{suffix}@isar.example", "Messe"],
            ["\u200b\u200b\u200b", "Automobil", "Automobilcluster", "Sachsen", "01067", "Dresden", "-3", "Eva Lang",
             f"eva.{suffix}@leer.example", ""]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows([header, *rows])
    upload = tmp_path / "mitglieder.csv"
    upload.write_bytes(buffer.getvalue().encode("utf-8"))

    olga = person("de")
    olga.start_staff_session("organizer", "automotive-cluster")
    page = olga.open("/organize/members/import")
    page.locator("#file").set_input_files(str(upload))
    page.get_by_role("button", name="Datei prüfen").click()
    assert "0 von 3 Zeilen" in page.locator("#import-summary").inner_text()
    errors = page.locator("#import-errors").inner_text()
    assert "nennt nur Logistiknetzwerk" in errors  # row 2: another association's member
    assert "08033" in errors and "Sachsen" in errors and "Bayern" in errors  # row 3
    assert "kein sichtbares Zeichen" in errors and "negativ" in errors  # row 4
    next_step = page.locator("#import-next").inner_text()
    assert "erst, wenn die Datei berichtigt ist" in next_step and "übrigen" not in next_step
    assert page.get_by_role("button", name=re.compile("jetzt importieren")).count() == 0
    assert "Notizen" in page.inner_text("main") and "README" not in page.inner_text("main")
    assert "Umsatz" in page.locator("#import-columns").inner_text()  # the column list the warning points to
    olga.check_accessibility()
