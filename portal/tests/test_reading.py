"""What a new member and an organizer read, in a real browser: an event's times in its own zone,
a cancelled event that says so (no seats, no calendar file, no "register first" on its matchmaking
pages), the notification settings in words, a button's address opened directly, the number of
employees as the page's language writes it, and pages that reflow at 375 px (wide tables scroll in
a named region of their own, a long name breaks) with the admin menu on one line at 1100 px."""
from __future__ import annotations

import re
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import requests

from verbund.testing import bearer

PHONE = {"width": 375, "height": 800}


def _member(suffix: str, name: str | None = None) -> dict:
    return {
        "name": name or f"Spree Logistik {suffix}", "sector": "logistics", "associations": ["logistics-network"],
        "region": {"state": "BE", "postcode": "10115", "city": "Berlin"}, "size": {"employees": 40},
        "contact": {"name": "Ida Kranz", "email": f"ida.{suffix}@spree-logistik.example", "language": "de"},
        "offers": [{"label": "Lagerlogistik"}], "needs": [], "topics": ["digital-logistics"],
        "consent": {"suggest_as_partner": True, "email": True},
    }


def _tokyo_event(platform, suffix: str, **extra) -> dict:
    starts = datetime(2027, 3, 3, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 2:00 in Berlin
    return platform.schedule_event(
        title=f"Japan-Delegation {suffix}", kind="meetup", organizers=["logistics-network"],
        target_sectors=["logistics"], topics=["digital-logistics"], timezone="Asia/Tokyo",
        starts_at=starts.isoformat(), ends_at=starts.replace(hour=14).isoformat(),
        registration_deadline=starts.replace(day=1, hour=18).isoformat(), capacity=30,
        venue={"name": "Tokyo Big Sight", "address": "3-11-1 Ariake", "city": "Tokyo"}, **extra)


def _no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"], page.url


def test_a_member_reads_times_in_the_events_zone_and_a_cancelled_event_as_cancelled(platform, person):
    suffix = uuid.uuid4().hex[:6]
    profile = platform.register_member(**_member(suffix))
    event = _tokyo_event(platform, suffix)
    ida = person("de")
    ida.sign_in(profile["contact"]["email"])

    page = ida.open("/events")
    card = page.locator("article", has_text=event["title"])
    assert "Mi., 3. März 2027, 10:00 Uhr (Asia/Tokyo)" in card.inner_text()  # not 2:00 Berlin time
    page = ida.open(f"/events/{event['id']}")
    assert page.locator("#when").inner_text() == "Mi., 3. März 2027, 10:00–14:00 Uhr (Asia/Tokyo)"
    assert "Mo., 1. März 2027, 18:00 Uhr (Asia/Tokyo)" in page.inner_text("main")  # the deadline too
    page.get_by_role("button", name="Anmelden").click()
    assert "angemeldet" in page.locator("#registration-status").inner_text()
    assert page.get_by_role("link", name=re.compile(r"\.ics")).count() == 1

    cancelled = requests.post(f"{platform.url('events')}/events/{event['id']}/cancel",
                              json={"reason": "Der Flug fällt aus."}, headers=bearer("admin", subject="tests"),
                              timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    page = ida.open(f"/events/{event['id']}")
    main = page.inner_text("main")
    assert "Diese Veranstaltung wurde abgesagt. Der Flug fällt aus." in page.locator("#cancelled").inner_text()
    assert " frei" not in main and "Plätze" not in main  # no "30 von 30 frei" for a cancelled event
    assert page.get_by_role("link", name=re.compile(r"\.ics")).count() == 0
    ida.check_accessibility()
    for path in (f"/events/{event['id']}/agenda", f"/events/{event['id']}/matchmaking"):
        response = page.goto(platform.portal_url + path)
        assert response.status == 410, path
        assert page.locator("h1").inner_text() == "Die Veranstaltung wurde abgesagt"
        assert "Melden Sie sich zuerst an" not in page.inner_text("main")
        assert page.get_by_role("link", name="Zur Veranstaltung").get_attribute("href") == f"/events/{event['id']}"
    ida.check_accessibility()


def test_a_new_members_settings_buttons_and_numbers_read_in_plain_words(platform, person):
    suffix = uuid.uuid4().hex[:6]
    long_name = "Gesellschaftfürangewandtelogistikundlagerverwaltung" * 3 + suffix
    profile = platform.register_member(**_member(suffix, name=long_name))
    ida = person("de")
    ida.sign_in(profile["contact"]["email"])

    # the notification settings: every kind in words; no webhook switch without a webhook
    page = ida.open("/preferences")
    labels = page.locator("fieldset.kinds label").all_inner_texts()
    assert "Jemand bittet Sie um ein Gespräch an einem Matchmaking-Tag" in labels
    assert not [label for label in labels if "_" in label], labels
    assert page.locator("#webhook").count() == 0
    assert page.get_by_role("link", name="Webhook einrichten").count() == 1
    ida.check_accessibility()
    page = ida.open("/webhooks")
    page.locator("#url").fill("https://crm.spree-logistik.example/verbund")
    page.get_by_role("button", name="Webhook hinzufügen").click()
    page = ida.open("/preferences")
    assert page.locator("#webhook").is_checked()

    # a button's address opened directly: a page in the portal's layout, and the way back
    for path, back in (("/inbox/read", "/inbox"), ("/sign-out", "/")):
        response = page.goto(platform.portal_url + path)
        assert response.status == 405
        assert page.locator("h1").inner_text() == "Es wurde nichts geändert"
        assert page.locator("html").get_attribute("lang") == "de"
        assert page.locator(f'main a[href="{back}"]').count() >= 1
    ida.check_accessibility()

    # employees as Germans write them; "1,5" is refused at the field
    page = ida.open("/profile/edit")
    page.locator("#employees").fill("1,5")
    page.get_by_role("button", name="Speichern").click()
    assert page.locator("#employees").get_attribute("aria-invalid") == "true"
    assert "ganze Zahl" in page.locator("#employees-error").inner_text()
    page.locator("#employees").fill("1.200")
    page.get_by_role("button", name="Speichern").click()
    page.wait_for_url("**/profile")
    saved = requests.get(f"{platform.url('members')}/members/{profile['id']}",
                         headers=bearer("admin", subject="tests"), timeout=10).json()
    assert saved["size"]["employees"] == 1200

    # a long name without spaces breaks in the heading instead of widening the phone's page
    page.set_viewport_size(PHONE)
    page = ida.open("/profile")
    assert page.locator("h1").inner_text().startswith("Gesellschaft")
    _no_sideways_scroll(page)


def test_organizer_tables_scroll_in_their_own_region_at_375_px(platform, person):
    suffix = uuid.uuid4().hex[:6]
    for number in range(2):
        _tokyo_event(platform, f"{suffix}-{number} mit einem sehr langen Titel für die Tabelle")
    platform.register_member(**_member(suffix, name="Logistikdienstleistungsgesellschaftmbh" + suffix))
    olga = person("de")
    olga.start_staff_session("organizer", "logistics-network")
    page = olga.page
    page.set_viewport_size(PHONE)
    for path in ("/organize/events", f"/organize/members?name={suffix}", "/organize/dashboard"):
        page = olga.open(path)
        region = page.locator("div.scroll[role=region]").first
        assert region.get_attribute("aria-labelledby") and region.get_attribute("tabindex") == "0", path
        _no_sideways_scroll(page)
        olga.check_accessibility()
    # the event page's addresses to share (long, without spaces) break beside their names
    page = olga.open("/organize/events")
    page.locator("main table a").first.click()
    assert page.locator("#public-page-url").is_visible()
    _no_sideways_scroll(page)


def test_the_admin_menu_stays_on_one_row_at_1100_px_with_sign_out_in_the_bar(platform, person):
    admin = person("en")
    admin.start_staff_session("admin")
    page = admin.open("/admin/health")
    tops = page.evaluate("() => [...document.querySelectorAll('header nav li')]"
                         ".map(li => Math.round(li.getBoundingClientRect().top))")
    assert len(tops) == 7 and len(set(tops)) == 1, tops  # no entry wraps to a second row
    sign_out = page.locator("header .account").get_by_role("button", name="Sign out")
    line = float(page.evaluate("el => parseFloat(getComputedStyle(el).lineHeight) || 0",
                               sign_out.element_handle())) or 27.0
    assert sign_out.bounding_box()["height"] < 1.5 * line  # "Sign out" does not break inside
    assert page.locator("header .account .role").inner_text() == "Admin"
    _no_sideways_scroll(page)
    admin.check_accessibility()


def test_the_question_before_a_long_webhook_address_is_removed_wraps_at_375_px(platform, person):
    """The removal question names the webhook's address; a long one (up to 2000 characters, no spaces) breaks
    inside the text on a phone instead of widening the page so that the buttons scroll out of sight."""
    suffix = uuid.uuid4().hex[:6]
    profile = platform.register_member(**{**_member(suffix), "contact": {
        "name": "Ida Kranz", "email": f"ida.{suffix}@spree-logistik.example", "language": "en"}})
    ida = person("en")
    ida.sign_in(profile["contact"]["email"])
    page = ida.open("/webhooks")
    page.locator("#url").fill(f"https://crm-{suffix}.example/hooks/" + "a" * 1500)
    page.get_by_role("button", name="Add webhook").click()
    assert page.locator("#webhook-secret").inner_text().startswith("whsec_")
    page.set_viewport_size(PHONE)
    page.get_by_role("link", name=re.compile("^Remove")).first.click()
    assert f"crm-{suffix}.example" in page.locator("#confirm-what").inner_text()
    _no_sideways_scroll(page)
    assert page.get_by_role("button", name="Yes, remove the webhook").is_visible()


def test_the_staff_list_with_a_long_name_scrolls_in_its_region_not_the_page_at_375_px(platform, person):
    """The staff table is wider than a phone; it scrolls in its own region, and its visually hidden
    "Aktionen" heading, placed at the table's far end, does not widen the page either."""
    suffix = uuid.uuid4().hex[:6]
    made = requests.post(f"{platform.url('members')}/staff", headers=bearer("admin", subject="tests"), timeout=30,
                         json={"email": f"lang-{suffix}@it-cluster.example", "role": "organizer",
                               "association": "it-cluster", "language": "de",
                               "name": "Maximiliane Wilhelmine von Hohenzollern-Sigmaringen " + suffix})
    assert made.status_code == 201, made.text
    admin = person("de")
    admin.start_staff_session("admin")
    page = admin.page
    page.set_viewport_size(PHONE)
    page = admin.open("/admin/staff")
    assert f"Hohenzollern-Sigmaringen {suffix}" in page.locator("div.scroll[role=region]").inner_text()
    _no_sideways_scroll(page)
