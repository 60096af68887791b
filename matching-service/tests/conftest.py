import copy
import uuid
from pathlib import Path

import pytest
import yaml

from verbund import envelope
from verbund.testing import member_profile, service_api
from verbund.vocabulary import load as load_vocabulary

QUALITY_SET = Path(__file__).parent / "data" / "quality_set.yaml"


def quality_set() -> tuple[dict[str, dict], dict[str, list[str]]]:
    """The quality test set as profiles (member-profile.v1) by key, and the expected partners by key."""
    vocabulary = load_vocabulary()
    members = yaml.safe_load(QUALITY_SET.read_text(encoding="utf-8"))["members"]

    def items(entries, language):
        return [{"term": None, "label": entry[1:], "description": None} if entry.startswith("~")
                else {"term": entry, "label": vocabulary.competencies[entry].label(language), "description": None}
                for entry in entries]

    profiles, expected = {}, {}
    for key, m in members.items():
        state, postcode, city = m["region"]
        employees = m["employees"]
        category = "micro" if employees < 10 else "small" if employees < 50 else "medium" if employees < 250 \
            else "large"
        profiles[key] = member_profile(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"verbund-quality/{key}")), name=m["name"], sector=m["sector"],
            region={"state": state, "postcode": postcode, "city": city},
            size={"employees": employees, "turnover_eur": None, "balance_sheet_eur": None,
                  "sme": category != "large", "category": category},
            contact={"name": "Kontakt", "email": f"{key}@example.org", "language": m["language"]},
            offers=items(m["offers"], m["language"]), needs=items(m["needs"], m["language"]), topics=m["topics"],
            consent={"suggest_as_partner": m.get("consent", True), "email": True})
        expected[key] = m["expected"]
    return profiles, expected


@pytest.fixture(scope="session")
def quality():
    return quality_set()


@pytest.fixture
def profile():
    """A factory of member profiles as events carry them: ``profile(sector="it", offers=[...])``.
    Offers and needs may be given as term ids or "~free text"."""
    vocabulary = load_vocabulary()

    def make(**overrides):
        for kind in ("offers", "needs"):
            if kind in overrides:
                overrides[kind] = [
                    item if isinstance(item, dict) else
                    {"term": None, "label": item[1:], "description": None} if item.startswith("~") else
                    {"term": item, "label": vocabulary.competencies[item].de, "description": None}
                    for item in overrides[kind]]
        return copy.deepcopy(member_profile(**overrides))
    return make


# matching-service as a real process, once per database, shared by a module's tests.
# A vhost of the module's own: the session's holds other modules' member events, which would
# flood the read model and mix with the members these tests arrange.
# Other members' lists at once (ANNOUNCE_WINDOW_SECONDS 0): these tests are about the API, the window
# is test_pending.py's.
matching_api = service_api("matching", amqp_fixture="module_amqp_uri", timeout=120,
                           env={"ANNOUNCE_WINDOW_SECONDS": "0"})


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def engine():
    """A fresh matching engine with the platform's vocabulary."""
    from matching.engine import Engine

    return Engine()


@pytest.fixture
def trio(profile):
    """An automotive supplier needing traceability and battery transport, an IT house and a carrier."""
    return (profile(name="Zellwerk GmbH", sector="automotive", offers=["battery-cell-manufacturing"],
                    needs=["traceability-software", "lithium-battery-transport"]),
            profile(name="TraceSoft GmbH", sector="it", offers=["traceability-software"], needs=[]),
            profile(name="Neckar Gefahrgut GmbH", sector="logistics", offers=["lithium-battery-transport"],
                    needs=["track-and-trace-software"]))


class MemberEvents:
    """member.* events as members-service publishes them (v1), for feeding the use cases."""

    @staticmethod
    def registered(profile):
        return envelope.new_event("member.registered", "/verbund/members", profile["id"], {"profile": profile},
                                  version=1)

    @staticmethod
    def updated(profile, changed):
        return envelope.new_event("member.updated", "/verbund/members", profile["id"],
                                  {"profile": profile, "changed": changed}, version=1)

    @staticmethod
    def deleted(member_id, version):
        return envelope.new_event("member.deleted", "/verbund/members", member_id,
                                  {"id": member_id, "version": version, "deleted_at": "2026-02-01T00:00:00Z"})


@pytest.fixture
def member_events():
    return MemberEvents
