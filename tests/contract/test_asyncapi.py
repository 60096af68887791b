"""docs/asyncapi.yaml: generated from the schemas the code validates with,
current, and valid against the AsyncAPI 3.0.0 specification's JSON Schema
(tests/contract/asyncapi-3.0.0.schema.json, from the @asyncapi/specs package)."""
import json
from pathlib import Path

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from verbund import catalogue
from verbund.asyncapi import render

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
SPEC = Path(__file__).with_name("asyncapi-3.0.0.schema.json")


def test_the_committed_document_is_current():
    assert COMMITTED.read_text(encoding="utf-8") == render(), \
        "docs/asyncapi.yaml is stale: run `.venv/bin/verbund asyncapi`"


def specification() -> Draft7Validator:
    spec = json.loads(SPEC.read_text())
    # The bundled definitions carry their own $id and refer to each other by it.
    resources = [spec, *(d for d in spec.get("definitions", {}).values() if "$id" in d)]
    registry = Registry().with_resources(
        (resource["$id"], Resource.from_contents(resource, default_specification=DRAFT7)) for resource in resources)
    return Draft7Validator(spec, registry=registry)


def test_the_document_is_valid_asyncapi_3():
    errors = sorted(specification().iter_errors(yaml.safe_load(COMMITTED.read_text())),
                    key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def test_every_event_type_has_a_channel_and_a_message():
    document = yaml.safe_load(COMMITTED.read_text())
    assert set(document["channels"]) == set(catalogue.EVENT_TYPES)
    deprecated = {f"{event.name}.v{version}" for event in catalogue.EVENT_TYPES.values()
                  for version in event.deprecated}
    assert set(document["components"]["messages"]) == set(catalogue.EVENT_TYPES) | deprecated


def test_member_events_document_v2_without_the_contact_person_and_v1_as_deprecated():
    document = yaml.safe_load(COMMITTED.read_text())
    schemas = document["components"]["schemas"]
    for name in ("member.registered", "member.updated"):
        contact = schemas[f"{name}.v2"]["properties"]["profile"]["properties"]["contact"]
        assert set(contact["properties"]) == {"language"}
        assert "personal" in schemas[f"{name}.v2"]["properties"]["profile"]["required"]
        assert schemas[f"{name}.v1"]["deprecated"] is True
        assert catalogue.SUNSET in document["components"]["messages"][f"{name}.v1"]["summary"]
        assert set(document["channels"][name]["messages"]) == {name, f"{name}.v1"}
    assert "GET /members/{id}/key" in document["info"]["description"]


def test_broken_documents_are_caught_by_the_specification():
    """The validation above can fail, at the top and deep inside."""
    validator = specification()
    without_title = yaml.safe_load(COMMITTED.read_text())
    without_title["info"].pop("title")
    assert list(validator.iter_errors(without_title))
    wrong_action = yaml.safe_load(COMMITTED.read_text())
    wrong_action["operations"]["receive-member.registered"]["action"] = "publish"  # AsyncAPI 2 wording
    assert list(validator.iter_errors(wrong_action))
