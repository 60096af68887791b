"""Schema-driven fuzzing of every service's API (schemathesis, from the committed
OpenAPI documents) against real processes: no 5xx, no hang, answers as documented.

schemathesis parametrises a module-level test per schema, so the tests of each
service are made in a loop below: ``test_<service>_as_admin`` and
``test_<service>_anonymous``, one pair per document.
"""
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
# Schema-violating input must be refused: schemathesis's own list of refusals, plus 414 URI Too Long
# (RFC 9110, 15.5.15), which the WSGI server answers for a request line over 8 KB (a query string of
# several kilobytes) before the service sees it.
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": [
    "400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429", "5xx"]}}})
# A service and the services it needs running: matching's POST /admin/rebuild reads from
# members-service over RPC and answers 503 without it.
SERVICES = {"members": (), "events": (), "matching": ("members",), "notifications": ()}


def _tests_of(service: str, needs: tuple[str, ...]):
    schema = schemathesis.openapi.from_path(DOCS / f"{service}.json", config=CONFIG)

    def as_admin(case, running, admin_headers):
        for other in needs:
            running(other)
        # Rules beyond what a schema can say (unique registrations, unknown ids) refuse some
        # schema-valid input by design, so that one check is off; every other check is on.
        case.call_and_validate(base_url=running(service), headers=admin_headers(case),
                               excluded_checks=[positive_data_acceptance], timeout=30)

    def anonymous(case, running):
        assert case.call(base_url=running(service), timeout=30).status_code < 500

    tests = {}
    for test, examples in ((as_admin, 25), (anonymous, 10)):
        test.__name__ = test.__qualname__ = f"test_{service}_{test.__name__}"
        tests[test.__name__] = schema.parametrize()(
            settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))(test))
    return tests


for _service, _needs in SERVICES.items():
    globals().update(_tests_of(_service, _needs))
