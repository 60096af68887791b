"""An integrator's scope: the --events patterns, their validation, and the read regex RabbitMQ
checks binding keys against (no broker here; tests/security/test_integrator_scopes.py uses it)."""
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verbund import auth
from verbund.broker import topic_matches
from verbund.testing import TEST_AUTH_SECRET
from verbund.tools import cli, integrators
from verbund.tools.integrators import parse_scope, scope_regex


def admits(scope: str, binding_key: str) -> bool:
    return re.search(scope_regex(parse_scope(scope)), binding_key) is not None  # re:run is a search, too


@pytest.mark.parametrize("key", ["event.*", "event.scheduled", "event.cancelled", "registration.*",
                                 "registration.confirmed"])
def test_a_scope_admits_binding_keys_inside_it(key):
    assert admits("event.*,registration.*", key)


@pytest.mark.parametrize("key", [
    "#", "*.*", "*", "member.*", "member.registered", "event.#", "#.scheduled", "*.scheduled", "event", "event.a.b",
    "event.*.*", "event.", ".event.x", "", "event.scheduled\n", "xevent.scheduled", "event.scheduledx.y",
    "event.sch*", "event.*#",
])
def test_a_scope_refuses_binding_keys_that_would_widen_it(key):
    assert not admits("event.*,registration.*", key)


@pytest.mark.parametrize("scope, key, expected", [
    ("event.#", "event.#", True), ("event.#", "event", True), ("event.#", "event.a.b", True),
    ("event.#", "event.*.#", True), ("event.#", "#", False), ("event.#", "*.scheduled", False),
    ("#.scheduled", "event.scheduled", True), ("#.scheduled", "#.scheduled", True),
    ("#.scheduled", "#", False), ("#.scheduled", "event.cancelled", False),
    ("*.scheduled", "event.scheduled", True), ("*.scheduled", "#.scheduled", False),
    ("event.scheduled", "event.scheduled", True), ("event.scheduled", "event.*", False),
    ("#", "#", True), ("#", "anything.at.all", True), ("*.*", "*.*", True), ("*.*", "#", False),
])
def test_wildcards_in_the_scope(scope, key, expected):
    assert admits(scope, key) is expected


@pytest.mark.parametrize("text, message", [
    ("", "at least one"), ("  ", "at least one"), (",", "at least one"), ("event.*,,registration.*", "empty"),
    ("event..scheduled", "malformed"), ("Event.*", "malformed"), ("event.sch*", "malformed"),
    ("event.%", "malformed"), ("event.*;member.*", "malformed"), (".*", "malformed"),
    ("foo.*", "unknown event type family 'foo'"), ("events.*", "unknown event type family"),
    ("event.foo", "matches no event type"), ("member.*.*", "matches no event type"),
])
def test_bad_scopes_are_refused_with_a_reason(text, message):
    with pytest.raises(integrators.ScopeError, match=re.escape(message)):
        parse_scope(text)


def test_scopes_are_normalised():
    assert parse_scope(None) == integrators.DEFAULT_SCOPE == ("#",)
    assert parse_scope(" event.* , registration.*,event.*") == ("event.*", "registration.*")
    assert parse_scope("*.registered") == ("*.registered",)


def test_only_a_scope_of_everything_may_read_the_replay_stream():
    assert "verbund\\.replay" in integrators.permissions("crm", parse_scope(None))[2]
    assert "verbund\\.replay" in integrators.permissions("crm", parse_scope("#.#"))[2]
    for scope in ("event.*", "*.*", "member.#"):
        assert "replay" not in integrators.permissions("crm", parse_scope(scope))[2]
    write, read = integrators.topic_permissions(parse_scope("event.*"))
    assert not any(re.search(write, key) for key in ("", "event.scheduled", "#"))  # publishes nothing


# --- the translation, checked against AMQP topic matching itself ------------------------------------

WORDS = ["a", "b", "*", "#"]
# Routing keys over more names than the patterns use: "c" stands for any other name.
ROUTING_KEYS = [".".join(words) for n in range(1, 6) for words in itertools.product("abc", repeat=n)]
patterns = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(".".join)


