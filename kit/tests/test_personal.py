"""Personal fields encrypted per member (verbund.personal): the JWE format integrators can open with
any JOSE library, the v1 -> v2 profile split, and how long consumers keep keys."""
import json

import pytest

from verbund import envelope, personal
from verbund.testing import member_profile


def v2_event(profile: dict, key: bytes, type_: str = "member.registered") -> dict:
    data = {"profile": personal.conceal(profile, key)}
    if type_ == "member.updated":
        data["changed"] = ["contact"]
    return envelope.new_event(type_, "/verbund/members", profile["id"], data)


def test_a_v2_event_keeps_everything_but_the_contact_person_in_clear():
    profile = member_profile(contact={"name": "Ilse Vogt", "email": "ilse@vogt.example", "language": "en"})
    event = v2_event(profile, personal.new_key())
    body = envelope.dumps(event).decode()
    assert "Ilse" not in body and "vogt.example" not in body
    assert event["dataschema"] == "urn:verbund:schema:member.registered:v2"
    public = event["data"]["profile"]
    assert public["contact"] == {"language": "en"}
    assert {k: v for k, v in public.items() if k not in ("contact", "personal")} == \
        {k: v for k, v in profile.items() if k != "contact"}


def test_the_ciphertext_is_a_standard_jwe_under_the_members_key():
    from joserfc import jwe
    from joserfc.jwk import OctKey

    profile, key = member_profile(), personal.new_key()
    token = personal.conceal(profile, key)["personal"]
    header = json.loads(personal._unb64(token.split(".")[0]))
    assert header == {"alg": "dir", "enc": "A256GCM", "kid": profile["id"], "cty": "application/json"}
    # An integrator opens it with the JWK the key endpoint serves, with a JOSE library of its own.
    opened = jwe.decrypt_compact(token, OctKey.import_key(personal.jwk(profile["id"], key)))
    assert json.loads(opened.plaintext) == {"contact": {"name": profile["contact"]["name"],
                                                        "email": profile["contact"]["email"]}}


def test_consumers_read_v1_and_v2_alike():
    profile, key = member_profile(), personal.new_key()
    v1 = envelope.new_event("member.registered", "/verbund/members", profile["id"], {"profile": profile}, version=1)
    assert v1["dataschema"] == "urn:verbund:schema:member.registered:v1"
    envelope.validate(v1)  # still accepted on consume until the sunset
    assert personal.member_profile(v1, None) == profile
    assert personal.member_profile(v2_event(profile, key, "member.updated"), {profile["id"]: key}.get) == profile


def test_an_erased_key_leaves_no_contact_and_raises_nothing():
    profile = member_profile()
    event = v2_event(profile, personal.new_key())
    revealed = personal.member_profile(event, lambda kid: None)
    assert revealed["contact"] == {"name": None, "email": None, "language": "de"}
    assert revealed["name"] == profile["name"]


def test_a_tampered_or_foreign_ciphertext_is_refused():
    profile, key = member_profile(), personal.new_key()
    event = v2_event(profile, key)
    token = event["data"]["profile"]["personal"]
    head, empty, iv, ciphertext, tag = token.split(".")
    flipped = ciphertext[:-2] + ("A" if ciphertext[-2] != "A" else "B") + ciphertext[-1]
    event["data"]["profile"]["personal"] = ".".join((head, empty, iv, flipped, tag))
    with pytest.raises(personal.UnreadablePersonalData):
        personal.member_profile(event, {profile["id"]: key}.get)
    other = member_profile()
    event["data"]["profile"]["personal"] = personal.conceal(other, key)["personal"]  # another member's kid
    with pytest.raises(personal.UnreadablePersonalData):
        personal.member_profile(event, {profile["id"]: key}.get)


def test_a_v2_event_without_a_key_lookup_is_an_error_not_a_silent_loss():
    profile = member_profile()
    with pytest.raises(LookupError):
        personal.member_profile(v2_event(profile, personal.new_key()), None)


def test_v2_refuses_a_contact_person_in_clear():
    profile = member_profile()
    leaky = {**personal.conceal(profile, personal.new_key()), "contact": profile["contact"]}
    with pytest.raises(envelope.InvalidEvent, match="contact"):
        envelope.new_event("member.registered", "/verbund/members", profile["id"], {"profile": leaky})


