"""docker-compose.yml and infra/, checked by what this machine can do
without a Docker engine: every service is in the stack with its Dockerfile,
its own database and a health check; the infrastructure is what the code
expects."""
import re
from pathlib import Path

import pytest
import yaml

from verbund.cli import SERVICES
from verbund.settings import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_in_the_stack_with_its_own_database(service):
    entry = COMPOSE["services"][service]
    assert (ROOT / entry["build"]["dockerfile"]).exists()
    assert entry["environment"]["DATABASE_URL"].endswith(f"/{service}")
    assert f"CREATE DATABASE {service};" in (ROOT / "infra" / "postgres" / "init.sql").read_text()
    assert f"{DEFAULT_PORTS[service]}:{DEFAULT_PORTS[service]}" in entry["ports"]
    assert {"rabbitmq", "postgres"} <= set(entry["depends_on"])


@pytest.mark.parametrize("service", SERVICES)
def test_every_dockerfile_runs_its_service_with_a_health_check(service):
    dockerfile = (ROOT / f"{service}-service" / "Dockerfile").read_text()
    assert f'CMD ["verbund", "run", "{service}"]' in dockerfile
    assert re.search(rf"HEALTHCHECK .*\n.*127\.0\.0\.1:{DEFAULT_PORTS[service]}/ready", dockerfile)


def test_the_broker_loads_the_generated_topology_and_every_dependency_is_healthy_first():
    mounts = " ".join(COMPOSE["services"]["rabbitmq"]["volumes"])
    assert "infra/rabbitmq/definitions.json" in mounts and "infra/rabbitmq/rabbitmq.conf" in mounts
    assert "load_definitions = /etc/rabbitmq/definitions.json" in (ROOT / "infra/rabbitmq/rabbitmq.conf").read_text()
    for name in ("rabbitmq", "postgres"):
        assert COMPOSE["services"][name]["healthcheck"]["test"]
