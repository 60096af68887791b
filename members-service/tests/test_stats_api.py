"""GET /stats/members and /stats/contacts through a real members-service process on SQLite and
PostgreSQL, on a database of this module's own: exact figures and who may see which."""
import pytest
import requests

from verbund.stats import month_of
from verbund.testing import bearer

pytestmark = pytest.mark.integration

SEED = [("Nord Guss GmbH", "automotive", ["automotive-cluster"], "SH", 12),
        ("Süd Daten GmbH", "it", ["it-cluster", "automotive-cluster"], "BY", 260),
        ("West Fracht GmbH", "logistics", ["logistics-network"], "NW", 9)]


@pytest.fixture(scope="module")
def seeded(members_api):
    tokens = []
    for index, (name, sector, associations, state, employees) in enumerate(SEED):
        response = requests.post(f"{members_api.url}/members", timeout=10, json={
            "name": name, "sector": sector, "associations": associations,
            "region": {"state": state, "postcode": f"2{index}000", "city": "Stadt"}, "size": {"employees": employees},
            "contact": {"name": "K", "email": f"k{index}@stats.example"}})
        assert response.status_code == 201, response.text
        tokens.append((response.json()["id"], {"Authorization": f"Bearer {response.json()['access_token']}"}))
    (north, north_auth), (south, south_auth), (west, _) = tokens
    for recipient in (south, west):
        asked = requests.post(f"{members_api.url}/members/{recipient}/contact-requests", headers=north_auth,
                              json={"message": "Hallo"}, timeout=10)
        assert asked.status_code == 201, asked.text
        if recipient == south:
            requests.post(f"{members_api.url}/contact-requests/{asked.json()['id']}/accept", headers=south_auth,
                          timeout=10).raise_for_status()
    return members_api


def test_the_cooperations_and_an_associations_figures(seeded):
    admin = bearer("admin")
    totals = requests.get(f"{seeded.url}/stats/members", headers=admin, timeout=10).json()
    month = totals["growth"][-1]["month"]
    assert totals == {"scope": "cooperation", "total": 3, "by_sector": {"automotive": 1, "it": 1, "logistics": 1},
                      "by_state": {"BY": 1, "NW": 1, "SH": 1}, "by_size": {"micro": 1, "small": 1, "large": 1},
                      "sme": 2, "growth": [{"month": month, "joined": 3, "total": 3}]}
    from datetime import UTC, datetime
    assert month == month_of(datetime.now(UTC))
    automotive = requests.get(f"{seeded.url}/stats/members?association=automotive-cluster", headers=admin,
                              timeout=10).json()
    assert (automotive["total"], automotive["by_size"]) == (2, {"small": 1, "large": 1})
    contacts = requests.get(f"{seeded.url}/stats/contacts", headers=admin, timeout=10).json()
    assert contacts == {"scope": "cooperation", "sent": 2, "accepted": 1, "declined": 0, "pending": 1, "expired": 0}
    it = requests.get(f"{seeded.url}/stats/contacts?association=it-cluster", headers=admin, timeout=10).json()
    assert it["sent"] == 0


def test_organizers_see_their_own_association_and_the_totals_only(seeded):
    organizer = bearer("organizer", association="logistics-network")
    for path in ("/stats/members", "/stats/contacts"):
        assert requests.get(f"{seeded.url}{path}", headers=organizer, timeout=10).status_code == 200
        own = requests.get(f"{seeded.url}{path}?association=logistics-network", headers=organizer, timeout=10)
        assert own.status_code == 200 and own.json()["scope"] == "logistics-network"
        other = requests.get(f"{seeded.url}{path}?association=it-cluster", headers=organizer, timeout=10)
        assert other.status_code == 403
        bad = requests.get(f"{seeded.url}{path}?association=nowhere", headers=organizer, timeout=10)
        assert bad.status_code == 422 and "association" in bad.json()["fields"]
        member = requests.get(f"{seeded.url}{path}", headers=bearer("member", member_id="x"), timeout=10)
        assert member.status_code == 403
