"""The whole flow on the real broker, in a vhost of its own (which outlives the processes):
members register over HTTP at a real members-service, matching-service suggests partners and
proposes a consortium through the event flow, the members answer, and a member that leaves is
forgotten. And the rebuild of an empty read model from members-service over RPC."""
import uuid

import pytest
import requests
from kombu import Connection

from verbund.testing import bearer, wait_for

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")


def registration(name, sector, association, offers, needs, topics, language="de", postcode="70173"):
    return {
        "name": f"{name} {uuid.uuid4().hex[:6]}", "sector": sector, "associations": [association],
        "region": {"state": "BW", "postcode": postcode, "city": "Stuttgart"}, "size": {"employees": 80},
        "contact": {"name": "Kontakt", "email": f"kontakt-{uuid.uuid4().hex[:6]}@example.org", "language": language},
        "offers": offers, "needs": needs, "topics": topics, "consent": {"suggest_as_partner": True, "email": True},
    }


SUPPLIER = registration("Schwäbische Zellwerk GmbH", "automotive", "automotive-cluster",
                        offers=[{"label": "Batteriezellfertigung"}],
                        needs=[{"label": "Rückverfolgbarkeit"}, {"label": "Batterietransport"}],
                        topics=["battery-value-chain"])
IT_HOUSE = registration("TraceSoft GmbH", "it", "it-cluster",
                        offers=[{"label": "traceability system"}, {"label": "MES"}], needs=[],
                        topics=["quality-traceability"], language="en")
CARRIER = registration("Neckar Gefahrgut Logistik GmbH", "logistics", "logistics-network",
                       offers=[{"label": "Transport von Lithiumbatterien"}, {"label": "Gefahrgutlogistik"}],
                       needs=[{"label": "Sendungsverfolgungssoftware"}], topics=["battery-value-chain"])