def test_keys_are_cached_no_longer_than_the_ttl():
    now = [0.0]
    fetched = []
    cache = personal.KeyCache(ttl=300, clock=lambda: now[0])

    def fetch(kid):
        fetched.append(kid)
        if kid == "erased":
            raise personal.KeyErased(kid)
        return b"k" * 32

    keys = personal.Keys(cache, fetch)
    assert keys("a") == b"k" * 32 and keys("a") == b"k" * 32 and fetched == ["a"]
    now[0] = 299.9
    keys("a")
    assert fetched == ["a"]
    now[0] = 300.0  # expired: fetched again (an erased member's key does not outlive the TTL)
    keys("a")
    assert fetched == ["a", "a"]
    assert keys("erased") is None
    personal.forget(keys, "a")  # member.deleted drops it at once
    keys("a")
    assert fetched == ["a", "a", "erased", "a"]


def test_the_ttl_is_configurable(monkeypatch):
    assert personal.KeyCache().ttl == 300
    monkeypatch.setenv("PERSONAL_KEY_TTL_SECONDS", "30")
    assert personal.KeyCache().ttl == 30


def test_a_jwk_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError):
        personal.key_from_jwk({"kty": "oct", "k": "AAEC"})
    with pytest.raises(ValueError):
        personal.key_from_jwk({"kty": "RSA"})


def test_a_batch_fetches_the_keys_it_needs_at_once_before_it_runs_and_then_asks_nothing():
    """``Keys.prefetch``: one ``fetch_many`` for the keys the batch's member.* v2 events need and the
    cache does not hold; the handlers then decrypt from what was fetched, without another call."""
    profiles = [member_profile() for _ in range(3)]
    keys_of = {p["id"]: personal.new_key() for p in profiles}
    erased = member_profile()
    batch = [v2_event(profiles[0], keys_of[profiles[0]["id"]]),
             v2_event(profiles[1], keys_of[profiles[1]["id"]], "member.updated"),
             envelope.new_event("member.registered", "/verbund/members", profiles[2]["id"],  # v1: no key needed
                                {"profile": profiles[2]}, version=1),
             v2_event(erased, personal.new_key()),
             v2_event(profiles[0], keys_of[profiles[0]["id"]], "member.updated"),  # the same key again
             envelope.new_event("member.deleted", "/verbund/members", profiles[1]["id"],
                                {"id": profiles[1]["id"], "version": 3, "deleted_at": "2026-12-06T10:00:00Z"})]
    assert personal.kids_to_open(batch) == [profiles[0]["id"], profiles[1]["id"], erased["id"]]
    calls = []

    def fetch_many(kids):
        calls.append(list(kids))
        return {kid: keys_of.get(kid) for kid in kids}  # the erased member's key is gone: None

    def fetch(kid):
        raise AssertionError(f"asked for {kid} one by one")

    keys = personal.Keys(personal.KeyCache(ttl=300), fetch, fetch_many)
    prefetched = keys.prefetch(batch)
    assert calls == [[profiles[0]["id"], profiles[1]["id"], erased["id"]]]
    assert personal.member_profile(batch[0], prefetched) == profiles[0]
    assert personal.member_profile(batch[1], prefetched) == profiles[1]
    assert personal.member_profile(batch[3], prefetched)["contact"]["email"] is None
    personal.forget(prefetched, profiles[1]["id"])  # member.deleted in the batch: erased from then on
    assert prefetched(profiles[1]["id"]) is None
    assert calls == [[profiles[0]["id"], profiles[1]["id"], erased["id"]]]  # nothing asked after the prefetch
    # The next batch finds what the cache still holds and fetches only the rest.
    again = keys.prefetch([batch[0], batch[1]])
    assert calls[1:] == [[profiles[1]["id"]]] and again(profiles[0]["id"]) == keys_of[profiles[0]["id"]]


def test_a_batch_whose_keys_cannot_be_fetched_fails_before_it_runs_and_caches_nothing():
    profile, key = member_profile(), personal.new_key()

    def unavailable(kids):
        raise personal.KeyUnavailable("members-service gave no keys for 1 member(s) in 10 s")

    keys = personal.Keys(personal.KeyCache(ttl=300), lambda kid: key, unavailable)
    with pytest.raises(personal.KeyUnavailable):
        keys.prefetch([v2_event(profile, key)])
    assert keys(profile["id"]) == key  # nothing was cached for it: asked afresh


def test_without_a_batch_fetch_the_keys_are_fetched_one_by_one():
    profile, key = member_profile(), personal.new_key()
    asked = []

    def fetch(kid):
        asked.append(kid)
        if kid != profile["id"]:
            raise personal.KeyErased(kid)
        return key

    other = member_profile()
    prefetched = personal.Keys(personal.KeyCache(ttl=300), fetch).prefetch(
        [v2_event(profile, key), v2_event(other, personal.new_key())])
    assert asked == [profile["id"], other["id"]]
    assert prefetched(profile["id"]) == key and prefetched(other["id"]) is None
