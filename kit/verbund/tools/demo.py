"""Demo data for a newcomer's first ten minutes (``verbund up --demo``, run
by ``make run``): members of the three associations and joint events,
registered through the services' own HTTP APIs, as a real user would. It
can run again: what exists already is left as it is."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import requests
import yaml

from verbund import auth
from verbund.settings import data_dir, portal_url


def load() -> dict:
    return yaml.safe_load((resources.files("verbund") / "data" / "demo.yaml").read_text(encoding="utf-8"))


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def seed_members(members_url: str, admin: str, members: list[dict]) -> dict[str, str]:
    """Register every demo member; return name -> member id."""
    ids = {}
    for member in members:
        response = requests.post(f"{members_url}/members", json=member, headers=_bearer(admin), timeout=30)
        if response.status_code == 201:
            ids[member["name"]] = response.json()["id"]
        elif response.status_code == 409:  # seeded before
            found = requests.get(f"{members_url}/members", params={"q": member["name"]}, headers=_bearer(admin),
                                 timeout=30).json()["items"]
            ids[member["name"]] = found[0]["id"]
        else:
            raise RuntimeError(f"demo member {member['name']}: {response.status_code} {response.text}")
    return ids


def seed_staff(members_url: str, admin: str, staff: list[dict]) -> list[dict]:
    """Create the demo staff accounts (each gets its invitation mail); one that exists is left as it is.
    Returns the accounts as given."""
    for account in staff:
        response = requests.post(f"{members_url}/staff", json=account, headers=_bearer(admin), timeout=30)
        if response.status_code not in (201, 409):  # 409: seeded before
            raise RuntimeError(f"demo staff account {account['email']}: {response.status_code} {response.text}")
    return staff


def _event_body(event: dict) -> dict:
    zone = ZoneInfo(event["timezone"])
    day = (datetime.now(zone) + timedelta(days=event["days_from_now"])).date()
    hour, minute = (int(part) for part in event["start"].split(":"))
    starts = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    body = {key: value for key, value in event.items() if key not in ("days_from_now", "start", "hours")}
    body.update(starts_at=starts.isoformat(), ends_at=(starts + timedelta(hours=event["hours"])).isoformat(),
                registration_deadline=(starts - timedelta(days=2)).isoformat())
    return body


def seed_events(events_url: str, admin: str, events: list[dict]) -> dict[str, str]:
    """Schedule every demo event not scheduled yet; return title -> event id."""
    existing = requests.get(f"{events_url}/events", params={"per_page": 500}, timeout=30).json()["items"]
    ids = {event["title"]: event["id"] for event in existing if event["status"] == "scheduled"}
    for event in events:
        if event["title"] in ids:
            continue
        response = requests.post(f"{events_url}/events", json=_event_body(event), headers=_bearer(admin), timeout=30)
        if response.status_code != 201:
            raise RuntimeError(f"demo event {event['title']}: {response.status_code} {response.text}")
        ids[event["title"]] = response.json()["id"]
    return ids


def register(events_url: str, event_id: str, member_ids: list[str], patience: float = 30.0) -> None:
    """Register members for the event; a member events-service has not heard of yet (its
    member.registered still on the way) is asked again for up to ``patience`` seconds."""
    for member_id in member_ids:
        token = auth.issue("member", f"member:{member_id}", member_id=member_id)
        deadline = time.monotonic() + patience
        while True:
            response = requests.post(f"{events_url}/events/{event_id}/registrations", json={"seats": 1},
                                     headers=_bearer(token), timeout=30)
            if response.status_code != 422 or "not known here" not in response.text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if response.status_code not in (201, 409):  # 409: registered before
            raise RuntimeError(f"demo registration: {response.status_code} {response.text}")


def seed(urls: dict[str, str]) -> list[str]:
    """Seed what the running services take; return lines that say where to look."""
    data = load()
    admin = auth.issue("admin", "demo")
    lines = []
    members = seed_members(urls["members"], admin, data["members"])
    first_name, first_id = next(iter(members.items()))
    member_token = auth.issue("member", f"member:{first_id}", member_id=first_id)
    for account in seed_staff(urls["members"], admin, data.get("staff", [])):
        what = "admin" if account["role"] == "admin" else f"organizer of the {account['association']}"
        lines.append(f"demo {what}: sign in at {portal_url()} with the e-mail {account['email']} "
                     f"(the link arrives in the mail folder below)")
    lines.append(f"{len(members)} demo members: curl -H 'Authorization: Bearer {admin}' {urls['members']}/members")
    if "events" in urls:
        events = seed_events(urls["events"], admin, data["events"])
        workshop = next(iter(events.values()))
        register(urls["events"], workshop, list(members.values())[:4])
        lines.append(f"{len(events)} joint events: {urls['events']}/events  (calendar: {urls['events']}/calendar.ics)")
    lines.append(f"as {first_name}: export TOKEN={member_token}")
    if "matching" in urls:
        lines.append(f"  its partner suggestions: curl -H \"Authorization: Bearer $TOKEN\" "
                     f"{urls['matching']}/members/{first_id}/suggestions")
    if "notifications" in urls:
        email = data["members"][0]["contact"]["email"]
        lines.append(f"sign in as {first_name} with the e-mail {email}: in the portal ({portal_url()}), or "
                     f"curl -X POST -H 'Content-Type: application/json' -d '{{\"email\": \"{email}\"}}' "
                     f"{urls['members']}/auth/sign-in-requests; the link arrives in the mail folder "
                     f"{data_dir() / 'mail'}")
        lines.append(f"  its inbox: curl -H \"Authorization: Bearer $TOKEN\" "
                     f"{urls['notifications']}/members/{first_id}/notifications")
        lines.append(f"  the mails sent: {data_dir() / 'mail'}")
    return lines
