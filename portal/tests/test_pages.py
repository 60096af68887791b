"""The portal's other pages in a real browser: the start and accessibility pages, sign-in with bad
input and a used link, the profile (edit with the service's field errors, preferences, download my
data, delete with a confirmation step). axe-core checks each page."""
from __future__ import annotations

import json
import re
import uuid

import pytest

pytestmark = pytest.mark.integration


def member(suffix: str, language: str = "de") -> dict:
    return {
        "name": f"Havel IT-Systemhaus {suffix}", "sector": "it", "associations": ["it-cluster"],
        "region": {"state": "BB", "postcode": "14467", "city": "Potsdam"}, "size": {"employees": 22},
        "contact": {"name": "Tom Berger", "email": f"tom.{suffix}@havel-it.example", "language": language},
        "offers": [{"label": "Tourenplanungssoftware"}], "needs": [], "topics": ["digital-logistics"],
        "consent": {"suggest_as_partner": True, "email": True},
    }


def test_anonymous_pages_and_sign_in_with_bad_input_and_a_used_link(platform, person):
    tom = person("en")
    page = tom.open("/")
    tom.check_accessibility()
    tom.open("/accessibility")
    assert page.get_by_role("link", name=re.compile("@")).get_attribute("href").startswith("mailto:")
    tom.check_accessibility()
    tom.open("/sign-in")
    tom.screenshot("sign-in")
    page.get_by_label(re.compile("E-mail address")).fill("not an address")
    page.get_by_role("button", name="Send me a sign-in link").click()
    assert page.locator("#email").get_attribute("aria-invalid") == "true"
    assert "not a valid e-mail" in page.locator("#email-error").inner_text()
    tom.check_accessibility()

    # The same answer for an unknown address: no telling who is registered.
    page.get_by_label(re.compile("E-mail address")).fill(f"nobody.{uuid.uuid4().hex[:6]}@example.org")
    page.get_by_role("button", name="Send me a sign-in link").click()
    page.wait_for_url("**/sign-in/sent")

    profile = platform.register_member(**member(uuid.uuid4().hex[:6], "en"))
    tom.sign_in(profile["contact"]["email"])
    link = platform.sign_in_link(profile["contact"]["email"])
    other = person("de")  # a used link does not sign in a second browser
    other.page.goto(link)
    other.page.get_by_role("button", name="Jetzt anmelden").click()
    assert "nicht mehr" in other.page.inner_text("main")
    other.check_accessibility()
    other.open("/profile")
    assert "/sign-in" in other.page.url

    # The switcher changes the language of the page it is on.
    tom.open("/profile")
    page.get_by_role("button", name="Deutsch").click()
    assert page.locator("html").get_attribute("lang") == "de"
    assert "Profil bearbeiten" in page.inner_text("main")


