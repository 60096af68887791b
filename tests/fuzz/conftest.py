import pytest

from verbund.testing import ServiceProcess


@pytest.fixture(scope="module")
def running(amqp_uri, tmp_path_factory):
    """Start a service process per module; ``running("members")`` gives its URL."""
    started = {}

    def start(service: str) -> str:
        if service not in started:
            workdir = tmp_path_factory.mktemp(service)
            started[service] = ServiceProcess(service, amqp_uri, f"sqlite:///{workdir / 'fuzz.db'}", workdir).start()
        return started[service].url

    yield start
    for process in started.values():
        process.stop()
