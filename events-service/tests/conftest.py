import copy
import uuid
from datetime import timedelta

import pytest

from verbund import envelope
from verbund.testing import member_registered, migrated_store, service_api


def local_day(days_ahead: int) -> str:
    """A date some days ahead, as YYYY-MM-DD, for wall-clock times in Europe/Berlin."""
    return (envelope.utcnow() + timedelta(days=days_ahead)).date().isoformat()


def valid_event(**overrides) -> dict:
    """What an organizer sends to schedule a joint event: a cross-sector workshop a month ahead."""
    day = local_day(30)
    event = {
        "title": "IT trifft Logistik: KI in der Tourenplanung",
        "description": "Ein Workshop von IT-Cluster und Logistiknetzwerk.",
        "kind": "workshop",
        "organizers": ["it-cluster", "logistics-network"],
        "target_sectors": ["it", "logistics"],
        "topics": ["ai", "Digitale Logistik"],  # an id and a label
        "starts_at": f"{day}T09:00:00",  # wall-clock time in Europe/Berlin
        "ends_at": f"{day}T17:00:00",
        "registration_deadline": None,
        "venue": {"name": "Digital Hub", "address": "Hafenstraße 1", "city": "Hamburg"},
        "online_url": None,
        "capacity": 10,
    }
    event.update(copy.deepcopy(overrides))
    return event


@pytest.fixture
def event_input():
    """A factory of valid event bodies: ``event_input(capacity=2)``."""
    return valid_event


@pytest.fixture
def store(database_url, amqp_uri):
    """The events database (migrated by Alembic) with its outbox relaying to the real broker."""
    with migrated_store("events", database_url, amqp_uri) as store:
        yield store


@pytest.fixture
def known_member(store):
    """Feeds a member.registered event through the inbox into the read model; returns its profile."""
    from events import commands

    def make(**overrides):
        event = member_registered(name=f"Firma {uuid.uuid4().hex[:6]} GmbH", **overrides)
        store.handle_once(event, commands.apply_member_event)
        return event["data"]["profile"]
    return make


# events-service as a real process, once per database, shared by a module's tests.
events_api = service_api("events")
