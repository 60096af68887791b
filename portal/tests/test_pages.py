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
    # switching the language on the form shown again with its error stays on the form, now in German
    page.get_by_role("button", name="Deutsch").click()
    assert page.url.endswith("/sign-in") and page.locator("html").get_attribute("lang") == "de"
    page.get_by_role("button", name="English").click()

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
    # per kind: new partner suggestions only in the inbox, no mail
    assert page.locator("#kind_match_suggested").input_value() == "digest"
    assert page.locator("#kind_contact_requested").input_value() == "immediately"
    page.locator("#kind_match_suggested").select_option("inbox")
    # one language and one e-mail consent: the profile's; changed here, the profile says the same
    assert page.locator("#language").input_value() == "de" and page.locator("#email").is_checked()
    page.locator("#language").select_option("en")
    page.locator("#email").uncheck()
    page.get_by_role("button", name="Speichern").click()
    assert page.locator("html").get_attribute("lang") == "en"  # the portal follows the profile's language
    assert page.locator("#frequency").input_value() == "weekly"
    assert page.locator("#kind_match_suggested").input_value() == "inbox"
    assert not page.locator("#email").is_checked() and page.locator("#language").input_value() == "en"
    tom.open("/profile/edit")
    assert page.locator("#language").input_value() == "en" and not page.locator("#consent_email").is_checked()
    page.locator("#language").select_option("de")
    page.locator("#consent_email").check()
    page.get_by_role("button", name=re.compile("Save|Speichern")).click()
    page.wait_for_url("**/profile")
    tom.open("/preferences")
    assert page.locator("#language").input_value() == "de" and page.locator("#email").is_checked()
    assert page.locator("html").get_attribute("lang") == "de"

    # Webhooks for the organisation's own systems (no switch for them here before there is one): a bad
    # address first, then the secret shown once.
    assert page.locator("#webhook").count() == 0
    page.get_by_role("link", name="Webhook einrichten").click()
    tom.check_accessibility()
    page.locator("#url").fill("kein link")
    page.get_by_role("button", name="Webhook hinzufügen").click()
    assert page.locator("#url").get_attribute("aria-invalid") == "true", page.inner_text("main")
    page.locator("#url").fill("https://crm.havel-it.example/verbund")
    page.get_by_role("button", name="Webhook hinzufügen").click()
    assert page.locator("#webhook-secret").inner_text().startswith("whsec_")
    assert "crm.havel-it.example" in page.locator(".webhooks").inner_text()
    tom.check_accessibility()
    # http is refused as the hint says; a very long address wraps inside the page
    page.locator("#url").fill("http://crm.havel-it.example/verbund")
    page.get_by_role("button", name="Webhook hinzufügen").click()
    assert "https://" in page.locator("#url-error").inner_text()
    page.locator("#url").fill("https://" + "a" * 1900 + ".example/")
    page.get_by_role("button", name="Webhook hinzufügen").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 1100
    # the session ends while the page is open; its "remove" link leads to the sign-in and back to the
    # question whether to remove it (nothing removed meanwhile), not to a bare 405
    tom.open("/webhooks")
    tom.context.clear_cookies()
    page.get_by_role("link", name=re.compile("^Entfernen")).first.click()
    page.wait_for_url(re.compile(r"/sign-in\?next=(/|%2F)webhooks(/|%2F)[0-9a-zA-Z-]+(/|%2F)delete$"))
    mailed = len(platform.catcher.mails(to=profile["contact"]["email"]))
    page.get_by_label(re.compile("E-Mail-Adresse")).fill(profile["contact"]["email"])
    page.get_by_role("button", name=re.compile("Anmeldelink")).click()
    page.wait_for_url("**/sign-in/sent")
    page.goto(platform.sign_in_link(profile["contact"]["email"], count=mailed + 1))  # the newest link
    page.get_by_role("button", name="Jetzt anmelden").click()
    assert re.search(r"/webhooks/[0-9a-zA-Z-]+/delete$", page.url), (page.url, page.inner_text("main"))
    assert "crm.havel-it.example" in page.locator("#confirm-what").inner_text()
    tom.check_accessibility()
    page.get_by_role("link", name="Nein, Webhook behalten").click()
    assert "crm.havel-it.example" in page.locator(".webhooks").inner_text()
    for _ in range(page.get_by_role("link", name=re.compile("^Entfernen")).count()):
        page.get_by_role("link", name=re.compile("^Entfernen")).first.click()
        page.get_by_role("button", name="Ja, Webhook entfernen").click()
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


def test_a_copied_cookie_is_dead_after_sign_out(platform, person, browser):
    profile = platform.register_member(**member(uuid.uuid4().hex[:6]))
    tom = person("de")
    tom.sign_in(profile["contact"]["email"])
    copied = tom.context.cookies()
    assert [c["name"] for c in copied] == ["verbund_session"]
    assert len(copied[0]["value"]) >= 32 and "." not in copied[0]["value"]  # an id only, no token inside
    page = tom.open("/profile")
    page.get_by_role("button", name="Abmelden").click()
    page.wait_for_url("**/signed-out")
    thief = person("de")
    thief.context.add_cookies(copied)
    thief.open("/projects")
    assert "/sign-in" in thief.page.url
    assert profile["name"] not in thief.page.content()


