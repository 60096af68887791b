"""Every portal link a notification produces leads to a page of the portal: the action path of
each kind of notification (``notifications.domain.action_path``) and every literal portal path in
the mail templates (both languages) match a route of the portal's Flask app."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from verbund_portal import create_app
from verbund_portal.config import PortalConfig
from werkzeug.exceptions import MethodNotAllowed, NotFound

import notifications
from notifications import domain

TEMPLATES = Path(notifications.__file__).parent / "templates"
# "{{ portal_url }}/events/{{ m.event_id or event_id }}/meetings/{{ m.id }}/outcome"
PORTAL_LINK = re.compile(r"\{\{\s*portal_url\s*\}\}(?P<path>/(?:\{\{.*?\}\}|[^\s\"'<>{])*)")
PLACEHOLDER = re.compile(r"\{\{.*?\}\}")


@pytest.fixture(scope="module")
def urls():
    down = "http://127.0.0.1:9"
    app = create_app(PortalConfig(portal_url="http://localhost:8000", host="127.0.0.1", port=8000,
                                  secret_key="links-test", services={s: down for s in
                                                                     ("members", "events", "matching",
                                                                      "notifications")}))
    return app.url_map.bind("localhost")


def resolves(urls, path: str) -> bool:
    try:
        urls.match(path, method="GET")
    except MethodNotAllowed:
        return False  # a mail's link is opened, never posted
    except NotFound:
        return False
    return True


@pytest.mark.parametrize("kind", sorted(domain.POLICY))
def test_each_kind_links_to_a_portal_page(urls, kind):
    data = {"event": {"id": "e-1"}, "meeting": {"event_id": "e-1"}, "event_id": "e-1"}
    path = domain.action_path(kind, data)
    assert resolves(urls, path), f"{kind} links to {path}, which the portal does not have"


def test_every_link_written_in_a_template_is_a_portal_page(urls):
    found = []
    for template in sorted(TEMPLATES.glob("*/*.txt")):
        for match in PORTAL_LINK.finditer(template.read_text(encoding="utf-8")):
            path = PLACEHOLDER.sub("x", match.group("path")).rstrip(".,;:)")
            found.append(path)
            assert resolves(urls, path), f"{template.name} links to {path}, which the portal does not have"
    assert "/inbox" in found and any(path.endswith("/outcome") for path in found)  # the scan finds links
