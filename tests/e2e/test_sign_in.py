"""Sign-in by e-mail link from end to end, with members-service and notifications-service as real
processes on the real broker and the real mail catcher: ask for a link, read it in the mail, exchange
it, use the token; and a contact request that reaches the other member's mailbox."""
import re
import uuid

import pytest
import requests

from notifications.testing import MailCatcher
from verbund.testing import ServiceProcess, wait_for

pytestmark = pytest.mark.integration

PORTAL = "https://portal.verbund.example"


@pytest.fixture(scope="module")
def platform(module_amqp_uri, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sign-in")
    catcher = MailCatcher(workdir / "mail")
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(catcher.port), "PORTAL_URL": PORTAL,
           "DISPATCH_INTERVAL_SECONDS": "0.2",
           "COALESCE_SECONDS": "1"}  # what the mails say is tested here; the coalescing window elsewhere
    processes = {service: ServiceProcess(service, module_amqp_uri, f"sqlite:///{workdir / (service + '.db')}",
                                         workdir, env) for service in ("notifications", "members")}
    for process in processes.values():
        process.start()
    yield {service: process.url for service, process in processes.items()}, catcher
    for process in processes.values():
        process.stop()
    catcher.stop()


def register(url, language="de"):
    tag = uuid.uuid4().hex[:8]
    response = requests.post(f"{url}/members", timeout=30, json={
        "name": f"Testfirma {tag} GmbH", "sector": "logistics", "region": {"state": "HH", "postcode": "20457",
                                                                           "city": "Hamburg"},
        "size": {"employees": 20}, "contact": {"name": "Lena Hansen", "email": f"l.hansen-{tag}@example.org",
                                               "language": language},
        "consent": {"suggest_as_partner": True, "email": True}})
    assert response.status_code == 201, response.text
    return response.json()


def links(mail, path="sign-in"):
    return re.findall(re.escape(PORTAL) + "/" + path + r"/([A-Za-z0-9_-]{43})", mail.get_body().get_content())


def test_a_sign_up_gets_the_link_that_confirms_its_address_and_signs_it_in(platform):
    urls, catcher = platform
    member = register(urls["members"])
    [mail] = catcher.wait(1, to=member["contact"]["email"])
    assert mail["Subject"] == "Willkommen bei Verbund: bitte bestätigen Sie Ihre Adresse"
    assert member["name"] in mail.get_body().get_content() and "Registrierung" in mail.get_body().get_content()
    [token] = links(mail)
    exchanged = requests.post(f"{urls['members']}/auth/tokens", json={"sign_in_token": token}, timeout=10)
    assert exchanged.status_code == 200 and exchanged.json()["member_id"] == member["id"]