def sign_up(anna, name: str, email: str):
    """The sign-up form filled in with ``name`` and ``email`` (a small IT firm in Potsdam) and sent."""
    page = anna.open("/sign-up")
    page.locator("#name").fill(name)
    page.locator("#sector").select_option("it")
    page.locator("#state").select_option("BB")
    page.locator("#postcode").fill("14467")
    page.locator("#city").fill("Potsdam")
    page.locator("#employees").fill("5")
    page.locator("#contact_name").fill("Anna Berg")
    page.locator("#contact_email").fill(email)
    page.get_by_role("button", name="Organisation registrieren", exact=True).click()
    return page


def test_sign_up_with_an_address_in_use_says_so_at_the_field(platform, person):
    taken = platform.register_member(**member(uuid.uuid4().hex[:6]))
    anna = person("de")
    page = sign_up(anna, f"Andere Firma {uuid.uuid4().hex[:6]}",
                   taken["contact"]["email"].upper() + " ")  # the address pasted with a space
    assert page.locator("#contact_email").get_attribute("aria-invalid") == "true", page.inner_text("main")
    assert "schon registriert" in page.locator("#contact_email-error").inner_text()
    assert page.locator("#sign-in-instead a").get_attribute("href") == "/sign-in"
    anna.check_accessibility()
    # a new address: the page says the mailed link confirms it and signs in
    page.locator("#contact_email").fill(f"anna.{uuid.uuid4().hex[:6]}@andere.example")
    page.get_by_role("button", name="Organisation registrieren", exact=True).click()
    page.wait_for_url("**/sign-in/sent**")
    assert "bestätigen" in page.locator("#welcome-next").inner_text()


