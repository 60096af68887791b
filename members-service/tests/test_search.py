"""Member search on case-folded, NFC search keys, on SQLite and PostgreSQL:
umlauts in any case, decomposed text, and rows written before the keys existed."""
import uuid

import pytest
from sqlalchemy import column, insert, select, table

from members import queries, services
from members.models import Member
from members.schemas import ListQuerySchema
from verbund import envelope, migrations
from verbund.auth import Principal
from verbund.database import make_engine
from verbund.testing import migrated_store

pytestmark = pytest.mark.integration

DECOMPOSED = "Mu\u0308ller Fo\u0308rderba\u0308nder GmbH"  # "u" + COMBINING DIAERESIS, as macOS files names


@pytest.fixture
def store(database_url, amqp_uri):
    with migrated_store("members", database_url, amqp_uri) as store:
        yield store


def found(store, **params) -> list[str]:
    with store.unit_of_work() as uow:
        return [item["name"] for item in queries.search(uow.session, ListQuerySchema().load(params))["items"]]


def test_umlauts_are_found_in_any_case(store, member_input, register):
    register(store, member_input(name="Ärztehaus am See", region={"state": "BW", "postcode": "88662",
                                                                  "city": "Überlingen"}))
    register(store, member_input(name="Ölanalytik-Software GmbH", offers=[{"label": "Ölanalytik-Software"}]))
    register(store, member_input(name="Straßenbau Groß KG", region={"state": "BW", "postcode": "89073",
                                                                    "city": "Ulm"}))
    assert found(store, q="ärztehaus") == found(store, q="ÄRZTEHAUS") == ["Ärztehaus am See"]
    assert found(store, city="Überlingen") == found(store, city="überlingen") == ["Ärztehaus am See"]
    assert found(store, q="ÖLANALYTIK") == found(store, q="Ölanalytik-Software") == ["Ölanalytik-Software GmbH"]
    assert found(store, offers="ölanalytik-software") == found(store, competency="ÖLANALYTIK-SOFTWARE") \
        == ["Ölanalytik-Software GmbH"]
    assert found(store, q="STRASSENBAU GROSS") == ["Straßenbau Groß KG"]  # full case folding: ß is ss
    assert found(store, q="%") == [] and found(store, q="_rztehaus") == []


def test_a_competency_is_found_through_the_vocabularys_synonyms_in_german_and_english(store, member_input, register):
    """"Tracking" is in no member's words, but in the synonyms of the vocabulary's shipment-tracking terms
    ("shipment tracking", "shipment tracking software"): members who offer "Sendungsverfolgung" (linked to
    ``track-and-trace-services``) or the tracking software term, or seek "Sendungsstatus", are found by it,
    and by the German and English words of those terms; free text holding the word is found too."""
    register(store, member_input(name="Elbe Kurier GmbH", needs=[], offers=[{"label": "Sendungsverfolgung"}]))
    register(store, member_input(name="Saale Code GmbH", needs=[], offers=[{"term": "track-and-trace-software"}]))
    register(store, member_input(name="Ostsee Container KG", needs=[],
                                 offers=[{"label": "GPS-Tracking für Container"}]))
    register(store, member_input(name="Vogtland Teile GmbH", offers=[{"label": "Druckguss"}],
                                 needs=[{"label": "Sendungsstatus"}]))
    register(store, member_input(name="Erzgebirge Guss GmbH", needs=[], offers=[{"label": "Druckguss"}]))
    couriers = ["Elbe Kurier GmbH", "Saale Code GmbH", "Ostsee Container KG"]
    assert found(store, competency="Tracking") == found(store, competency="TRACKING") == \
        [*couriers, "Vogtland Teile GmbH"]  # offered or sought
    assert found(store, offers="tracking") == couriers
    assert found(store, needs="Tracking") == ["Vogtland Teile GmbH"]
    assert found(store, competency="track and trace") == ["Elbe Kurier GmbH", "Saale Code GmbH",
                                                          "Vogtland Teile GmbH"]
    assert found(store, offers="Sendungsverfolgung") == ["Elbe Kurier GmbH", "Saale Code GmbH"]
    assert found(store, offers="shipment tracking services") == ["Elbe Kurier GmbH"]
    assert found(store, competency="Druckguss") == ["Vogtland Teile GmbH", "Erzgebirge Guss GmbH"]
    assert found(store, competency="GPS") == []  # short text: a term or a free text whole, not inside words


def test_text_sent_decomposed_is_stored_composed_and_found(store, member_input, register):
    profile = register(store, member_input(name=DECOMPOSED))
    assert profile["name"] == "Müller Förderbänder GmbH"
    assert found(store, q="müller") == found(store, q="MÜLLER FÖRDERBÄNDER") == [profile["name"]]


def test_rows_from_before_the_search_keys_are_backfilled(database_url, amqp_uri):
    # The database as the first release left it, with a member an older version stored decomposed.
    migrations.upgrade("members", database_url, "0001")
    engine = make_engine(database_url)
    now, member_id = envelope.utcnow(), str(uuid.uuid4())
    members = table("members", *(column(name) for name in (
        "id", "version", "organisation_key", "name", "sector", "state", "postcode", "city", "employees",
        "size_category", "contact_name", "contact_email", "contact_language", "consent_suggest", "consent_email",
        "created_at", "updated_at")))
    competencies = table("member_competencies", column("member_id"), column("kind"), column("position"),
                         column("term"), column("label"))
    with engine.begin() as conn:
        conn.execute(insert(members).values(
            id=member_id, version=1, organisation_key="mueller@88662", name=DECOMPOSED,
            sector="automotive", state="BW", postcode="88662", city="U\u0308berlingen", employees=12,
            size_category="micro", contact_name="Jana", contact_email="j@example.org", contact_language="de",
            consent_suggest=True, consent_email=False, created_at=now, updated_at=now))
        conn.execute(insert(competencies).values(member_id=member_id, kind="offer", position=0, term=None,
                                                 label="O\u0308lanalytik"))
    engine.dispose()
    with migrated_store("members", database_url, amqp_uri) as store:  # upgrades to head: adds and fills the keys
        with store.engine.connect() as conn:
            assert conn.execute(select(Member.name_key, Member.city_key)).one() \
                == ("müller förderbänder gmbh", "überlingen")
        assert found(store, q="Müller") == found(store, city="ÜBERLINGEN") == found(store, offers="ölanalytik") \
            == [DECOMPOSED]


def test_a_search_key_is_forgotten_with_the_member(store, member_input, register):
    profile = register(store, member_input(name=f"Löschbar {uuid.uuid4().hex[:6]} GmbH"))
    with store.unit_of_work() as uow:
        services.erase(uow, Principal("admin", "admin"), profile["id"])
    with store.engine.connect() as conn:
        assert conn.execute(select(Member.name_key, Member.city_key).where(Member.id == profile["id"])).one() \
            == (None, None)
