"""`verbund up`'s rules without processes: how many instances of a service it starts (``--instances``
and the INSTANCES settings) and how its address list lines up."""
import pytest
from environs import EnvError

from verbund.settings import MAX_INSTANCES, instances
from verbund.tools.cli import address_width, parse_instances

SERVICES = ("members", "events", "matching", "notifications")


def test_instances_are_read_per_service():
    assert parse_instances("matching=2, notifications-service=3", SERVICES) == {"matching": 2, "notifications": 3}
    assert parse_instances(None, SERVICES) == {} and parse_instances(" , ", SERVICES) == {}


@pytest.mark.parametrize("count", ["two", "²", "०२", "２", "-1", "1.5", ""])
def test_a_count_in_anything_but_ascii_digits_gets_the_same_clear_message(count):
    with pytest.raises(ValueError) as raised:
        parse_instances(f"matching={count}", SERVICES)
    assert str(raised.value) == f"--instances takes SERVICE=COUNT, e.g. matching=2, not 'matching={count}'"


def test_a_service_named_twice_is_refused_naming_it():
    with pytest.raises(ValueError, match="names 'matching' twice"):
        parse_instances("matching=2,matching=3", SERVICES)
    with pytest.raises(ValueError, match="names 'matching' twice"):
        parse_instances("matching=2,matching-service=2", SERVICES)


@pytest.mark.parametrize("count", ["0", str(MAX_INSTANCES + 1), "1000"])
def test_a_count_outside_the_bounds_is_refused_saying_them(count):
    with pytest.raises(ValueError) as raised:
        parse_instances(f"matching={count}", SERVICES)
    assert str(raised.value) == f"--instances matching={count}: from 1 to {MAX_INSTANCES} instances of a service"


def test_the_bounds_themselves_are_taken():
    assert parse_instances(f"matching=1,events={MAX_INSTANCES},members=02", SERVICES) == {
        "matching": 1, "events": MAX_INSTANCES, "members": 2}


def test_the_instances_settings_follow_the_same_rules(monkeypatch):
    monkeypatch.delenv("MATCHING_INSTANCES", raising=False)
    monkeypatch.delenv("INSTANCES", raising=False)
    assert instances("matching") == 1
    monkeypatch.setenv("INSTANCES", "3")
    assert instances("matching") == 3
    monkeypatch.setenv("MATCHING_INSTANCES", str(MAX_INSTANCES))
    assert instances("matching") == MAX_INSTANCES
    for value in ("²", "०२", "two", "0", str(MAX_INSTANCES + 1)):
        monkeypatch.setenv("MATCHING_INSTANCES", value)
        with pytest.raises(EnvError) as raised:
            instances("matching")
        assert str(raised.value).startswith(f"MATCHING_INSTANCES must be a number of instances from 1 to "
                                            f"{MAX_INSTANCES}:"), raised.value
    monkeypatch.delenv("MATCHING_INSTANCES")
    monkeypatch.setenv("INSTANCES", "०२")
    with pytest.raises(EnvError, match="^INSTANCES must be"):
        instances("matching")


def test_the_address_column_fits_the_longest_name():
    plan = {"members": 1, "matching": 2, "notifications": 2}
    width = address_width(plan)
    names = ["portal", "members", "matching#1", "matching#2", "notifications#1", "notifications#2", "mail catcher"]
    lines = [f"  {name:<{width}} http://127.0.0.1:8001" for name in names]
    assert len({line.index("http://") for line in lines}) == 1  # one column
    assert {line.index("http://") for line in lines} == {2 + len("notifications#1") + 1}  # no wider than needed
    assert address_width({"notifications": MAX_INSTANCES}) == len(f"notifications#{MAX_INSTANCES}")
    assert address_width({"events": 1}) == len("portal")
