import copy
import hashlib

import pytest

from members import services
from members.schemas import MemberSchema
from verbund.testing import migrated_store, service_api, use_case_store


def valid_member(**overrides) -> dict:
    """What a member sends to register: a realistic automotive supplier."""
    member = {
        "name": "Schwäbische Präzisionsteile GmbH",
        "sector": "automotive",
        "associations": ["automotive-cluster"],
        "region": {"state": "BW", "postcode": "73033", "city": "Göppingen"},
        "size": {"employees": 85, "turnover_eur": 14_000_000},
        "website": "https://praezisionsteile.example",
        "contact": {"name": "Jana Keller", "email": "j.keller@praezisionsteile.example", "language": "de"},
        "offers": [{"label": "Druckguss", "description": "Aluminium-Druckguss bis 20 kg"},
                   {"term": "battery-cell-manufacturing"}],
        "needs": [{"label": "Rückverfolgbarkeit"}, {"label": "Batterietransport"},
                  {"label": "Etwas ganz Eigenes", "description": "free text"}],
        "topics": ["e-mobility", "battery-value-chain"],
        "consent": {"suggest_as_partner": True, "email": True},
    }
    member.update(copy.deepcopy(overrides))
    if "name" in overrides and "contact" not in overrides:
        # Each organisation has its own contact e-mail (a shared one is a 409).
        tag = hashlib.sha256(overrides["name"].encode()).hexdigest()[:10]
        member["contact"] = {**member["contact"], "email": f"kontakt-{tag}@praezisionsteile.example"}
    return member


# members-service as a real process, once per database, shared by a module's tests.
members_api = service_api("members")


@pytest.fixture
def member_input():
    """A factory of valid registration bodies: ``member_input(name=...)``."""
    return valid_member


@pytest.fixture
def store(database_url, amqp_uri):
    """The members database, migrated by Alembic, with its outbox relaying to the real broker."""
    with migrated_store("members", database_url, amqp_uri) as store:
        yield store


@pytest.fixture
def use_cases(tmp_path):
    """The members database on a migrated SQLite file, its events going to a RecordingPublisher
    (``use_cases.relay.publisher``), ``uow.now()`` a FixedClock (``use_cases.clock``): no broker."""
    with use_case_store("members", tmp_path) as store:
        yield store


@pytest.fixture
def register():
    """``register(store, body)``: the register use case on a body as POST /members loads it."""
    def register(store, data: dict) -> dict:
        with store.unit_of_work() as uow:
            return services.register(uow, MemberSchema().load(data))
    return register
