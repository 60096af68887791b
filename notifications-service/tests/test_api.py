"""The notifications HTTP API of a real notifications-service process, on
SQLite and PostgreSQL, fed with member events over the real broker."""
import uuid

import pytest
import requests

from notifications import domain
from notifications.testing import joint_event, member, member_deleted, profile_of, scheduled
from verbund import envelope
from verbund.broker import Publisher
from verbund.testing import TEST_AUTH_SECRET, ServiceProcess, Vhost, bearer, wait_for

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")
INTEGRATOR = bearer("integrator", subject="crm-of-it-cluster")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, infrastructure, tmp_path_factory):
    """notifications-service as a real process with a vhost of its own, shared by the module's tests."""
    workdir = tmp_path_factory.mktemp("notifications-api")
    url = f"sqlite:///{workdir / 'notifications.db'}" if request.param == "sqlite" \
        else request.getfixturevalue("postgres").create()
    vhost = Vhost()
    process = ServiceProcess("notifications", vhost.uri, url, workdir,
                             env={"SMTP_PORT": "9", "DIGEST_CHECK_SECONDS": "3600"}).start()
    process.publisher = Publisher(vhost.uri)
    yield process
    process.publisher.close()
    process.stop()
    vhost.delete()


def publish(api, *events):
    for event in events:
        api.publisher.publish(event["type"], envelope.dumps(event), message_id=event["id"])


def known_member(api, **overrides) -> tuple[dict, dict]:
    """A member registered over the broker and seen by the service; its profile and token headers."""
    registered = member(**overrides)
    profile = profile_of(registered)
    publish(api, registered)
    headers = bearer("member", member_id=profile["id"])
    wait_for(lambda: requests.get(f"{api.url}/members/{profile['id']}/preferences", headers=headers,
                                  timeout=5).json().get("email_address") == profile["contact"]["email"],
             timeout=30, message="the member in the read model")
    return profile, headers


def test_health_and_readiness(api):
    assert requests.get(f"{api.url}/health", timeout=5).json() == {"service": "notifications", "status": "ok"}
    assert requests.get(f"{api.url}/ready", timeout=5).json()["ready"] is True


def test_a_member_reads_and_sets_its_preferences(api):
    profile, headers = known_member(api, language="en")
    url = f"{api.url}/members/{profile['id']}/preferences"
    defaults = requests.get(url, headers=headers, timeout=5).json()
    assert defaults["channels"] == {"inbox": True, "email": True, "webhook": True}
    # The policy: news in a weekly digest, what needs the member at once.
    assert defaults["frequency"] == "weekly" and defaults["topics"] is None and defaults["kinds_changed"] == []
    assert defaults["kinds"]["match_suggested"] == "digest" and defaults["kinds"]["project_proposed"] == "immediately"
    assert defaults["effective_language"] == "en"
    kinds = requests.put(url, json={"kinds": {"match_suggested": "inbox", "no_such_kind": "digest",
                                              "event_updated": "sometimes"}}, headers=headers, timeout=5)
    assert kinds.status_code == 422 and set(kinds.json()["fields"]["kinds"]) == {"no_such_kind", "event_updated"}
    kinds = requests.put(url, json={"kinds": {"match_suggested": "inbox"}}, headers=headers, timeout=5)
    assert kinds.status_code == 200 and kinds.json()["kinds"]["match_suggested"] == "inbox"
    changed = requests.put(url, json={"frequency": "weekly", "topics": ["ai", "hydrogen"], "language": "de",
                                      "channels": {"webhook": False}}, headers=headers, timeout=5)
    assert changed.status_code == 200, changed.text
    assert changed.json()["frequency"] == "weekly" and changed.json()["effective_language"] == "de"
    assert requests.get(url, headers=headers, timeout=5).json()["topics"] == ["ai", "hydrogen"]


