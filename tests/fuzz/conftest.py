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


@pytest.fixture(scope="session")
def admin_headers():
    """``admin_headers(case)``: the admin's token for a generated request, unless schemathesis
    generated the case without or with broken headers on purpose (negative testing): adding the
    token back would make the request it means to be invalid a valid one, which is then accepted."""
    from schemathesis.core.parameters import ParameterLocation

    from verbund.testing import bearer

    def headers(case) -> dict:
        if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
            return {}
        return bearer("admin")

    return headers
