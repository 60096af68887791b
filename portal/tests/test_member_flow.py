"""A member's way through the portal as a person goes it, in German and in English: sign up, the
sign-in link from the mail catcher, explained suggestions, a contact request the partner accepts in
their own browser, both see the contact details, a full event's waitlist, the promotion in the
inbox, sign out. axe-core checks every page on the way."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.integration

WORDS = {
    "de": {"sector": "Automobil", "state": "Sachsen", "register": "Organisation registrieren",
           "request": "Kontakt anfragen",
           "send": "Anfrage senden", "accept": "Annehmen", "waitlist": "Auf die Warteliste",
           "book": "Anmelden", "cancel": "Meine Anmeldung stornieren", "sign_out": "Abmelden",
           "confirm_cancel": "Ja, meine Anmeldung stornieren", "keep": "Nein, Anmeldung behalten",
           "why": "Warum dieser Partner", "accepted": "angenommen", "need": "Ihr Bedarf",
           "mark_read": "Als gelesen markieren"},
    "en": {"sector": "Automotive", "state": "Saxony", "register": "Register your organisation",
           "request": "Request contact",
           "send": "Send request", "accept": "Accept", "waitlist": "Join the waitlist",
           "book": "Register", "cancel": "Cancel my registration", "sign_out": "Sign out",
           "confirm_cancel": "Yes, cancel my registration", "keep": "No, keep my registration",
           "why": "Why this partner", "accepted": "accepted", "need": "Your need",
           "mark_read": "Mark as read"},
}


def logistics_partner(suffix: str, language: str) -> dict:
    return {
        "name": f"Elbe Gefahrgut Logistik {suffix}", "sector": "logistics", "associations": ["logistics-network"],
        "region": {"state": "SN", "postcode": "04103", "city": "Leipzig"}, "size": {"employees": 140},
        "contact": {"name": "Lena Hansen", "email": f"lena.{suffix}@elbe-gefahrgut.example", "language": language},
        "offers": [{"label": "Gefahrguttransport (ADR)"}, {"label": "Batterietransport"}],
        "needs": [{"label": "Batteriegehäuse"}], "topics": ["battery-value-chain"],
        "consent": {"suggest_as_partner": True, "email": True},
    }


def full_event(platform, suffix: str) -> dict:
    # 8:30 UTC (9:30 in Berlin in winter, 10:30 in summer), 30 days ahead: the four hours never cross
    # midnight, whenever the test runs
    starts = (datetime.now(UTC) + timedelta(days=30)).replace(hour=8, minute=30, second=0, microsecond=0)
    return platform.schedule_event(
        title=f"Batterie-Workshop {suffix}", kind="workshop", organizers=["logistics-network"],
        target_sectors=["automotive", "logistics"], topics=["battery-value-chain"], timezone="Europe/Berlin",
        starts_at=starts.isoformat(), ends_at=(starts + timedelta(hours=4)).isoformat(),
        registration_deadline=(starts - timedelta(days=2)).isoformat(), capacity=1,
        venue={"name": "Digitalhub", "address": "Augustusplatz 10", "city": "Leipzig"})


@pytest.mark.parametrize("language", ["de", "en"])
def test_a_member_signs_up_finds_a_partner_gets_in_touch_and_waits_for_a_seat(platform, person, language):
    words = WORDS[language]
    suffix = uuid.uuid4().hex[:6]
    name = f"Präzisionsteile <b>Sachsen</b> {suffix}"  # markup in a name must show as text
    email = f"jana.{suffix}@praezision.example"
    partner = platform.register_member(**logistics_partner(suffix, language))
    partner_email = partner["contact"]["email"]

    # --- sign up in the browser; bad input first ------------------------------------------------
    anna = person(language)
    page = anna.open("/sign-up")
    anna.check_accessibility()
    anna.screenshot("sign-up")
    page.get_by_role("button", name=words["register"], exact=True).click()
    assert page.locator("#error-summary").is_visible()
    assert page.locator("#name").get_attribute("aria-invalid") == "true"
    assert page.locator("#name-error").is_visible()
    anna.check_accessibility()
    page.locator("#name").fill(name)
    page.locator("#sector").select_option(label=words["sector"])
    page.locator("#state").select_option(label=words["state"])
    page.locator("#postcode").fill("0410")  # four digits: the form says so at the field
    page.locator("#city").fill("Leipzig")
    page.locator("#employees").fill("85")
    page.locator("#contact_name").fill("Jana Keller")
    page.locator("#contact_email").fill(email)
    page.locator("#offers-0").fill("Batteriegehäuse")
    page.locator("#offers-1").fill("Druckguss")
    page.locator("#needs-0").fill("Gefahrguttransport (ADR)")
    assert page.locator("#needs-0").get_attribute("list") == "competency-terms"  # suggestions as one types
    term = {"de": "Gefahrguttransport (ADR)", "en": "Dangerous goods transport (ADR)"}[language]
    assert page.locator(f"datalist#competency-terms option[value='{term}']").count() == 1
    page.locator("input[name='topics'][value='battery-value-chain']").check()
    page.locator("#consent_partner").check()
    page.get_by_role("button", name=words["register"], exact=True).click()
    assert page.locator("#postcode").get_attribute("aria-invalid") == "true"
    assert "#postcode" in page.locator("#error-summary a").first.get_attribute("href")
    page.locator("#postcode").fill("04109")
    page.get_by_role("button", name=words["register"], exact=True).click()
    page.wait_for_url("**/sign-in/sent**")
    assert re.search("bestätigen|confirm", page.locator("#welcome-next").inner_text())  # the mail's link confirms
    anna.check_accessibility()

    # --- the link from the mail signs in; suggestions explain themselves ------------------------
    link = platform.sign_in_link(email)
    page.goto(link)
    anna.check_accessibility()
    page.get_by_role("button", name=re.compile("Jetzt anmelden|Sign in now")).click()
    page.wait_for_url("**/suggestions")
    partner_card = page.locator("article", has=page.get_by_role("heading", name=partner["name"]))
    anna.reload_until(lambda p: partner_card.count() == 1, message="the partner among the suggestions")
    assert words["why"] in partner_card.inner_text()
    # the partner's Bundesland, named in the page's language, whether or not it is a reason
    state_word = {"de": "Bundesland", "en": "Federal state"}[language]
    assert partner_card.locator(".partner-state").inner_text() == f"{state_word}: {words['state']}"
    assert words["need"] in partner_card.inner_text() and "Gefahrgut" in partner_card.inner_text()
    assert not re.search(r"Begriff|term '|similar to|ähnlich wie|related:|verwandt:", partner_card.inner_text())
    assert partner_email not in page.content()  # no contact details before a request is accepted
    anna.check_accessibility()
    anna.screenshot("suggestions")

    # --- request contact: an empty message comes back with its field error ----------------------
    partner_card.get_by_role("link", name=re.compile(words["request"])).click()
    page.get_by_role("button", name=words["send"]).click()
    assert page.locator("#message").get_attribute("aria-invalid") == "true"
    anna.check_accessibility()
    page.locator("#message").fill("Guten Tag, wir bauen Batteriegehäuse und suchen einen Partner für den "
                                  "Gefahrguttransport. <script>alert(1)</script>")
    anna.screenshot("contact-request")
    page.get_by_role("button", name=words["send"]).click()
    page.wait_for_url("**/contacts")
    assert partner["name"] in page.inner_text("main")
    assert partner_email not in page.content() and "Lena Hansen" not in page.content()  # not before acceptance
    anna.check_accessibility()

    # --- the partner accepts in their own browser ------------------------------------------------
    lena = person(language)
    lena.sign_in(partner_email)
    lena.open("/contacts")
    request_card = lena.page.locator("article.request", has_text=name)
    assert "<script>alert(1)</script>" in request_card.locator(".message").inner_text()  # shown as text
    lena.check_accessibility()
    request_card.get_by_role("button", name=words["accept"]).click()
    details = lena.page.locator("article.request", has_text=name).locator(".contact-details")
    assert "Jana Keller" in details.inner_text() and email in details.inner_text()
    lena.check_accessibility()

    anna.open("/contacts")
    mine = page.locator("article.request", has_text=partner["name"]).locator(".contact-details")
    assert "Lena Hansen" in mine.inner_text() and partner_email in mine.inner_text()
    assert page.locator("h1").first.inner_text()
    anna.screenshot("contacts")

    # --- the partner-project proposal: the team, who covers what, one click to accept ------------
    anna.open("/projects")
    # (the team may be built with another test's logistics partner offering the same: any will do)
    proposal = page.locator("article[id^=proposal-]")
    anna.reload_until(lambda p: proposal.count() >= 1, message="a partner-project proposal")
    assert "Gefahrgut" in proposal.first.inner_text()  # the need and who covers it, in words
    anna.check_accessibility()
    anna.screenshot("projects")
    proposal_id = proposal.first.get_attribute("id")
    proposal.first.get_by_role("button", name=words["accept"]).click()
    assert words["accepted"] in page.locator(f"#{proposal_id}").inner_text()

    # --- a full event: the waitlist, then the promotion in the inbox -----------------------------
    event = full_event(platform, suffix)
    lena.open(f"/events/{event['id']}")
    lena.page.get_by_role("button", name=words["book"], exact=True).click()
    assert lena.page.locator("#registration-status").is_visible()
    anna.open("/events")
    assert event["title"] in page.inner_text("main")
    anna.check_accessibility()
    page.get_by_role("link", name=event["title"]).click()
    page.locator("#seats").fill("0")  # bad input: at least one seat
    page.get_by_role("button", name=words["waitlist"]).click()
    assert page.locator("#seats").get_attribute("aria-invalid") == "true"
    page.locator("#seats").fill("1")
    page.get_by_role("button", name=words["waitlist"]).click()
    status = page.locator("#registration-status").inner_text()
    assert re.search(r"(Platz|position) 1\b", status), status
    # the time as the mails write it: weekday, the day once, "Uhr" in German, day first in English; the
    # event's own time zone named
    when = page.locator("#when").inner_text()
    assert re.fullmatch(r"\w{2,3}\.?, \d{1,2}\.? \w+ \d{4}, \d{1,2}:\d{2}–\d{1,2}:\d{2}( Uhr)? \(Europe/Berlin\)",
                        when), when
    assert when.endswith(" Uhr (Europe/Berlin)") is (language == "de")
    anna.check_accessibility()
    anna.screenshot("event")
    assert page.get_by_role("link", name=re.compile(r"\.ics")).get_attribute("href").endswith("/calendar.ics")

    # cancelling asks first, on a page of its own that names the event: going back changes nothing
    lena.page.get_by_role("link", name=words["cancel"]).click()
    assert event["title"] in lena.page.locator("#confirm-what").inner_text()
    lena.check_accessibility()
    lena.page.get_by_role("link", name=words["keep"]).click()
    assert lena.page.locator("#registration-status").is_visible()
    lena.page.get_by_role("link", name=words["cancel"]).click()
    lena.page.get_by_role("button", name=words["confirm_cancel"]).click()
    assert lena.page.locator("#registration-status").count() == 0  # cancelled: no registration shown
    anna.reload_until(lambda p: p.locator("#unread-count").count() == 1, message="an unread message")
    anna.open("/inbox")
    anna.reload_until(lambda p: "Workshop" in p.inner_text("main") and
                      re.search(r"Platz frei|place.*free|promoted|nachgerückt|Nachrücker|confirmed|bestätigt",
                                p.inner_text("main"), re.I) is not None,
                      message="the promotion in the inbox")
    # each entry leads to its page: the promotion to the event
    assert page.locator(f"a.inbox-link[href='/events/{event['id']}']").count() >= 1
    assert page.locator("a.inbox-link[href='/contacts']").count() >= 1  # the accepted contact request
    anna.check_accessibility()
    anna.screenshot("inbox")
    unread_before = int(page.locator("#unread-count").inner_text())
    page.get_by_role("button", name=words["mark_read"]).first.click()
    after = page.locator("#unread-count")
    assert after.count() == 0 or int(after.inner_text()) == unread_before - 1
    anna.open(f"/events/{event['id']}")
    assert re.search(r"angemeldet|registered", page.locator("#registration-status").inner_text())

    # --- profile, then sign out ------------------------------------------------------------------
    anna.open("/profile")
    assert name in page.inner_text("h1")  # the markup shows as text
    assert page.locator("h1 b").count() == 0
    anna.check_accessibility()
    anna.screenshot("profile")
    page.get_by_role("button", name=words["sign_out"]).click()
    page.wait_for_url("**/signed-out")
    anna.check_accessibility()
    anna.open("/suggestions")
    assert "/sign-in" in page.url