@pytest.mark.parametrize("body, status, field", [
    ({"language": "fr"}, 422, "language"),
    ({"frequency": "hourly"}, 422, "frequency"),
    ({"topics": ["not-a-topic"]}, 422, "topics"),
    ({"channels": {"inbox": False}}, 422, "channels"),
    ({"unknown": 1}, 422, "unknown"),
])
def test_bad_preferences_get_field_errors(api, body, status, field):
    profile, headers = known_member(api)
    response = requests.put(f"{api.url}/members/{profile['id']}/preferences", json=body, headers=headers, timeout=5)
    assert response.status_code == status and field in response.json()["fields"]


def test_preferences_of_another_member_are_forbidden_and_of_an_erased_one_gone(api):
    mine, my_headers = known_member(api)
    theirs, _ = known_member(api)
    url = f"{api.url}/members/{theirs['id']}/preferences"
    assert requests.put(url, json={"frequency": "daily"}, headers=my_headers, timeout=5).status_code == 403
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers=INTEGRATOR, timeout=5).status_code == 403
    not_json = requests.put(f"{api.url}/members/{mine['id']}/preferences", data=b"{oops",
                            headers={**my_headers, "Content-Type": "application/json"}, timeout=5)
    assert not_json.status_code == 400
    publish(api, member_deleted(theirs["id"]))
    wait_for(lambda: requests.get(url, headers=ADMIN, timeout=5).status_code == 410, timeout=30,
             message="the erasure")


def test_the_inbox_lists_newest_first_filters_unread_and_marks_read(api):
    profile, headers = known_member(api, sector="logistics", topics=["green-logistics"], language="en")
    for title in ("Grüne Logistik I", "Grüne Logistik II", "Grüne Logistik III"):
        publish(api, scheduled(joint_event(title=title, target_sectors=["logistics"], topics=[])))
    url = f"{api.url}/members/{profile['id']}/notifications"
    page = wait_for(lambda: (lambda body: body if body.get("total") == 3 else None)(
        requests.get(url, params={"per_page": 2}, headers=headers, timeout=5).json()), timeout=30,
        message="three inbox entries")
    assert page["unread"] == 3 and len(page["items"]) == 2
    assert all(item["title"].startswith("Invitation: Grüne Logistik") for item in page["items"])
    first = page["items"][0]
    assert first["link"] == f"/events/{first['subject']}"  # the portal page of the event
    # Worded in the language the request asks for (the portal's page language), else the member's own.
    german = {**headers, "Accept-Language": "de-DE,de;q=0.9"}
    in_german = requests.get(url, params={"per_page": 2}, headers=german, timeout=5).json()["items"]
    assert [item["id"] for item in in_german] == [item["id"] for item in page["items"]]
    assert all(item["title"].startswith("Einladung: Grüne Logistik") for item in in_german)
    assert requests.get(url, params={"per_page": 2}, headers={**headers, "Accept-Language": "fr"},
                        timeout=5).json()["items"][0]["title"].startswith("Invitation: ")
    read = requests.post(f"{url}/{first['id']}/read", headers=german, timeout=5)
    assert read.status_code == 200 and read.json()["read"] is True
    assert read.json()["title"].startswith("Einladung: ")
    unread = requests.get(url, params={"unread": "true"}, headers=headers, timeout=5).json()
    assert unread["total"] == 2 and first["id"] not in [item["id"] for item in unread["items"]]
    assert requests.get(url, params={"per_page": 1000}, headers=headers, timeout=5).status_code == 422
    assert requests.post(f"{url}/999999/read", headers=headers, timeout=5).status_code == 404
    other = bearer("member", member_id=str(uuid.uuid4()))
    assert requests.get(url, headers=other, timeout=5).status_code == 403
    assert requests.post(f"{url}/read", headers=headers, timeout=5).json() == {"marked": 2}


