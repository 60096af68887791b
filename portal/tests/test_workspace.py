"""Portal II, the rest of the workspace in a real browser: an admin creates an integrator (its
connection URI and token shown once, working on the real RabbitMQ) and revokes it; an organizer
moves a registration to the same workshop on another date; the public event page without sign-in
(no names, the calendar link, 404 in plain words when cancelled or unknown, German and English); a
revoked organizer is told that the access was withdrawn. axe-core on every page."""
from __future__ import annotations

import re
import subprocess
import uuid
from datetime import datetime, timedelta

import pytest
import requests
from amqp.exceptions import AccessRefused
from kombu import Connection

from verbund.testing import bearer, wait_for

pytestmark = pytest.mark.integration


def _day(days: int) -> str:
    return (datetime.now() + timedelta(days=days)).strftime("%Y-%m-%d")


def _event(platform, title: str, days: int, capacity: int = 1, organizers=("it-cluster",)) -> dict:
    return platform.schedule_event(title=title, kind="workshop", organizers=list(organizers), target_sectors=["it"],
                                   starts_at=f"{_day(days)}T09:00:00", ends_at=f"{_day(days)}T12:00:00",
                                   venue={"name": "Digital Hub", "city": "Leipzig"}, capacity=capacity)


def _member(platform, name: str) -> dict:
    return platform.register_member(
        name=name, sector="it", associations=["it-cluster"],
        region={"state": "SN", "postcode": "04109", "city": "Leipzig"}, size={"employees": 20},
        contact={"name": "Mara Kühn", "email": f"{uuid.uuid4().hex[:8]}@firma.example", "language": "de"},
        offers=[{"label": "Cloud-Betrieb"}], needs=[], topics=["ai"], consent={"suggest_as_partner": True})


def _register(platform, event: dict, member: dict) -> dict:
    """Register once events-service has heard of the new member (member.registered through the broker)."""
    def registered():
        answer = requests.post(f"{platform.url('events')}/events/{event['id']}/registrations", json={"seats": 1},
                               headers=bearer("member", member_id=member["id"]), timeout=10)
        assert answer.status_code in (201, 422), answer.text
        return answer.json() if answer.status_code == 201 else None

    return wait_for(registered, timeout=30, interval=0.2, message="events-service to know the member")


def test_an_admin_creates_an_integrator_sees_its_access_once_and_revokes_it(platform, person):
    name = f"crm-{uuid.uuid4().hex[:6]}"
    ada = person("de")
    ada.start_staff_session("admin")
    page = ada.open("/admin/integrators")
    assert page.get_by_role("link", name="Integrationen").get_attribute("aria-current") == "page"
    ada.check_accessibility()
    try:
        # Bad input first: the form shows the errors at their fields.
        page.locator("#name").fill("CRM Sync")
        page.get_by_role("button", name="Zugang anlegen").click()
        assert page.locator("#error-summary").is_visible()
        assert page.locator("#name").get_attribute("aria-invalid") == "true"
        assert "Bitte wählen Sie mindestens eine Ereignisart." in page.inner_text("main")
        ada.check_accessibility()
        page.locator("#name").fill(name)
        page.get_by_label("Gemeinsame Veranstaltungen (event.*)").check()
        page.get_by_label("Anmeldungen (registration.*)").check()
        page.get_by_role("button", name="Zugang anlegen").click()
        uri, token = page.locator("#created-uri").inner_text(), page.locator("#created-token").inner_text()
        assert uri.startswith(f"amqp://integrator-{name}:") and "nur dieses eine Mal" in page.inner_text("main")
        row = page.locator("#integrators tbody tr", has_text=name)
        assert "Gemeinsame Veranstaltungen" in row.inner_text() and "nein" in row.inner_text()
        ada.check_accessibility()
        ada.screenshot("admin-integrators")
        with Connection(uri) as connection:  # the shown URI works on the real broker
            connection.connect()
        api = f"{platform.url('members')}/members"
        assert requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
        # Shown once: the page opened again shows neither.
        page = ada.open("/admin/integrators")
        assert uri not in page.content() and token not in page.content()
        # The same name again: at the field.
        page.locator("#name").fill(name)
        page.get_by_label("Mitgliederprofile (member.*)").check()
        page.get_by_role("button", name="Zugang anlegen").click()
        assert "Eine Integration mit diesem Namen gibt es schon" in page.locator(".field.has-error").inner_text()

        page = ada.open("/admin/integrators")
        page.get_by_role("link", name=f"{name} sperren").click()
        assert "Warteschlangen" in page.locator("#confirm-what").inner_text()
        ada.check_accessibility()
        page.get_by_role("button", name="Ja, Integration sperren").click()
        assert f"Die Integration {name} ist gesperrt" in page.inner_text("main")
        assert "Gesperrt" in page.locator("#integrators tbody tr", has_text=name).inner_text()
        ada.check_accessibility()
        assert requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 401
        with pytest.raises(AccessRefused):
            with Connection(uri) as connection:
                connection.connect()
    finally:
        requests.post(f"{platform.url('members')}/integrators/{name}/revoke", headers=bearer("admin"), timeout=60)
        subprocess.run(["rabbitmqctl", "-q", "delete_user", f"integrator-{name}"], capture_output=True)


