import copy

import pytest

from verbund.testing import migrated_store, service_api


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