def test_webhook_endpoints_are_validated_owned_and_logged(api):
    profile, headers = known_member(api)
    hooks = f"{api.url}/webhooks"
    for body, status, field in [({"url": "http://127.0.0.1:8080/hook"}, 422, "url"),
                                ({"url": "http://192.168.1.20/hook"}, 422, "url"),
                                ({"url": "not a url"}, 422, "url"),
                                ({}, 422, "url")]:
        response = requests.post(hooks, json=body, headers=headers, timeout=5)
        assert response.status_code == status and field in response.json()["fields"], response.text
    # Only an admin may allow a private address, and a member only registers for itself.
    private = {"url": "http://127.0.0.1:8080/hook", "allow_private": True}
    assert requests.post(hooks, json=private, headers=headers, timeout=5).status_code == 403
    assert requests.post(hooks, json={"url": "https://93.184.215.14/h", "member_id": str(uuid.uuid4())},
                         headers=headers, timeout=5).status_code == 403
    created = requests.post(hooks, json={**private, "member_id": profile["id"]}, headers=ADMIN, timeout=5)
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    hook = created.json()
    mine = requests.get(hooks, headers=headers, timeout=5).json()["items"]
    assert [item["id"] for item in mine] == [hook["id"]] and "secret" not in mine[0]
    assert requests.get(f"{hooks}/{hook['id']}", headers=INTEGRATOR, timeout=5).status_code == 404
    paused = requests.patch(f"{hooks}/{hook['id']}", json={"enabled": False}, headers=headers, timeout=5)
    assert paused.status_code == 200 and paused.json()["enabled"] is False
    log = requests.get(f"{hooks}/{hook['id']}/deliveries", headers=headers, timeout=5)
    assert log.status_code == 200 and log.json()["total"] == 0
    assert requests.delete(f"{hooks}/{hook['id']}", headers=headers, timeout=5).status_code == 204
    assert requests.get(f"{hooks}/{hook['id']}", headers=headers, timeout=5).status_code == 404
    crm = requests.post(hooks, json={"url": "https://93.184.215.14/crm", "event_types": ["event.*"]},
                        headers=INTEGRATOR, timeout=5)
    assert crm.status_code == 201 and crm.json()["owner"] == {"role": "integrator", "member_id": None}
    assert requests.post(hooks, json={"url": "https://93.184.215.14/crm"},
                         headers=bearer("organizer", association="it-cluster"), timeout=5).status_code == 403


@pytest.mark.parametrize("url", [
    "http://2130706433:9/x", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/", "http://[::ffff:127.0.0.1]/",
    "http://[::1]/", "http://[fe80::1]/", "http://[fd00::1]/", "http://localhost./", "http://0xA9FEA9FE/",
])
def test_every_spelling_of_a_non_public_webhook_target_is_refused_on_create_and_update(api, url):
    # The service runs under eventlet, whose resolver finds no address for "2130706433": only reading
    # the host as the connection will (inet_aton) catches these before they are stored.
    profile, headers = known_member(api)
    hooks = f"{api.url}/webhooks"
    response = requests.post(hooks, json={"url": url}, headers=headers, timeout=5)
    assert response.status_code == 422 and "url" in response.json()["fields"], response.text
    hook = requests.post(hooks, json={"url": "https://93.184.215.14/hook"}, headers=headers, timeout=5).json()
    response = requests.patch(f"{hooks}/{hook['id']}", json={"url": url}, headers=headers, timeout=5)
    assert response.status_code == 422 and "url" in response.json()["fields"], response.text
    assert requests.get(f"{hooks}/{hook['id']}", headers=headers, timeout=5).json()["url"] == \
        "https://93.184.215.14/hook"  # nothing half-written
    allowed = requests.post(hooks, json={"url": url, "member_id": profile["id"], "allow_private": True},
                            headers=ADMIN, timeout=5)
    assert allowed.status_code == 201, allowed.text  # an admin's permission, as the tests' local receivers use