def test_an_organizer_moves_a_registration_to_another_date(platform, person):
    suffix = uuid.uuid4().hex[:6]
    first = _event(platform, f"KI-Werkstatt {suffix}", 20)
    second = _event(platform, f"KI-Werkstatt {suffix} (Termin 2)", 27)
    mover, waiting, holder = (_member(platform, f"{who} {suffix} GmbH") for who in ("Saale Code", "Elster IT",
                                                                                   "Pleiße Data"))
    _register(platform, first, mover)
    _register(platform, first, waiting)
    _register(platform, second, holder)  # the second date is full too
    _register(platform, first, holder)  # and waits for the first

    olga = person("de")
    olga.start_staff_session("organizer", "it-cluster")
    page = olga.open(f"/organize/events/{first['id']}")
    olga.check_accessibility()
    row = page.locator("table[aria-labelledby=confirmed-heading] tbody tr", has_text=f"Saale Code {suffix}")
    row.get_by_label(f"Anmeldung von Saale Code {suffix} GmbH verschieben zu").select_option(second["id"])
    row.get_by_role("button", name=f"Saale Code {suffix} GmbH verschieben").click()
    assert "steht dort auf Platz 1 der Warteliste" in page.inner_text("main")
    # Here: the waitlisted member moved up; the mover is cancelled.
    assert f"Elster IT {suffix}" in page.locator("table[aria-labelledby=confirmed-heading]").inner_text()
    cancelled = page.locator("table[aria-labelledby=cancelled-heading] tbody tr", has_text=f"Saale Code {suffix}")
    assert f"verschoben nach KI-Werkstatt {suffix} (Termin 2)" in cancelled.inner_text()
    assert cancelled.get_by_role("link", name=f"KI-Werkstatt {suffix} (Termin 2)").get_attribute("href") == \
        f"/organize/events/{second['id']}"
    olga.check_accessibility()
    olga.screenshot("organizer-event-moved")
    page = olga.open(f"/organize/events/{second['id']}")
    assert f"Saale Code {suffix}" in page.locator("table[aria-labelledby=waitlist-heading]").inner_text()
    # Moving to an event where the member is registered already: told in plain words, nothing changes.
    row = page.locator("table[aria-labelledby=confirmed-heading] tbody tr", has_text=f"Pleiße Data {suffix}")
    row.get_by_label(re.compile("verschieben zu")).select_option(first["id"])
    row.get_by_role("button", name=re.compile("verschieben")).click()
    assert "Dieses Mitglied ist für jene Veranstaltung schon angemeldet." in page.inner_text("main")
    assert f"Pleiße Data {suffix}" in page.locator("table[aria-labelledby=confirmed-heading]").inner_text()
    olga.check_accessibility()


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_public_event_page_needs_no_sign_in_and_shows_no_names(platform, person, language):
    suffix = uuid.uuid4().hex[:6]
    event = _event(platform, f"Offene Werkstatt {suffix}", 15, capacity=5)
    member = _member(platform, f"Geheim {suffix} GmbH")
    _register(platform, event, member)
    olga = person(language)
    olga.start_staff_session("organizer", "it-cluster")
    page = olga.open(f"/organize/events/{event['id']}")
    shared = page.locator("#public-page-url").inner_text()
    assert shared == f"{platform.portal_url}/e/{event['id']}"

    visitor = person(language)  # nobody signed in
    response = visitor.page.goto(shared)
    assert response.status == 200 and "/sign-in" not in visitor.page.url
    text = visitor.page.inner_text("main")
    assert f"Offene Werkstatt {suffix}" in text and "Digital Hub" in text
    assert f"Geheim {suffix}" not in visitor.page.content() and "Mara Kühn" not in visitor.page.content()
    expected = "9:00–12:00 Uhr (Europe/Berlin)" if language == "de" else "09:00–12:00 (Europe/Berlin)"
    assert visitor.page.locator("#when").inner_text().endswith(expected)
    assert ("4 von 5 frei" if language == "de" else "4 of 5 free") in visitor.page.locator("#places").inner_text()
    ics = requests.get(f"{platform.portal_url}{visitor.page.locator('#calendar-link').get_attribute('href')}",
                       timeout=10)
    assert ics.status_code == 200 and "BEGIN:VEVENT" in ics.text and "Geheim" not in ics.text
    visitor.check_accessibility()
    visitor.screenshot("public-event")

    response = visitor.page.goto(f"{platform.portal_url}/e/no-such-event")
    assert response.status == 404
    assert ("keine Veranstaltung" if language == "de" else "no event at this address") in visitor.page.inner_text(
        "main")
    visitor.check_accessibility()
    cancelled = requests.post(f"{platform.url('events')}/events/{event['id']}/cancel", json={"reason": "Krank"},
                              headers=bearer("admin"), timeout=10)
    assert cancelled.status_code == 200
    response = visitor.page.goto(shared)
    assert response.status == 404
    assert ("wurde abgesagt" if language == "de" else "has been cancelled") in visitor.page.inner_text("main")
    assert f"Offene Werkstatt {suffix}" not in visitor.page.inner_text("main")


