"""docs/openapi/<service>.json: generated from the services' endpoints and
marshmallow schemas, current, valid OpenAPI 3.1, and what the running
service serves."""
import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from verbund.openapi import document
from verbund.tools.cli import SERVICES, _service_class

FOLDER = Path(__file__).resolve().parents[2] / "docs" / "openapi"


@pytest.mark.parametrize("service", SERVICES)
def test_the_committed_document_is_current_and_valid(service):
    committed = json.loads((FOLDER / f"{service}.json").read_text())
    assert committed == document(_service_class(service)), \
        f"docs/openapi/{service}.json is stale: run `.venv/bin/verbund openapi`"
    validate(committed)


@pytest.mark.parametrize("service", SERVICES)
def test_every_endpoint_says_who_may_call_it_and_what_it_answers(service):
    for path, operations in document(_service_class(service))["paths"].items():
        for method, operation in operations.items():
            assert operation["description"].startswith("Roles: "), (method, path)
            assert operation["responses"], (method, path)