def matched(pattern: str) -> set[str]:
    return {key for key in ROUTING_KEYS if topic_matches(pattern, key)}


@settings(max_examples=400, deadline=None)
@given(scope=patterns, binding_key=patterns)
def test_an_admitted_binding_key_never_routes_an_event_outside_the_scope(scope, binding_key):
    regex = integrators.scope_regex((scope,))
    if re.search(regex, binding_key):
        assert matched(binding_key) <= matched(scope), f"{binding_key!r} widens {scope!r}"


@settings(max_examples=300, deadline=None)
@given(scope=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4), data=st.data())
def test_the_scope_itself_and_every_narrowing_of_it_is_admitted(scope, data):
    """A '*' may become a name, a '#' any run of names and '*' (or nothing): still inside."""
    narrowed: list[str] = []
    for word in scope:
        if word == "*":
            narrowed.append(data.draw(st.sampled_from(["*", "a", "c"])))
        elif word == "#":
            narrowed.extend(data.draw(st.lists(st.sampled_from(["*", "#", "a", "c"]), max_size=2)))
        else:
            narrowed.append(word)
    regex = integrators.scope_regex((".".join(scope),))
    assert re.search(regex, ".".join(scope))
    if narrowed:
        assert re.search(regex, ".".join(narrowed)), f"{'.'.join(narrowed)!r} within {'.'.join(scope)!r}"


# --- the command line --------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["integrator", "crm-sync", "--events", "foo.*"],
    ["integrator", "crm-sync", "--events", ""],
    ["integrator", "crm-sync", "--events", "event.*,,member.*"],
    ["integrator", "crm-sync", "--events", "event.#.."],
    ["integrator", "Bad Name", "--events", "event.*"],
    ["integrator", "-x"],
    ["token", "integrator", "--events", "nope.*"],
    ["token", "organizer", "--association", "it-cluster", "--events", "event.*"],
    ["token", "admin", "--personal"],
    ["replay", "crm-sync", "--events", "member.", "--since", "1h"],
    ["replay", "crm-sync", "--since", "yesterday"],
])
def test_bad_input_is_a_clear_error_and_exit_code_2(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


@pytest.fixture
def platform_secret(monkeypatch):
    monkeypatch.setenv("AUTH_SECRET", TEST_AUTH_SECRET)


def test_verbund_token_integrator_carries_the_scope(capsys, platform_secret):
    assert cli.main(["token", "integrator", "--subject", "crm-sync", "--events", "event.*, registration.*"]) == 0
    principal = auth.verify(capsys.readouterr().out.strip())
    assert principal.role == "integrator" and principal.subject == "crm-sync"
    assert principal.events == ("event.*", "registration.*") and principal.personal is False


def test_verbund_token_refuses_personal_data_without_a_grant(capsys, platform_secret):
    assert cli.main(["token", "integrator", "--subject", "crm-sync", "--personal"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "verbund integrator NAME --personal" in captured.err


@pytest.mark.parametrize("argv", [["token", "admin"], ["integrator", "crm-sync", "--events", "event.*"],
                                  ["staff", "add", "root@verbund.example", "--name", "Root"]])
def test_without_the_platform_secret_nothing_is_signed(argv, capsys, monkeypatch, tmp_path):
    """A token signed with a secret made up on the spot is void at every service: say so instead."""
    monkeypatch.delenv("AUTH_SECRET", raising=False)
    monkeypatch.setenv("VERBUND_DATA_DIR", str(tmp_path / "elsewhere"))
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no platform secret found" in captured.err and "AUTH_SECRET" in captured.err
    assert not (tmp_path / "elsewhere" / "auth-secret").exists()


def test_a_token_without_scope_reads_every_event_type_and_no_personal_data(capsys, platform_secret):
    assert cli.main(["token", "integrator", "--subject", "old-crm"]) == 0
    principal = auth.verify(capsys.readouterr().out.strip())
    assert principal.events == ("#",) and principal.personal is False