def test_profile_edit_preferences_download_and_delete(platform, person):
    suffix = uuid.uuid4().hex[:6]
    profile = platform.register_member(**member(suffix))
    tom = person("de")
    tom.sign_in(profile["contact"]["email"])
    page = tom.open("/profile")
    tom.check_accessibility()
    page.get_by_role("link", name="Profil bearbeiten").click()
    assert page.locator("#name").input_value() == profile["name"]
    tom.check_accessibility()

    # The service's own field errors come back at the field: a website that is not an address.
    page.locator("#website").fill("kein link")
    page.get_by_role("button", name="Speichern").click()
    assert page.locator("#website").get_attribute("aria-invalid") == "true", page.inner_text("main")
    assert page.locator("#website-error").is_visible()
    tom.check_accessibility()
    page.locator("#website").fill("https://havel-it.example")
    assert page.locator("#offers-0").input_value() == "Tourenplanungssoftware"
    page.locator("#needs-0").fill("Gefahrguttransport (ADR)")
    page.get_by_role("button", name="Speichern").click()
    page.wait_for_url("**/profile")
    assert "Gefahrguttransport" in page.inner_text("main") and "havel-it.example" in page.inner_text("main")

    page.get_by_role("link", name="Benachrichtigungen einstellen").click()
    tom.check_accessibility()
    page.locator("#frequency").select_option("weekly")
    page.get_by_role("button", name="Speichern").click()
    assert page.locator("#frequency").input_value() == "weekly"

    # Webhooks for the organisation's own systems: a bad address first, then the secret shown once.
    page.get_by_role("link", name="Webhooks").click()
    tom.check_accessibility()
    page.locator("#url").fill("kein link")
    page.get_by_role("button", name="Webhook hinzufügen").click()
    assert page.locator("#url").get_attribute("aria-invalid") == "true", page.inner_text("main")
    page.locator("#url").fill("https://crm.havel-it.example/verbund")
    page.get_by_role("button", name="Webhook hinzufügen").click()
    assert page.locator("#webhook-secret").inner_text().startswith("whsec_")
    assert "crm.havel-it.example" in page.locator(".webhooks").inner_text()
    tom.check_accessibility()
    page.get_by_role("button", name="Entfernen").click()
    assert "crm.havel-it.example" not in page.locator(".webhooks").inner_text()

    tom.open("/profile")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Meine Daten herunterladen")).click()
    data = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert data["profile"]["id"] == profile["id"] and "access_token" not in data["profile"]
    assert data["notification_preferences"]["frequency"] == "weekly"

    page.get_by_role("link", name="Meine Organisation löschen").click()
    tom.check_accessibility()
    tom.screenshot("delete")
    page.locator("#confirm_name").fill("Eine andere GmbH")
    page.get_by_role("button", name="Endgültig löschen").click()
    assert page.locator("#confirm_name").get_attribute("aria-invalid") == "true"
    page.locator("#confirm_name").fill(profile["name"])
    page.get_by_role("button", name="Endgültig löschen").click()
    page.wait_for_url("**/profile/deleted")
    tom.check_accessibility()
    import requests

    from verbund.testing import bearer
    gone = requests.get(f"{platform.url('members')}/members/{profile['id']}", headers=bearer("admin", subject="t"),
                        timeout=10)
    assert gone.status_code in (404, 410) or gone.json().get("deleted_at"), gone.text


def test_too_many_sign_in_requests_are_answered_at_the_field(platform, person):
    visitor = person("en")
    address = f"someone.{uuid.uuid4().hex[:6]}@example.org"  # unknown or not: the same limit, the same answers
    sent = 0
    while sent < 6:
        page = visitor.open("/sign-in")
        page.get_by_label(re.compile("E-mail address")).fill(address)
        page.get_by_role("button", name="Send me a sign-in link").click()
        if "/sign-in/sent" not in page.url:
            break
        sent += 1
    assert sent == 5, "the sixth request within the hour is refused"
    assert "Too many sign-in requests" in page.locator("#email-error").inner_text()
    visitor.check_accessibility()


def test_a_member_cannot_answer_a_request_made_to_someone_else(platform, person):
    """The portal adds no authority of its own: members-service refuses, the portal says so."""
    suffix = uuid.uuid4().hex[:6]
    first, second = (platform.register_member(**member(f"{suffix}{n}")) for n in (1, 2))
    import requests

    from verbund.testing import bearer

    made = requests.post(f"{platform.url('members')}/members/{second['id']}/contact-requests",
                         json={"message": "Hallo"}, headers=bearer("member", subject=f"member:{first['id']}",
                                                                   member_id=first["id"]), timeout=10)
    assert made.status_code == 201, made.text
    requester = person("de")
    requester.sign_in(first["contact"]["email"])
    page = requester.open("/contacts")
    assert "Hallo" in page.inner_text("main") and second["contact"]["email"] not in page.content()
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"{platform.portal_url}/contacts/{made.json()['id']}/accept",
                               form={"csrf_token": token}, max_redirects=0)
    assert answer.status == 403 and "Nicht erlaubt" in answer.text()
    page = requester.open("/contacts")
    assert second["contact"]["email"] not in page.content()  # still no contact details
