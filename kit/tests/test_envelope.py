import pytest

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
        envelope.new_event("member.registered", "/verbund/members", profile["id"], {"profile": profile})


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
