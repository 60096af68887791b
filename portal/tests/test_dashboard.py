"""The dashboard's figures against a known seeded data set (a platform of this module's own, so the
numbers are exact): members by sector, Bundesland and size class, growth, contact requests, events
with fill rate and waitlist; for an organizer's association and for the cooperation; the CSV; an
organizer asking for another association's figures gets a 403 page. axe-core checks the page."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from verbund.testing import bearer, wait_for

pytestmark = pytest.mark.integration


def profile(name: str, sector: str, state: str, postcode: str, employees: int, association: str) -> dict:
    return {"name": name, "sector": sector, "associations": [association],
            "region": {"state": state, "postcode": postcode, "city": "Ort"}, "size": {"employees": employees},
            "contact": {"name": "Kim Roth", "email": f"kim@{name.lower().replace(' ', '-')}.example", "language": "de"},
            "offers": [{"label": "Druckguss"}], "needs": [], "topics": [],
            "consent": {"suggest_as_partner": True, "email": True}}


@pytest.fixture(scope="module")
def seeded(platform):
    a = platform.register_member(**profile("Kleinteile Zwickau", "automotive", "SN", "08056", 5, "automotive-cluster"))
    b = platform.register_member(**profile("Antriebe Ingolstadt", "automotive", "BY", "85049", 60,
                                           "automotive-cluster"))
    c = platform.register_member(**profile("Software Dresden", "it", "SN", "01067", 300, "automotive-cluster"))
    d = platform.register_member(**profile("Spedition Hannover", "logistics", "NI", "30159", 20, "logistics-network"))
    members = platform.url("members")
    asked = requests.post(f"{members}/members/{d['id']}/contact-requests", json={"message": "Guten Tag!"},
                          headers=bearer("member", member_id=a["id"]), timeout=10)
    assert asked.status_code == 201, asked.text
    answer = requests.post(f"{members}/contact-requests/{asked.json()['id']}/accept",
                           headers=bearer("member", member_id=d["id"]), timeout=10)
    assert answer.status_code == 200, answer.text
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    times = {"starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=2)).isoformat(),
             "kind": "workshop", "venue": {"name": "Halle 1"}}
    full = platform.schedule_event(title="Gießtechnik-Tag", organizers=["automotive-cluster"], capacity=2, **times)
    other = platform.schedule_event(title="Logistik-Frühstück", organizers=["logistics-network"], capacity=10, **times)
    events = platform.url("events")
    for event, member, expected in ((full, a, "confirmed"), (full, b, "confirmed"), (full, c, "waitlisted"),
                                    (other, d, "confirmed")):
        def register(event=event, member=member):
            answer = requests.post(f"{events}/events/{event['id']}/registrations", json={"seats": 1},
                                   headers=bearer("member", member_id=member["id"]), timeout=10)
            # 422 "not known here (yet)": events-service has not read member.registered yet
            return None if answer.status_code == 422 and "(yet)" in answer.text else [answer]  # a 4xx is falsy

        [registered] = wait_for(register, timeout=60, interval=0.2, message=f"events-service knows {member['name']}")
        assert registered.json()["status"] == expected, registered.text
    now = datetime.now(ZoneInfo("Europe/Berlin"))
    german = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
              "November", "Dezember")[now.month - 1]
    return {"month": f"{german} {now.year}"}  # as the page names it, not "2026-12"


def table(page, table_id: str) -> dict[str, list[str]]:
    rows = page.locator(f"table#{table_id} tbody tr")
    return {rows.nth(i).locator("th").inner_text(): [cell.inner_text() for cell in rows.nth(i).locator("td").all()]
            for i in range(rows.count())}


def test_the_dashboard_shows_the_seeded_figures_exactly(platform, person, seeded):
    olga = person("de")
    olga.start_staff_session("organizer", "automotive-cluster")
    page = olga.open("/organize/dashboard")
    assert page.get_by_role("heading", name="Übersicht: Automobilcluster").is_visible()
    assert page.locator("#total-members").inner_text() == "3" and page.locator("#total-sme").inner_text() == "2"
    assert table(page, "by-sector") == {"Automobil": ["2"], "IT": ["1"]}
    assert table(page, "by-state") == {"Sachsen": ["2"], "Bayern": ["1"]}
    assert table(page, "by-size") == {"Kleinst (unter 10)": ["1"], "Klein (10–49)": ["0"],
                                      "Mittel (50–249)": ["1"], "Groß (ab 250)": ["1"]}
    assert table(page, "growth") == {seeded["month"]: ["3", "3"]}
    heads = [page.locator(f"table#{t} thead th").first.inner_text() for t in ("by-sector", "growth", "matching")]
    assert heads == ["Branche", "Monat", "Kennzahl"] and "Posten" not in page.inner_text("main")
    assert table(page, "contacts")["gesendet"] == ["1"] and table(page, "contacts")["angenommen"] == ["1"]
    assert table(page, "events") == {"Gießtechnik-Tag": [table(page, "events")["Gießtechnik-Tag"][0], "2 / 2",
                                                         "100 %", "1"]}
    assert page.locator("svg.chart").count() == 4  # sector, state, size, growth

    def matching_as_the_api_says(p) -> bool:  # matching works asynchronously: the page equals the API's answer
        stats = requests.get(f"{platform.url('matching')}/stats/matching", params={"association": "automotive-cluster"},
                             headers=bearer("organizer", association="automotive-cluster"), timeout=10).json()
        shown = table(p, "matching")  # empty while the page is an error page (a service slow under load)
        return (shown.get("Partnervorschläge gemacht") == [str(stats["suggestions"]["total"])]
                and shown.get("Partnerprojekte vorgeschlagen") == [str(stats["proposals"]["total"])]
                and shown.get("gebildet") == [str(stats["proposals"]["formed"])])

    olga.reload_until(matching_as_the_api_says, timeout=30, message="matching's figures as its API gives them")
    olga.check_accessibility()
    olga.screenshot("organizer-dashboard")

    with page.expect_download() as download:
        page.get_by_role("link", name="Alle Zahlen als CSV").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text(encoding="utf-8-sig")), delimiter=";"))
    assert ["Mitglieder", "gesamt", "3"] in rows and ["Mitglieder nach Branche", "Automobil", "2"] in rows
    assert ["Veranstaltungen: Warteliste", "Gießtechnik-Tag", "1"] in rows

    page.locator("#scope").select_option("cooperation")
    page.get_by_role("button", name="Anzeigen").click()
    assert page.locator("#total-members").inner_text() == "4" and page.locator("#total-sme").inner_text() == "3"
    assert table(page, "by-sector") == {"Automobil": ["2"], "IT": ["1"], "Logistik": ["1"]}
    assert set(table(page, "events")) == {"Gießtechnik-Tag", "Logistik-Frühstück"}

    response = page.goto(f"{platform.portal_url}/organize/dashboard?scope=logistics-network")
    assert response.status == 403 and "Nicht erlaubt" in page.inner_text("main")
