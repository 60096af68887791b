"""docker-compose.yml and infra/, checked by what this machine can do
without a Docker engine: every service is in the stack with its Dockerfile,
its own database and a health check; every service can be scaled to several
instances without a port clash, the gateway publishing its port for all of
them; the infrastructure is what the code expects."""
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
    assert {"rabbitmq", "postgres"} <= set(entry["depends_on"])


GATEWAY = (ROOT / "infra" / "gateway" / "nginx.conf").read_text()


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_can_be_scaled_without_a_port_clash_and_is_reached_on_its_port_through_the_gateway(service):
    """`docker compose up --scale SERVICE=2` (or deploy.replicas): a replica publishes no host port of
    its own (a second one would find it taken) and has no fixed container name; its database is
    PostgreSQL, what several instances need. The gateway publishes the service's documented port and
    passes it on to the service's name, which Docker's DNS answers with every replica, re-resolved."""
    entry, port = COMPOSE["services"][service], DEFAULT_PORTS[service]
    assert "ports" not in entry and "container_name" not in entry
    assert str(port) in [str(exposed) for exposed in entry["expose"]]
    assert entry["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert entry.get("deploy", {}).get("replicas", 1) >= 1
    gateway = COMPOSE["services"]["gateway"]
    assert f"{port}:{port}" in gateway["ports"] and service in gateway["depends_on"]
    assert "./infra/gateway/nginx.conf:/etc/nginx/nginx.conf:ro" in gateway["volumes"]
    server = re.search(rf"server \{{ listen {port}; location / \{{ set \$upstream ([\w-]+):(\d+);\s+"
                       rf"proxy_pass http://\$upstream; \}} \}}", GATEWAY)
    assert server and server.groups() == (service, str(port))


def test_no_two_services_publish_the_same_host_port():
    published = [mapping.split(":")[-2] for entry in COMPOSE["services"].values()
                 for mapping in entry.get("ports", [])]
    assert len(published) == len(set(published)), published
    # Docker's DNS, asked again every few seconds: replicas started later are reached too.
    assert re.search(r"resolver 127\.0\.0\.11 valid=\d+s", GATEWAY)


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
