import copy
import uuid
from datetime import timedelta

import pytest

from verbund import envelope
from verbund.catalogue import source_of
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
        store.source = source_of("events")  # the events it emits come from events-service
        yield store


@pytest.fixture
def known_member(store):
    """Feeds a member.registered event through the inbox into the read model; returns its profile."""
    from events import services

    def make(**overrides):
        event = member_registered(name=f"Firma {uuid.uuid4().hex[:6]} GmbH", **overrides)
        store.handle(event, services.on_member_event)
        return event["data"]["profile"]
    return make


class RegistrationDesk:
    """Cancels and looks up registrations through the use cases, on a test's store."""

    def __init__(self, store):
        self.store = store

    def cancel(self, event: dict, registration: dict, principal):
        from events import services

        with self.store.unit_of_work() as uow:
            return services.cancel_registration(uow, principal, event["id"], registration["id"])

    def status(self, registration: dict) -> str:
        from events.models import Registration

        with self.store.unit_of_work() as uow:
            return uow.session.get(Registration, registration["id"]).status


@pytest.fixture
def desk(store):
    """``desk.cancel(event, registration, principal)`` and ``desk.status(registration)`` on the test
    module's ``store`` (the broker-backed one, or the use-case store where a module overrides it)."""
    return RegistrationDesk(store)


# events-service as a real process, once per database, shared by a module's tests.
events_api = service_api("events")
