"""infra/rabbitmq/definitions.json is what the code declares: regenerated
here and compared, then loaded into the real broker, where the services'
own declarations must then succeed (a queue redeclared with other
arguments would be refused)."""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from kombu import Connection

from verbund import broker, catalogue
from verbund.settings import Settings

pytestmark = pytest.mark.integration

DEFINITIONS = Path(__file__).resolve().parents[2] / "infra" / "rabbitmq" / "definitions.json"
DEFAULT_DELAYS = (1000, 5000, 30000)


def test_the_committed_definitions_are_generated_from_the_code(monkeypatch):
    monkeypatch.delenv("RETRY_DELAYS_MS", raising=False)
    assert Settings.from_env("any").retry_delays_ms == DEFAULT_DELAYS
    committed = json.loads(DEFINITIONS.read_text())
    assert committed == broker.definitions(DEFAULT_DELAYS), \
        "stale: regenerate with `.venv/bin/verbund definitions > infra/rabbitmq/definitions.json`"


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl on this machine")
def test_the_definitions_load_and_agree_with_the_services_declarations(fresh_amqp_uri):
    vhost = unquote(fresh_amqp_uri.rsplit("/", 1)[1])
    document = broker.definitions(DEFAULT_DELAYS, vhost=vhost)
    # The broker node reads the file itself, as its own user: a readable file outside pytest's private tmp.
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(document, file)
        file.flush()
        os.chmod(file.name, 0o644)
        loaded = subprocess.run(["rabbitmqctl", "import_definitions", file.name], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr

    with Connection(fresh_amqp_uri) as connection:
        broker.declare_topology(connection)  # what every publisher does
        channel = connection.default_channel
        for service in catalogue.SUBSCRIPTIONS:  # what every subscriber does
            main = broker.main_queue(service)
            for queue in [main, broker.dead_queue(main.name),
                          *(broker.retry_queue(main.name, delay) for delay in DEFAULT_DELAYS)]:
                queue(channel).declare()
            assert main(channel).queue_declare(passive=True).queue == main.name