def test_a_revoked_organizer_is_told_the_access_was_withdrawn(platform, person):
    otto = person("de")
    otto.start_staff_session("organizer", "it-cluster")
    staff_id = requests.get(f"{platform.url('members')}/staff", headers=bearer("admin"), timeout=10).json()["items"]
    mine = [s for s in staff_id if s["status"] == "active" and s["name"] == "Test organizer"]
    for account in mine:  # every test organizer of this module: revoked
        requests.post(f"{platform.url('members')}/staff/{account['id']}/revoke", headers=bearer("admin"), timeout=10)
    otto.reload_until(lambda p: "/sign-in" in p.url, timeout=30, message="the revoked organizer to be signed out")
    notice = otto.page.locator("#access-withdrawn").inner_text()
    assert "Zugang entzogen" in notice and "Administration von Verbund" in notice
    assert "Sitzung" not in notice
    otto.check_accessibility()


def test_the_health_page_reads_as_words(platform, person):
    ada = person("en")
    ada.start_staff_session("admin")
    page = ada.open("/admin/health")
    rows = page.locator("#health tbody tr")
    assert rows.count() == len(platform.services)  # one row per service
    first = rows.first.inner_text()
    assert "Database: OK" in first and "Message broker: OK" in first and "{" not in first
    assert re.search(r"\t0\t|\s0\s", first)  # the dead-letter count, as a number
    for name in page.locator("#health tbody th").all_inner_texts():  # a name, not "meetings (meetings)"
        assert not re.fullmatch(r"\s*(\w+)\s*\(\1\)\s*", name), name
    assert "Matchmaking meetings (meetings)" in page.inner_text("#health")
    assert "Matching by meaning: OK" in page.inner_text("#health") or "Matching by meaning: works" in page.inner_text(
        "#health")
    ada.check_accessibility()
