"""docker-compose.yml and infra/, checked by what this machine can do
without a Docker engine: every service is in the stack with its Dockerfile,
its own database and a health check; the infrastructure is what the code
expects."""
import re
from pathlib import Path

import pytest
import yaml

from verbund.settings import DEFAULT_PORTS
from verbund.tools.cli import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_in_the_stack_with_its_own_database(service):
    entry = COMPOSE["services"][service]
    assert entry["build"]["dockerfile"] == "infra/Dockerfile"  # one recipe, parametrised
    assert entry["build"]["args"] == {"SERVICE": service, "PORT": str(DEFAULT_PORTS[service])}
    assert entry["environment"]["DATABASE_URL"].endswith(f"/{service}")
    assert f"CREATE DATABASE {service};" in (ROOT / "infra" / "postgres" / "init.sql").read_text()
    assert f"{DEFAULT_PORTS[service]}:{DEFAULT_PORTS[service]}" in entry["ports"]
    assert {"rabbitmq", "postgres"} <= set(entry["depends_on"])


def test_one_dockerfile_builds_wheels_and_runs_the_service_it_is_given_as_a_non_root_user_with_a_health_check():
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    builder, runtime = dockerfile.split("\nFROM ${PYTHON}\n")
    assert "AS builder" in builder and "pip wheel" in builder and "COPY ${SERVICE}-service" in builder
    assert "COPY --from=builder /wheels" in runtime and "--no-index" in runtime
    assert re.search(r"^USER verbund$", runtime, re.M) and "useradd" in runtime
    assert re.search(r"HEALTHCHECK .*\n.*127\.0\.0\.1:\$PORT/ready", runtime)
    assert 'exec verbund run \\"$SERVICE\\"' in runtime
    assert not list(ROOT.glob("*-service/Dockerfile"))  # no per-service copies left


def test_the_broker_loads_the_generated_topology_and_every_dependency_is_healthy_first():
    mounts = " ".join(COMPOSE["services"]["rabbitmq"]["volumes"])
    assert "infra/rabbitmq/definitions.json" in mounts and "infra/rabbitmq/rabbitmq.conf" in mounts
    assert "load_definitions = /etc/rabbitmq/definitions.json" in (ROOT / "infra/rabbitmq/rabbitmq.conf").read_text()
    for name in ("rabbitmq", "postgres"):
        assert COMPOSE["services"][name]["healthcheck"]["test"]