def test_the_unsubscribe_link_needs_no_login_and_turns_email_off(api):
    profile, headers = known_member(api)
    token = domain.unsubscribe_token(profile["id"], TEST_AUTH_SECRET)
    page = requests.get(f"{api.url}/unsubscribe/{token}", timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"] and "<form" in page.text
    # Opening the page changes nothing; the one-click POST (RFC 8058) does.
    prefs = f"{api.url}/members/{profile['id']}/preferences"
    assert requests.get(prefs, headers=headers, timeout=5).json()["channels"]["email"] is True
    done = requests.post(f"{api.url}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}, timeout=5)
    assert done.status_code == 200
    assert requests.get(prefs, headers=headers, timeout=5).json()["channels"]["email"] is False
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert requests.post(f"{api.url}/unsubscribe/{forged}", timeout=5).status_code == 404


@pytest.mark.parametrize("token", ["abc", "cut-off", "tampered"])
def test_an_invalid_unsubscribe_link_says_so_on_the_page_it_opens(api, token):
    profile, _ = known_member(api)
    valid = domain.unsubscribe_token(profile["id"], TEST_AUTH_SECRET)
    token = {"abc": "abc", "cut-off": valid[:-5], "tampered": valid[:-4] + ("AAAA" if not valid.endswith("AAAA")
                                                                          else "BBBB")}[token]
    for method in ("GET", "POST"):
        page = requests.request(method, f"{api.url}/unsubscribe/{token}", timeout=5)
        assert page.status_code == 404 and "text/html" in page.headers["Content-Type"], method
        assert "<form" not in page.text and "ungültig" in page.text and "invalid" in page.text


def test_a_webhook_url_with_a_space_is_a_422_on_create_and_update(api):
    profile, headers = known_member(api)
    hooks = f"{api.url}/webhooks"
    refused = requests.post(hooks, json={"url": "http://exa mple.com/"}, headers=headers, timeout=5)
    assert refused.status_code == 422 and "RFC 3986" in refused.json()["fields"]["url"][0]
    created = requests.post(hooks, json={"url": "https://93.184.215.14/hook"}, headers=headers, timeout=5).json()
    changed = requests.patch(f"{hooks}/{created['id']}", json={"url": "http://exa mple.com/"}, headers=headers,
                             timeout=5)
    assert changed.status_code == 422 and "url" in changed.json()["fields"]
    assert requests.get(f"{hooks}/{created['id']}", headers=headers, timeout=5).json()["url"] == \
        "https://93.184.215.14/hook"


def test_the_failure_log_is_for_admins(api):
    assert requests.get(f"{api.url}/failures", headers=ADMIN, timeout=5).status_code == 200
    assert requests.get(f"{api.url}/failures", headers=INTEGRATOR, timeout=5).status_code == 403


@pytest.mark.parametrize("outside", [["member.*"], ["#"], ["*.*"], ["event.#"], ["event.*", "member.registered"]])
def test_an_integrators_webhook_stays_within_its_scope(api, outside):
    """A webhook is no way around an integrator's scope: what the broker refuses to bind, the
    webhook refuses to deliver (422 on event_types), on create and on change."""
    hooks = f"{api.url}/webhooks"
    scoped = bearer("integrator", subject=f"crm-{uuid.uuid4().hex[:6]}", events=("event.*",))
    refused = requests.post(hooks, json={"url": "https://93.184.215.14/crm", "event_types": outside},
                            headers=scoped, timeout=5)
    assert refused.status_code == 422, refused.text
    assert "outside your integrator scope" in refused.json()["fields"]["event_types"][0]
    # Without event_types it gets its scope, not every event type.
    hook = requests.post(hooks, json={"url": "https://93.184.215.14/crm"}, headers=scoped, timeout=5)
    assert hook.status_code == 201 and hook.json()["event_types"] == ["event.*"]
    narrower = requests.patch(f"{hooks}/{hook.json()['id']}", json={"event_types": ["event.scheduled"]},
                              headers=scoped, timeout=5)
    assert narrower.status_code == 200 and narrower.json()["event_types"] == ["event.scheduled"]
    wider = requests.patch(f"{hooks}/{hook.json()['id']}", json={"event_types": outside}, headers=scoped, timeout=5)
    assert wider.status_code == 422 and "event_types" in wider.json()["fields"]
    stored = requests.get(f"{hooks}/{hook.json()['id']}", headers=scoped, timeout=5).json()
    assert stored["event_types"] == ["event.scheduled"]  # nothing half-written
    # An integrator of the documented default (every event type) keeps what it had.
    assert requests.post(hooks, json={"url": "https://93.184.215.14/crm", "event_types": outside},
                         headers=INTEGRATOR, timeout=5).status_code == 201
