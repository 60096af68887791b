"""Schema-driven fuzzing of the notifications API (schemathesis, from the committed
OpenAPI document) against a real process: no 5xx, no hang, answers as documented."""
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

pytestmark = pytest.mark.integration

schema = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "docs" / "openapi" / "notifications.json")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_as_admin(case, running, admin_headers):
    # Rules beyond what a schema can say (unique registrations, unknown ids) refuse some
    # schema-valid input by design, so that one check is off; every other check is on.
    case.call_and_validate(base_url=running("notifications"), headers=admin_headers(case),
                           excluded_checks=[positive_data_acceptance], timeout=30)


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_anonymous(case, running):
    assert case.call(base_url=running("notifications"), timeout=30).status_code < 500
