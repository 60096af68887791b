"""The portal in a real browser: the five services and the mail catcher as processes (SQLite, a
RabbitMQ vhost of the module's own), the portal as a process in front of them, and Debian's
chromium driven by Playwright. axe-core (vendored under ``axe/``) checks each page."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import requests

from verbund.testing import TEST_AUTH_SECRET, ServiceProcess, bearer, free_port, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
AXE = Path(__file__).parent / "axe" / "axe.min.js"
ROOT = Path(__file__).resolve().parents[2]
# Where the flows' screenshots go: .data/screenshots by default, so a test run leaves the tree clean;
# `make screenshots` sends them to docs/screenshots, the README's pictures.
SCREENSHOTS = ROOT / os.environ.get("SCREENSHOTS_DIR", ".data/screenshots")
SERVICES = ("members", "events", "matching", "notifications", "meetings")
PORTAL_SECRET_KEY = "portal-test-secret"
LINK = re.compile(r"(http://\S+/sign-in/[A-Za-z0-9_\-]+)")


class Platform:
    """The running services, the mail catcher and the portal, with what tests need of them."""

    def __init__(self, workdir: Path, amqp_uri: str):
        self.amqp_uri = amqp_uri
        from notifications.testing import MailCatcher

        self.catcher = MailCatcher(workdir / "mail")
        self.portal_port = free_port()
        self.portal_url = f"http://127.0.0.1:{self.portal_port}"
        env = {"SMTP_PORT": str(self.catcher.port), "PORTAL_URL": self.portal_url,
               "EMAIL_RETRY_DELAYS_SECONDS": "1,2",
               # a mail's wait for more of its kind: what the pages show is tested here
               "COALESCE_SECONDS": "1",
               # other members' changed lists: the window itself is tested in matching-service
               "ANNOUNCE_WINDOW_SECONDS": "1",
               # every browser here is 127.0.0.1: the per-client limit (members-service's tests) would
               # refuse the sign-ins of a whole module's people; the per-address limit stays as it is
               "SIGN_IN_LIMIT_PER_CLIENT": "1000"}
        self.services = {service: ServiceProcess(service, amqp_uri, f"sqlite:///{workdir / (service + '.db')}",
                                                 workdir, env) for service in SERVICES}
        # meetings-service ranks whom to meet by matching-service's pair scores
        self.services["meetings"].env["MATCHING_URL"] = self.services["matching"].url
        errors: list[Exception] = []

        def start(process):
            try:
                process.start(timeout=240)  # a busy machine: matching warms up its model first
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(p,)) for p in self.services.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.portal_log = workdir / "portal.log"
        portal_env = {**os.environ, "AUTH_SECRET": TEST_AUTH_SECRET, "VERBUND_DATA_DIR": str(workdir / "data"),
                      "PORTAL_URL": self.portal_url, "PORTAL_PORT": str(self.portal_port),
                      "PORTAL_SECRET_KEY": PORTAL_SECRET_KEY,
                      **{f"{s.upper()}_URL": process.url for s, process in self.services.items()}}
        with open(self.portal_log, "ab") as log:
            self.portal = subprocess.Popen([sys.executable, "-m", "verbund_portal.app"], env=portal_env,
                                           stdout=log, stderr=subprocess.STDOUT)
        if errors:
            self.close()
            raise errors[0]

        def portal_ready():
            assert self.portal.poll() is None, self.portal_log.read_text()
            try:
                return requests.get(f"{self.portal_url}/health", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(portal_ready, timeout=60, interval=0.2, message="the portal to listen")

    def url(self, service: str) -> str:
        return self.services[service].url

    def sign_in_link(self, email: str, count: int = 1) -> str:
        """The link of the ``count``-th sign-in mail to ``email``, read from the mail catcher."""
        def found():
            links = []
            for mail in self.catcher.mails(to=email):
                body = mail.get_body(preferencelist=("plain",)).get_content()
                links += LINK.findall(body)
            return links[count - 1] if len(links) >= count else None

        return wait_for(found, timeout=30, interval=0.2, message=f"sign-in mail no. {count} to {email}")

    def register_member(self, **profile) -> dict:
        response = requests.post(f"{self.url('members')}/members", json=profile, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()

    def schedule_event(self, **body) -> dict:
        response = requests.post(f"{self.url('events')}/events", json=body, headers=bearer("admin", subject="tests"),
                                 timeout=10)
        assert response.status_code == 201, response.text
        return response.json()

    def close(self):
        if getattr(self, "portal", None) and self.portal.poll() is None:
            self.portal.terminate()
            self.portal.wait(timeout=20)
        for process in self.services.values():
            process.stop()
        self.catcher.stop()


@pytest.fixture(scope="module")
def platform(module_amqp_uri, tmp_path_factory):
    running = Platform(tmp_path_factory.mktemp("portal"), module_amqp_uri)
    yield running
    running.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make install does it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Person:
    """One person in a browser context of their own (own cookies, own language)."""

    def __init__(self, browser, platform: Platform, language: str):
        # bypass_csp: axe-core is injected as an inline script, which the portal's CSP forbids.
        self.context = browser.new_context(locale={"de": "de-DE", "en": "en-GB"}[language],
                                           extra_http_headers={"Accept-Language": language},
                                           bypass_csp=True, viewport={"width": 1100, "height": 900})
        self.context.set_default_timeout(15000)
        self.page = self.context.new_page()
        self.platform = platform
        self.language = language
        self.checked: list[str] = []

    def open(self, path: str):
        self.page.goto(self.platform.portal_url + path)
        return self.page

    def check_accessibility(self) -> None:
        """axe-core on the page as it is: no serious or critical WCAG 2.1 A/AA violation."""
        self.page.add_script_tag(path=str(AXE))
        result = self.page.evaluate(
            "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',"
            " 'best-practice']}})")
        bad = [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                "nodes": [n["target"] for n in v["nodes"]][:5]}
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, f"{self.page.url}: {bad}"
        self.checked.append(self.page.url)

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}-{self.language}.png"), full_page=True)

    def start_staff_session(self, role: str, association: str | None = None) -> None:
        """A staff session as a person gets one: an admin invites the account (here by API with a token
        of ``verbund.testing``), the invitation mail's link is opened and its button pressed."""
        email = f"{role}-{uuid.uuid4().hex[:8]}@verbund.example"
        body = {"email": email, "name": f"Test {role}", "role": role, "language": self.language,
                **({"association": association} if association else {})}
        made = requests.post(f"{self.platform.url('members')}/staff", json=body,
                             headers=bearer("admin", subject="tests"), timeout=30)
        assert made.status_code == 201, made.text
        self.page.goto(self.platform.sign_in_link(email))
        self.page.get_by_role("button", name=re.compile("Jetzt anmelden|Sign in now")).click()
        self.page.wait_for_url("**/organize/**")
        assert "/sign-in/" not in self.page.url

    def sign_in(self, email: str, count: int = 1, landing: str = "**/suggestions") -> None:
        """Ask for a link on the sign-in page, open the ``count``-th link mailed, press the button."""
        page = self.open("/sign-in")
        page.get_by_label(re.compile("E-Mail-Adresse|E-mail address")).fill(email)
        page.get_by_role("button", name=re.compile("Anmeldelink|sign-in link")).click()
        page.wait_for_url("**/sign-in/sent**")
        link = self.platform.sign_in_link(email, count)
        assert link.startswith(self.platform.portal_url)
        self.page.goto(link)
        self.check_accessibility()
        self.page.get_by_role("button", name=re.compile("Jetzt anmelden|Sign in now")).click()
        self.page.wait_for_url(landing)
        assert "/sign-in/" not in self.page.url  # no secret left in the address bar

    def reload_until(self, predicate, timeout: float = 60, message: str = "the page to show it") -> None:
        """Reload until ``predicate(page)`` holds: the services work asynchronously."""
        def shown():
            self.page.reload()
            return predicate(self.page)

        wait_for(shown, timeout=timeout, interval=1.0, message=message)

    def close(self):
        self.context.close()


@pytest.fixture
def person(browser, platform):
    people: list[Person] = []

    def make(language: str) -> Person:
        people.append(Person(browser, platform, language))
        return people[-1]

    yield make
    for one in people:
        one.close()