def test_the_unsubscribe_link_opens_a_portal_page_in_the_member_language(platform, person):
    anna = person("de")
    page = anna.open("/unsubscribe/not-a-valid-token")
    assert "Dieser Link funktioniert nicht" in page.inner_text("h1")
    anna.check_accessibility()

    # a real link: from the contact-request mail to the member asked
    suffix = uuid.uuid4().hex[:6]
    first, second = (platform.register_member(**member(f"{suffix}{n}")) for n in (1, 2))
    import requests

    from verbund.testing import bearer, wait_for

    made = requests.post(f"{platform.url('members')}/members/{second['id']}/contact-requests",
                         json={"message": "Hallo"}, headers=bearer("member", subject=f"member:{first['id']}",
                                                                   member_id=first["id"]), timeout=10)
    assert made.status_code == 201, made.text

    def unsubscribe_link():
        for mail in platform.catcher.mails(to=second["contact"]["email"]):
            body = mail.get_body(preferencelist=("plain",)).get_content()
            found = re.search(r"/unsubscribe/([A-Za-z0-9_\-.=]+)", body)
            if found:
                return found.group(1), mail["List-Unsubscribe"]
        return None

    token, header = wait_for(unsubscribe_link, timeout=60, interval=0.5, message="the contact-request mail")
    # the mail program's one-click address is the portal's page, not a service's internal port
    assert header == f"<{platform.portal_url}/unsubscribe/{token}>"

    def email_on() -> bool:
        return requests.get(f"{platform.url('notifications')}/members/{second['id']}/preferences",
                            headers=bearer("member", subject=f"member:{second['id']}", member_id=second["id"]),
                            timeout=10).json()["channels"]["email"]

    assert email_on()
    # any other POST without the page's form token is refused as everywhere, and changes nothing
    assert requests.post(header.strip("<>"), data={"x": "1"}, timeout=10).status_code == 400
    assert email_on()
    # RFC 8058 one-click: no cookie, no form token, the signed token in the URL is enough
    one_click = requests.post(header.strip("<>"), data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert one_click.status_code == 200, one_click.text
    assert not email_on()
    page = anna.open(f"/unsubscribe/{token}")
    assert "E-Mails von Verbund abbestellen" in page.inner_text("h1")
    assert page.locator("html").get_attribute("lang") == "de"
    anna.check_accessibility()
    page.get_by_role("button", name="E-Mails abbestellen").click()
    assert "Sie haben die E-Mails abbestellt" in page.inner_text("h1")
    preferences = requests.get(f"{platform.url('notifications')}/members/{second['id']}/preferences",
                               headers=bearer("member", subject=f"member:{second['id']}", member_id=second["id"]),
                               timeout=10).json()
    assert preferences["channels"]["email"] is False


def test_a_suggestion_card_shows_a_declined_request_instead_of_the_button(platform, person):
    import requests

    from verbund.testing import bearer

    suffix = uuid.uuid4().hex[:6]
    partner = platform.register_member(**member(f"{suffix}p"))  # offers route-planning software
    seeker = platform.register_member(**{**member(f"{suffix}s"), "name": f"Spree Spedition {suffix}",
                                         "sector": "logistics", "associations": ["logistics-network"],
                                         "offers": [], "needs": [{"label": "Tourenplanungssoftware"}]})
    as_member = {m["id"]: bearer("member", subject=f"member:{m['id']}", member_id=m["id"]) for m in (partner, seeker)}
    made = requests.post(f"{platform.url('members')}/members/{partner['id']}/contact-requests",
                         json={"message": "Hallo"}, headers=as_member[seeker["id"]], timeout=10)
    assert made.status_code == 201, made.text
    declined = requests.post(f"{platform.url('members')}/contact-requests/{made.json()['id']}/decline",
                             headers=as_member[partner["id"]], timeout=10)
    assert declined.status_code == 200, declined.text
    seeker_browser = person("de")
    seeker_browser.sign_in(seeker["contact"]["email"])
    card = seeker_browser.page.locator("article", has=seeker_browser.page.get_by_role("heading", name=partner["name"]))
    seeker_browser.reload_until(lambda p: card.count() == 1, message="the partner among the suggestions")
    assert "abgelehnt" in card.inner_text()
    assert card.get_by_role("link", name=re.compile("Kontakt anfragen")).count() == 0
    seeker_browser.check_accessibility()


def test_a_changed_contact_email_waits_for_its_confirmation_link(platform, person):
    from verbund.testing import wait_for

    suffix = uuid.uuid4().hex[:6]
    other = platform.register_member(**member(f"{suffix}o"))
    profile = platform.register_member(**member(suffix))
    tom = person("de")
    tom.sign_in(profile["contact"]["email"])
    page = tom.open("/profile/edit")
    page.locator("#contact_email").fill(other["contact"]["email"])  # another organisation's address
    page.get_by_role("button", name="Speichern").click()
    assert "anderen Organisation" in page.locator("#contact_email-error").inner_text(), page.inner_text("main")
    new_address = f"tom.neu.{suffix}@havel-it.example"
    page.locator("#contact_email").fill(new_address)
    page.get_by_role("button", name="Speichern").click()
    page.wait_for_url("**/profile")
    assert new_address in page.locator("#pending-email").inner_text()
    assert profile["contact"]["email"] in page.inner_text("main")  # the old one serves until confirmed

    def confirmation_link():
        for mail in platform.catcher.mails(to=new_address):
            found = re.search(r"(http://\S+/email-confirmation/[A-Za-z0-9_\-]+)",
                              mail.get_body(preferencelist=("plain",)).get_content())
            if found:
                return found.group(1)
        return None

    link = wait_for(confirmation_link, timeout=30, interval=0.3, message="the confirmation mail")
    assert link.startswith(platform.portal_url)
    page.goto(link)
    tom.check_accessibility()
    page.get_by_role("button", name="Adresse bestätigen").click()
    assert "bestätigt" in page.inner_text("h1") and new_address in page.inner_text("main")
    page.goto(link)
    page.get_by_role("button", name="Adresse bestätigen").click()
    assert "funktioniert nicht" in page.inner_text("h1")  # a link works once
    tom.open("/profile")
    assert new_address in page.inner_text("main") and page.locator("#pending-email").count() == 0


def test_a_formed_partner_project_shows_the_team_s_contact_persons(platform, person):
    """When everyone has accepted, the team is put in touch: the contacts page lists the others'
    contact person and e-mail (members-service learns of it from matching's project.formed)."""
    from verbund import envelope
    from verbund.broker import Publisher
    from verbund.testing import wait_for

    suffix = uuid.uuid4().hex[:6]
    first, second = (platform.register_member(**member(f"{suffix}{n}")) for n in (1, 2))
    project_id = str(uuid.uuid4())
    formed = envelope.new_event("project.formed", "/verbund/matching", project_id, {"project": {
        "id": project_id, "version": 2, "title": f"Partnerprojekt: Tourenplanung {suffix}", "topic": None,
        "status": "formed", "score": 0.7, "explanation": [],
        "members": [{"member_id": m["id"], "sector": "it", "response": "accepted"} for m in (first, second)]}})
    publisher = Publisher(platform.amqp_uri)
    try:
        publisher.publish(formed["type"], envelope.dumps(formed), message_id=formed["id"])
    finally:
        publisher.close()
    member_one = person("de")
    member_one.sign_in(first["contact"]["email"])
    teams = member_one.page.locator("section[aria-labelledby=teams-heading]")

    def shown():
        member_one.open("/contacts")
        return teams.count() == 1

    wait_for(shown, timeout=30, interval=1.0, message="the project's team on the contacts page")
    text = teams.inner_text()
    assert "Aus Ihren Partnerprojekten" in text and second["name"] in text
    assert second["contact"]["email"] in text and f"Tourenplanung {suffix}" in text
    assert member_one.page.title().startswith("Kontakte") and "<" not in member_one.page.title()
    member_one.check_accessibility()


def test_sign_up_refuses_a_name_of_invisible_characters_at_the_field(platform, person):
    page = sign_up(person("de"), "\u200b\u200b\u200b", f"anna.{uuid.uuid4().hex[:6]}@unsichtbar.example")
    assert page.locator("#name").get_attribute("aria-invalid") == "true", page.inner_text("main")
    assert "kein sichtbares Zeichen" in page.locator("#name-error").inner_text()