def test_a_changed_address_is_used_once_confirmed_by_the_link_mailed_to_it(platform):
    urls, catcher = platform
    member = register(urls["members"], language="en")
    old, new = member["contact"]["email"], f"new-{uuid.uuid4().hex[:8]}@example.org"
    catcher.wait(1, to=old)  # the welcome mail
    auth = {"Authorization": f"Bearer {member['access_token']}"}
    changed = requests.patch(f"{urls['members']}/members/{member['id']}", json={"contact": {"email": new}},
                             headers=auth, timeout=10)
    assert changed.status_code == 200 and changed.json()["contact"]["pending_email"] == new

    [confirmation] = catcher.wait(1, to=new)
    assert confirmation["Subject"] == "Please confirm your new e-mail address for Verbund"
    [token] = links(confirmation, "email-confirmation")
    notice = catcher.wait(2, to=old)[-1]
    assert notice["Subject"] == "A change of your organisation's contact address at Verbund was requested"
    assert f"{PORTAL}/profile" in notice.get_body().get_content() and token not in notice.get_body().get_content()
    # Until confirmed, sign-in links go to the old address only.
    requests.post(f"{urls['members']}/auth/sign-in-requests", json={"email": new}, timeout=10)

    confirmed = requests.post(f"{urls['members']}/auth/email-confirmations", json={"token": token}, timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["contact"]["email"] == new and "pending_email" not in confirmed.json()["contact"]
    assert requests.post(f"{urls['members']}/auth/email-confirmations", json={"token": token},
                         timeout=10).status_code == 400
    requests.post(f"{urls['members']}/auth/sign-in-requests", json={"email": new}, timeout=10)
    [_, sign_in] = catcher.wait(2, to=new)  # the one asked for after the confirmation, not the one before
    assert sign_in["Subject"] == "Your sign-in link for Verbund" and len(links(sign_in)) == 1


def test_a_member_signs_in_with_the_link_from_the_mail(platform):
    urls, catcher = platform
    member = register(urls["members"], language="en")
    email = member["contact"]["email"]
    catcher.wait(1, to=email)  # the welcome mail
    asked = requests.post(f"{urls['members']}/auth/sign-in-requests", json={"email": email.upper()}, timeout=10)
    assert asked.status_code == 202 and asked.json() == {"status": "sent"}

    mail = catcher.wait(2, to=email)[-1]
    assert mail["Subject"] == "Your sign-in link for Verbund" and mail["Content-Language"] == "en"
    body = mail.get_body().get_content()
    [token] = re.findall(re.escape(PORTAL) + r"/sign-in/([A-Za-z0-9_-]{43})", body)

    exchanged = requests.post(f"{urls['members']}/auth/tokens", json={"sign_in_token": token}, timeout=10)
    assert exchanged.status_code == 200, exchanged.text
    answer = exchanged.json()
    assert answer["member_id"] == member["id"] and answer["role"] == "member" and answer["language"] == "en"
    own = requests.get(f"{urls['members']}/members/{member['id']}",
                       headers={"Authorization": f"Bearer {answer['token']}"}, timeout=10)
    assert own.status_code == 200 and own.json()["contact"]["email"] == email
    again = requests.post(f"{urls['members']}/auth/tokens", json={"sign_in_token": token}, timeout=10)
    assert again.status_code == 400


def test_an_unknown_address_gets_the_same_answer_and_no_mail(platform):
    urls, catcher = platform
    nobody = f"nobody-{uuid.uuid4().hex[:8]}@example.org"
    asked = requests.post(f"{urls['members']}/auth/sign-in-requests", json={"email": nobody}, timeout=10)
    assert asked.status_code == 202 and asked.json() == {"status": "sent"}
    marker = register(urls["members"])  # a mail asked for after it arrives after it would have
    catcher.wait(1, to=marker["contact"]["email"])
    requests.post(f"{urls['members']}/auth/sign-in-requests", json={"email": marker["contact"]["email"]}, timeout=10)
    catcher.wait(2, to=marker["contact"]["email"])
    assert catcher.mails(to=nobody) == []


def test_the_member_asked_for_contact_gets_a_mail_in_its_language_without_the_message(platform):
    urls, catcher = platform
    a, b = register(urls["members"]), register(urls["members"], language="en")
    wait_for(lambda: requests.get(f"{urls['notifications']}/members/{b['id']}/preferences",
                                  headers={"Authorization": f"Bearer {b['access_token']}"}, timeout=5)
             .json().get("email_address") == b["contact"]["email"], timeout=30, message="B in notifications")
    made = requests.post(f"{urls['members']}/members/{b['id']}/contact-requests",
                         json={"message": "Vertrauliche Nachricht 4711"},
                         headers={"Authorization": f"Bearer {a['access_token']}"}, timeout=10)
    assert made.status_code == 201, made.text
    mail = catcher.wait(2, to=b["contact"]["email"])[-1]  # after the welcome mail
    body = mail.get_body().get_content()
    assert a["name"] in mail["Subject"] and f"{PORTAL}/contacts" in body
    assert "4711" not in body  # the message is read on the platform, not carried in events or mails


def test_an_invited_organizer_signs_in_from_the_invitation_and_later_by_link(platform):
    from verbund.testing import bearer

    urls, catcher = platform
    email = f"olga-{uuid.uuid4().hex[:6]}@it-cluster.example"
    invited = requests.post(f"{urls['members']}/staff", headers=bearer("admin"), timeout=10, json={
        "email": email, "name": "Olga Organa", "role": "organizer", "association": "it-cluster"})
    assert invited.status_code == 201, invited.text
    [mail] = catcher.wait(1, to=email)
    body = mail.get_body().get_content()
    assert mail["Subject"] == "Ihr Zugang zu Verbund" and mail["Content-Language"] == "de"
    assert "Guten Tag Olga Organa" in body and "als Organisator*in (IT-Cluster)" in body and "72 Stunden" in body
    [token] = re.findall(re.escape(PORTAL) + r"/sign-in/([A-Za-z0-9_-]{43})", body)
    answer = requests.post(f"{urls['members']}/auth/tokens", json={"sign_in_token": token}, timeout=10).json()
    assert (answer["role"], answer["association"], answer["staff_id"]) == ("organizer", "it-cluster",
                                                                          invited.json()["id"])
    me = requests.get(f"{urls['members']}/auth/me", headers={"Authorization": f"Bearer {answer['token']}"},
                      timeout=10).json()
    assert (me["name"], me["email"], me["association"]) == ("Olga Organa", email, "it-cluster")

    # Later: a sign-in link like a member's, saying which account it opens.
    requests.post(f"{urls['members']}/auth/sign-in-requests", json={"email": email}, timeout=10).raise_for_status()
    [_, again] = catcher.wait(2, to=email)
    assert "für den Organisator-Zugang im IT-Cluster" in again.get_body().get_content()
