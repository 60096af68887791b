import json
from pathlib import Path

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verbund import envelope
from verbund.testing import member_profile, member_registered


def test_a_new_event_carries_every_cloudevents_attribute():
    event = member_registered()
    assert set(envelope.REQUIRED) <= set(event)
    assert event["specversion"] == "1.0"
    assert event["dataschema"] == "urn:verbund:schema:member.registered:v1"
    assert event["time"].endswith("Z")
    envelope.validate(event)


def test_data_that_breaks_its_schema_is_refused_at_publish_time():
    profile = member_profile(sector="aerospace")
    with pytest.raises(envelope.InvalidEvent, match="sector"):
        envelope.new_event("member.registered", "/verbund/members", profile["id"], {"profile": profile},
                           version=1)


def test_an_unknown_event_type_is_refused():
    with pytest.raises(envelope.InvalidEvent, match="unknown event type"):
        envelope.new_event("member.promoted", "/verbund/members", "x", {})


@pytest.mark.parametrize("body, reason", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"specversion": "1.0"}', "missing CloudEvents attributes"),
])
def test_loads_says_why_a_body_is_refused(body, reason):
    with pytest.raises(envelope.InvalidEvent, match=reason):
        envelope.loads(body)


def test_a_wrong_schema_version_is_refused():
    event = member_registered()
    event["dataschema"] = "urn:verbund:schema:member.registered:v9"
    with pytest.raises(envelope.InvalidEvent, match="dataschema"):
        envelope.validate(event)


def test_round_trip_through_bytes_keeps_the_event():
    event = member_registered(name="Lagerlogistik Süd GmbH")
    assert envelope.loads(envelope.dumps(event)) == event


# --- the compiled schemas decide as the reference validator does --------------------------------------

def _suggestions() -> dict:
    reason = {"kind": "need_met", "text": "offers battery testing", "need": "battery testing",
              "offer": "battery cell testing", "term": "battery-testing", "strength": 0.9, "match": "term"}
    suggestion = {"partner_id": "m-2", "partner_name": "Zelltest GmbH", "partner_sector": "it", "score": 0.71,
                  "rank": 1, "parts": {"need_coverage": 0.5, "topics": 0.1}, "reasons": [reason]}
    return {"member_id": "m-1", "suggestions": [suggestion, dict(suggestion, partner_id="m-3", rank=2)]}


SAMPLES = {"urn:verbund:schema:member.registered:v1": lambda: member_registered()["data"],
           "urn:verbund:schema:match.suggested:v1": _suggestions}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.sampled_from(
        ["", "x", "it", "automotive", "2026-11-21T08:00:00Z", "not-a-date", "3fa85f64-5717-4562-b3fc-2c963f66afa6"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["id", "x", "name"]), inner,
                                                                max_size=2),
    max_leaves=5)


def _paths(node, path=()):
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _paths(child, (*path, key))


@st.composite
def mutated(draw):
    """A valid sample with one value replaced, removed or added somewhere in it."""
    dataschema = draw(st.sampled_from(sorted(SAMPLES)))
    data = SAMPLES[dataschema]()
    path = draw(st.sampled_from(list(_paths(data))[1:]))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(json_values)
    elif action == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.sampled_from(["extra", "id", "sector", "score"]))] = draw(json_values)
    else:
        parent.append(draw(json_values))
    return dataschema, data


@settings(max_examples=600, deadline=None)
@given(mutated())
def test_the_compiled_check_agrees_with_the_reference_validator(case):
    dataschema, data = case
    reference_accepts = not any(envelope._validator(dataschema).iter_errors(data))
    try:
        envelope._compiled(dataschema)(data)
        compiled_accepts = True
    except fastjsonschema.JsonSchemaValueException:
        compiled_accepts = False
    # Both directions: the compiled check never lets through what the reference refuses,
    # and never refuses what the reference accepts (which would leave the fast path for nothing).
    assert compiled_accepts == reference_accepts
    assert (envelope._schema_error(dataschema, data) is None) == reference_accepts


def test_every_sample_passes_both():
    for dataschema, sample in SAMPLES.items():
        envelope._compiled(dataschema)(sample())
        assert envelope._schema_error(dataschema, sample()) is None


def test_meeting_cancelled_gained_optional_fields_within_v1():
    """``was_accepted`` and ``cause`` were added to meeting.cancelled v1 without a new version: the
    documented example passes, an event published before them still does, a wrong value does not."""
    schema = json.loads((Path(envelope.__file__).parent / "event_schemas" / "meeting.cancelled.v1.json").read_text())
    [example] = schema["examples"]
    event = envelope.new_event("meeting.cancelled", "/verbund/meetings", example["meeting"]["id"], example)
    assert event["dataschema"] == "urn:verbund:schema:meeting.cancelled:v1"
    older = {k: v for k, v in example.items() if k not in ("was_accepted", "cause")}
    envelope.validate({**event, "data": older})
    for field, wrong in (("cause", "withdrawn"), ("was_accepted", "no")):
        with pytest.raises(envelope.InvalidEvent, match=field):
            envelope.validate({**event, "data": {**example, field: wrong}})