def register(members, body) -> dict:
    response = requests.post(f"{members.url}/members", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def own(member) -> dict:
    return {"Authorization": f"Bearer {member['access_token']}"}


def test_registered_members_get_explained_suggestions_and_form_a_project(fresh_amqp_uri, start_service, event_tap):
    tap = event_tap("match.suggested", "project.*", uri=fresh_amqp_uri)
    members = start_service("members", amqp=fresh_amqp_uri)
    matching = start_service("matching", amqp=fresh_amqp_uri)
    it, carrier = register(members, IT_HOUSE), register(members, CARRIER)
    supplier = register(members, SUPPLIER)

    def suggested_both():
        events = [e for e in tap.drain() if e["type"] == "match.suggested" and e["subject"] == supplier["id"]]
        return events and len(events[-1]["data"]["suggestions"]) == 2 and events[-1]
    event = wait_for(suggested_both, timeout=30, message="match.suggested for the supplier with both partners")
    by_partner = {s["partner_id"]: s for s in event["data"]["suggestions"]}
    assert set(by_partner) == {it["id"], carrier["id"]}
    [traceability] = [r for r in by_partner[it["id"]]["reasons"] if r["kind"] == "need_met"]
    assert traceability["need"] == "Rückverfolgbarkeit" and traceability["offer"] == "traceability system"
    assert "Ihr Bedarf" in traceability["text"]  # in the supplier's language
    # The IT house hears of the supplier too: its offer is wanted there.
    [for_it] = tap.wait("match.suggested", subject=it["id"], timeout=30)
    assert for_it["data"]["suggestions"][0]["reasons"][0]["kind"] == "offer_wanted"

    def three_member_proposal():
        found = [e for e in tap.drain() if e["type"] == "project.proposed"
                 and len(e["data"]["project"]["members"]) == 3]
        return found and found[-1]["data"]["project"]
    project = wait_for(three_member_proposal, timeout=30, message="a proposal of all three")
    assert project["anchor_id"] == supplier["id"]
    assert {m["sector"] for m in project["members"]} == {"automotive", "it", "logistics"}
    # The members answer with the tokens members-service gave them.
    for member in (supplier, it, carrier):
        response = requests.post(f"{matching.url}/proposals/{project['id']}/responses", json={"response": "accept"},
                                 headers=own(member), timeout=10)
        assert response.status_code == 200, response.text
    [formed] = tap.wait("project.formed", subject=project["id"], timeout=30)
    assert formed["data"]["project"]["status"] == "formed"

    # The IT house leaves: the supplier's suggestions no longer name it, its project is forgotten.
    assert requests.delete(f"{members.url}/members/{it['id']}", headers=own(it), timeout=10).status_code == 204

    def forgotten():
        response = requests.get(f"{matching.url}/members/{supplier['id']}/suggestions", headers=own(supplier),
                                timeout=10)
        return [s["partner_id"] for s in response.json()["suggestions"]] == [carrier["id"]]
    wait_for(forgotten, timeout=30, message="the deleted member to leave the suggestions")
    assert requests.get(f"{matching.url}/proposals/{project['id']}", headers=ADMIN, timeout=10).status_code == 404
    assert requests.get(f"{matching.url}/members/{it['id']}/suggestions", headers=ADMIN,
                        timeout=10).status_code == 404


def test_an_empty_read_model_is_rebuilt_from_members_service(fresh_amqp_uri, start_service, event_tap):
    members = start_service("members", amqp=fresh_amqp_uri)
    registrations = event_tap("member.registered", uri=fresh_amqp_uri)
    it, carrier, supplier = (register(members, body) for body in (IT_HOUSE, CARRIER, SUPPLIER))
    registrations.wait("member.registered", count=3, timeout=20)  # published, so queued for matching
    # Data loss: the events never reach matching.
    with Connection(fresh_amqp_uri) as connection:
        connection.default_channel.queue_delete("matching.events")
    tap = event_tap("match.suggested", uri=fresh_amqp_uri)
    matching = start_service("matching", amqp=fresh_amqp_uri)

    def rebuilt():
        response = requests.get(f"{matching.url}/members/{supplier['id']}/suggestions", headers=ADMIN, timeout=10)
        return response.status_code == 200 and {s["partner_id"] for s in response.json()["suggestions"]}
    assert wait_for(rebuilt, timeout=60, message="suggestions after the rebuild") == {it["id"], carrier["id"]}
    [announced] = tap.wait("match.suggested", subject=supplier["id"], timeout=30)
    assert len(announced["data"]["suggestions"]) == 2
    # No event reached matching (its queue was gone before it started): the RPC rebuild did this.


# Written the way members write: no vocabulary word and no word in common (lexically no match at all).
SHOP = registration("Hohenlohe Karosseriebau GmbH", "automotive", "automotive-cluster",
                    offers=[{"label": "Karosserieteile in Kleinserie"}],
                    needs=[{"label": "Wir brauchen einen Fotografen für unsere Produktbilder"}], topics=[])
STUDIO = registration("Pixelwerk Media Ltd", "it", "it-cluster",
                      offers=[{"label": "product photography"}], needs=[], topics=[], language="en")


def test_the_embedding_model_matches_paraphrases_in_the_running_service(fresh_amqp_uri, start_service):
    members = start_service("members", amqp=fresh_amqp_uri)
    matching = start_service("matching", amqp=fresh_amqp_uri)  # the model is on by default
    assert requests.get(f"{matching.url}/ready", timeout=10).json()["checks"]["semantic"] == "ok"
    studio, shop = register(members, STUDIO), register(members, SHOP)

    def semantic_reason():
        response = requests.get(f"{matching.url}/members/{shop['id']}/suggestions", headers=own(shop), timeout=10)
        suggestions = response.status_code == 200 and response.json()["suggestions"]
        return suggestions and [r for s in suggestions if s["partner_id"] == studio["id"]
                                for r in s["reasons"] if r.get("match") == "semantic"]
    [reason] = wait_for(semantic_reason, timeout=60, message="a semantic match of the paraphrases")
    assert reason["need"] == SHOP["needs"][0]["label"] and reason["offer"] == "product photography"
    assert "passt inhaltlich" in reason["text"]
    # The engine was not rebuilt lexically meanwhile: the model is still in use.
    assert requests.get(f"{matching.url}/ready", timeout=10).json()["checks"]["semantic"] == "ok"
