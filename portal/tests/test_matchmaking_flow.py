"""A matchmaking day in real browsers: an organizer sets up the meetings of an event (overlapping
sessions first: the service's error at the form), two members confirmed for it take part, one asks the
other, who accepts and leaves the time to the organizers; the organizer schedules all and publishes;
the member sees the agenda with time and table and downloads the .ics and the PDF (the partner's name in
it, read with pypdf); the organizer's roll-up over the association's matchmaking days (from the dashboard,
with its CSV); the follow-up survey mail's link opens the outcome form, which refuses an answer before
the meeting in plain words; a member of another event gets a 403 page. axe-core checks every new page."""
from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from pypdf import PdfReader

from notifications.rendering import Renderer, context_for
from verbund.testing import bearer, wait_for

pytestmark = pytest.mark.integration


def profile(name: str, sector: str, association: str, email: str, language: str, offers, needs) -> dict:
    return {"name": name, "sector": sector, "associations": [association],
            "region": {"state": "SN", "postcode": "09111", "city": "Chemnitz"}, "size": {"employees": 80},
            "contact": {"name": "Kontakt", "email": email, "language": language},
            "offers": [{"label": o} for o in offers], "needs": [{"label": n} for n in needs],
            "topics": ["battery-value-chain"], "consent": {"suggest_as_partner": True, "email": True}}


def register(platform, event_id: str, member_id: str) -> None:
    """Register a member; events-service learns of a new member from member.registered a moment later (422)."""
    def registered():
        answer = requests.post(f"{platform.url('events')}/events/{event_id}/registrations", json={"seats": 1},
                               headers=bearer("member", member_id=member_id), timeout=10)
        assert answer.status_code in (201, 422), answer.text
        return answer.json() if answer.status_code == 201 else None

    assert wait_for(registered, timeout=60, interval=0.5, message="the registration")["status"] == "confirmed"


def test_a_matchmaking_day_from_set_up_to_agenda(platform, person, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    day = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=30)).date()
    starts = datetime(day.year, day.month, day.day, 8, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    event = platform.schedule_event(
        title=f"Zuliefertag Elektromobilität {suffix}", kind="fair", organizers=["automotive-cluster"],
        target_sectors=["automotive", "it"], topics=["battery-value-chain"], timezone="Europe/Berlin",
        starts_at=starts.astimezone(UTC).isoformat(), ends_at=(starts + timedelta(hours=9)).astimezone(UTC).isoformat(),
        capacity=50, venue={"name": "Messe Chemnitz", "address": "Messeplatz 1", "city": "Chemnitz"})
    other_event = platform.schedule_event(
        title=f"Logistik-Frühstück {suffix}", kind="meetup", organizers=["automotive-cluster"],
        timezone="Europe/Berlin", starts_at=starts.astimezone(UTC).isoformat(),
        ends_at=(starts + timedelta(hours=2)).astimezone(UTC).isoformat(), capacity=10,
        venue={"name": "Hub", "address": None, "city": "Leipzig"})
    guss = platform.register_member(**profile(f"Erzgebirge Guss {suffix}", "automotive", "automotive-cluster",
                                              f"jana.{suffix}@guss.example", "de", ["Druckguss"], ["Datenanalyse"]))
    daten = platform.register_member(**profile(f"Datenwerk Süd {suffix}", "it", "it-cluster",
                                               f"tom.{suffix}@datenwerk.example", "en", ["Datenanalyse"],
                                               ["Druckguss"]))
    outsider = platform.register_member(**profile(f"Außenstehend {suffix}", "automotive", "automotive-cluster",
                                                  f"eva.{suffix}@aussen.example", "de", ["Lackierung"], []))
    register(platform, event["id"], guss["id"])
    register(platform, event["id"], daten["id"])
    register(platform, other_event["id"], outsider["id"])
    date = day.isoformat()

    # --- the organizer sets up the matchmaking; overlapping sessions first ---------------------------
    olga = person("de")
    olga.start_staff_session("organizer", "automotive-cluster")
    page = olga.open(f"/organize/events/{event['id']}")
    page.get_by_role("link", name="Matchmaking").click()
    page.wait_for_url("**/matchmaking")
    olga.check_accessibility()

    page.locator("#sessions-0-starts_at").fill(f"{date}T09:00")
    page.locator("#sessions-0-ends_at").fill(f"{date}T12:00")
    page.locator("#sessions-1-starts_at").fill(f"{date}T11:00")
    page.locator("#sessions-1-ends_at").fill(f"{date}T16:00")
    page.locator("#slot_minutes").fill("30")
    page.locator("#tables").fill("0")
    page.locator("#scheduling_mode").select_option("organizer")
    page.get_by_role("button", name="Einrichtung speichern").click()
    assert page.locator("#error-summary").is_visible()  # 0 tables: one message, the right one
    assert "Bitte geben Sie eine Zahl von 1 bis 1.000 ein." in page.inner_text("main")
    assert "Bitte geben Sie die Zahl der Tische ein." not in page.inner_text("main")
    page.locator("#tables").fill("4")

    def saved_or_error():
        page.get_by_role("button", name="Einrichtung speichern").click()
        # the form calls them Zeitblöcke: so does the error
        return "Zwei Zeitblöcke überschneiden sich" in page.inner_text("main") or None

    # the event may take a moment to reach meetings-service (404 "no joint event … known here")
    wait_for(saved_or_error, timeout=60, interval=1.0, message="the overlap error at the form")
    assert page.locator("#error-summary").is_visible()
    olga.check_accessibility()
    page.locator("#sessions-1-starts_at").fill(f"{date}T13:30")
    page.locator("#breaks-0-starts_at").fill(f"{date}T10:30")
    page.locator("#breaks-0-ends_at").fill(f"{date}T11:00")
    page.get_by_role("button", name="Einrichtung speichern").click()
    assert "Die Einrichtung der Matchmaking-Termine ist gespeichert" in page.inner_text("main")
    assert "10 Zeitfenster" in page.inner_text("#setup-summary") and "4 Tische" in page.inner_text("#setup-summary")
    olga.check_accessibility()

    # --- two members take part; one asks the other ---------------------------------------------------
    jana = person("de")
    jana.sign_in(guss["contact"]["email"])
    page = jana.open(f"/events/{event['id']}")
    jana.reload_until(lambda p: p.locator("#matchmaking-heading").count() == 1, message="the matchmaking section")
    jana.check_accessibility()
    page.get_by_role("button", name="Am Matchmaking teilnehmen").click()
    page.goto(f"{platform.portal_url}/events/{event['id']}/matchmaking")
    assert "Sie nehmen am Matchmaking teil." in page.inner_text("#participation-status")
    assert page.locator("#slot-0").is_checked()

    tom = person("en")
    tom.sign_in(daten["contact"]["email"])
    page = tom.open(f"/events/{event['id']}")
    tom.reload_until(lambda p: p.locator("#matchmaking-heading").count() == 1, message="the matchmaking section")
    page.get_by_role("button", name="Take part in the matchmaking").click()
    page.goto(f"{platform.portal_url}/events/{event['id']}/matchmaking")
    page.locator("#slot-0").uncheck()  # busy in the first slot
    page.get_by_role("button", name="Save my times").click()
    assert "Your times are saved." in page.inner_text("main")
    assert not page.locator("#slot-0").is_checked()
    tom.check_accessibility()

    page = jana.open(f"/events/{event['id']}/matchmaking")
    jana.reload_until(lambda p: daten["name"] in p.inner_text("#candidates"), message="the partner among candidates")
    assert "Stärke" not in page.inner_text("#candidates") and "%" not in page.inner_text("#candidates")
    jana.check_accessibility()
    page.get_by_role("link", name=f"{daten['name']} um ein Treffen bitten").click()
    jana.check_accessibility()
    page.locator("#message").fill("Wir suchen Datenanalyse für unsere Druckgusslinie – 30 Minuten?")
    page.get_by_role("button", name="Anfrage senden").click()
    assert f"Ihre Anfrage ist an {daten['name']} gegangen" in page.inner_text("main")
    assert "Wartet auf Antwort" in page.inner_text("#requests-section")

    # --- the other accepts and leaves the time to the organizers -------------------------------------
    page = tom.open(f"/events/{event['id']}/matchmaking")
    card = page.locator(".card", has_text=f"{guss['name']} asks you")
    assert "Druckgusslinie" in card.inner_text()
    tom.check_accessibility()
    card.get_by_role("button", name="Accept").click()
    assert "You have accepted the meeting." in page.inner_text("main")
    assert "the organizers will give it a time" in page.inner_text("#requests-section")

    # --- the organizer schedules all and publishes ----------------------------------------------------
    page = olga.open(f"/organize/events/{event['id']}/matchmaking/schedule")
    olga.check_accessibility()
    # one accepted meeting, in the singular
    assert "1 angenommenes Treffen, davon 1 ohne Zeit; 0 Anfragen warten auf Antwort." in page.inner_text(
        "#schedule-figures")
    page.get_by_role("button", name="Alle einplanen").click()
    assert "1 von 1 Treffen haben eine Zeit und einen Tisch" in page.inner_text("main")
    grid = page.inner_text("#grid")
    assert guss["name"] in grid and daten["name"] in grid
    assert "Keine." in page.inner_text("#conflicts")
    page.get_by_role("button", name="Endgültig veröffentlichen").click()
    assert "Der endgültige Zeitplan ist veröffentlicht" in page.inner_text("main")
    olga.check_accessibility()
    olga.screenshot("organizer-matchmaking-schedule")
    page = olga.open(f"/organize/events/{event['id']}/matchmaking/report")
    olga.check_accessibility()
    assert re.search(r"Angenommen\s+1", page.inner_text("#figures"))
    assert re.search(r"Strittig \(eine Seite sagt, es fand statt, die andere nicht\)\s+0", page.inner_text("#figures"))
    # 1 of 10 slots × 4 tables, as a German writes a percentage
    assert re.search(r"1 von 40 Tisch-Zeitfenstern belegt \(2,5\s%\)\.", page.inner_text("#occupancy"))
    with page.expect_download() as download:
        page.get_by_role("link", name="Kennzahlen als CSV").click()
    assert "accepted" in download.value.path().read_text(encoding="utf-8-sig").splitlines()[0]
    assert ",no_show,disputed," in download.value.path().read_text(encoding="utf-8-sig").splitlines()[0]

    # --- the roll-up over the association's matchmaking days, from the dashboard ------------------------
    page = olga.open("/organize/dashboard")
    page.locator("#matchmaking-figures").click()
    page.wait_for_url("**/organize/matchmaking*")
    olga.check_accessibility()
    row = page.locator("#rollup-events tbody tr", has_text=event["title"]).inner_text().split()
    assert row[-10:] == ["1", "1", "1", "0", "0", "0", "0", "0", "0", "0"]  # requests, accepted, scheduled, …
    assert "Kooperationsfälle" in page.inner_text("#rollup-totals")
    with page.expect_download() as download:
        page.get_by_role("link", name="Kennzahlen als CSV").click()
    lines = download.value.path().read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("event_id,") and lines[-1].startswith("total,")

    # --- the participant's agenda, .ics and PDF --------------------------------------------------------
    page = jana.open(f"/events/{event['id']}/agenda")
    jana.check_accessibility()
    row = page.inner_text("#agenda tbody")
    assert daten["name"] in row and "Tisch 1" in row and "Bestätigt" in row
    assert "Endgültiger Zeitplan." in page.inner_text("#published")
    jana.screenshot("participant-matchmaking-agenda")
    with page.expect_download() as download:
        page.get_by_role("link", name="In meinen Kalender übernehmen (.ics)").click()
    ics = download.value.path().read_text()
    assert "BEGIN:VEVENT" in ics and "STATUS:CONFIRMED" in ics
    with page.expect_download() as download:
        page.get_by_role("link", name="Druckversion (PDF)").click()
    content = download.value.path().read_bytes()
    assert content.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages)
    assert daten["name"] in text and "Tisch 1" in text and "Zuliefertag Elektromobilität" in text

    # --- after the meeting: the outcome form (before its end: refused in plain words) ------------------
    meeting_id = requests.get(
        f"{platform.url('meetings')}/events/{event['id']}/members/{guss['id']}/agenda",
        headers=bearer("member", member_id=guss["id"]), timeout=10).json()["items"][0]["id"]
    # the follow-up survey mail (notifications-service renders it) links to this page
    survey = {"member_id": guss["id"], "event_id": event["id"], "context": {
        "event": {"id": event["id"], "title": event["title"], "timezone": "Europe/Berlin"},
        "names": {daten["id"]: daten["name"]}}, "meetings": [{
            "id": meeting_id, "event_id": event["id"], "requester_id": guss["id"], "recipient_id": daten["id"],
            "status": "accepted", "slot": 0, "starts_at": None, "ends_at": None, "table": 1, "version": 3}]}
    mail = Renderer(portal_url=platform.portal_url).render(
        "meeting_survey", "de", context_for("meeting.survey", survey, "de"),
        footer={"recipient_name": None, "unsubscribe_url": "u"})
    [link] = re.findall(rf"{re.escape(platform.portal_url)}/\S+/outcome", mail.text)
    page = jana.open(link.removeprefix(platform.portal_url))
    assert page.locator("form").get_by_label("Verhandlung begonnen").count() == 1  # the form, signed in
    jana.check_accessibility()
    page.get_by_label("Verhandlung begonnen").check()
    page.get_by_role("button", name="Antwort speichern").click()
    assert "Sie können sagen, wie es war, sobald das Treffen vorbei ist." in page.inner_text("#error-summary")
    jana.check_accessibility()

    # --- a member of another event: a 403 page, not a crash -----------------------------------------
    eva = person("de")
    eva.sign_in(outsider["contact"]["email"])
    page = eva.open(f"/events/{event['id']}/matchmaking")
    assert page.locator("h1").inner_text() == "Nicht erlaubt"
    eva.check_accessibility()
    response = eva.page.request.get(f"{platform.portal_url}/events/{event['id']}/agenda")
    assert response.status == 403
    response = eva.page.request.get(f"{platform.portal_url}/organize/events/{event['id']}/matchmaking")
    assert response.status == 403


def _api(platform, method, path, headers, **kwargs):
    return requests.request(method, f"{platform.url('meetings')}{path}", headers=headers, timeout=10, **kwargs)


def test_members_pick_and_move_times_both_have_free_and_the_organizer_sees_why_one_was_left_out(platform, person):
    """Participants schedule themselves: the accept form offers only times both have free (meetings-service's
    free-slots), the asker moves the meeting to another such time; a meeting without a common time is left
    out by "schedule all" and the organizer reads why, with both organisations' names."""
    suffix = uuid.uuid4().hex[:6]
    day = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=40)).date()
    starts = datetime(day.year, day.month, day.day, 8, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    event = platform.schedule_event(
        title=f"Partnertag {suffix}", kind="fair", organizers=["automotive-cluster"], timezone="Europe/Berlin",
        starts_at=starts.astimezone(UTC).isoformat(), ends_at=(starts + timedelta(hours=9)).astimezone(UTC).isoformat(),
        capacity=50, venue={"name": "Messe Chemnitz", "address": "Messeplatz 1", "city": "Chemnitz"})
    event_id, date = event["id"], day.isoformat()
    organizer = bearer("organizer", association="automotive-cluster")
    body = {"sessions": [{"starts_at": f"{date}T09:00:00", "ends_at": f"{date}T12:00:00"}], "breaks": [],
            "slot_minutes": 30, "tables": 3, "scheduling_mode": "participants"}
    wait_for(lambda: _api(platform, "PUT", f"/events/{event_id}/meetings/setup", organizer, json=body).ok,
             timeout=60, interval=0.5, message="the set-up (the event reaching meetings-service)")
    people = {}
    for key, sector, available in (("asker", "automotive", [1, 2, 3, 4, 5]), ("asked", "it", None),
                                   ("early", "logistics", [0])):
        member = platform.register_member(**profile(f"{key.title()} {suffix} GmbH", sector, "automotive-cluster",
                                                    f"{key}.{suffix}@firma.example", "de", ["Druckguss"], []))
        register(platform, event_id, member["id"])
        headers = bearer("member", member_id=member["id"])
        wait_for(lambda headers=headers, available=available: _api(
            platform, "PUT", f"/events/{event_id}/meetings/participation", headers,
            json={"available": available}).ok, timeout=60, interval=0.5, message="taking part")
        people[key] = (member, headers)
    asker, asked, early = (people[k][0] for k in ("asker", "asked", "early"))

    def ask(a, b):
        response = _api(platform, "POST", f"/events/{event_id}/meetings", people[a][1],
                        json={"recipient_id": people[b][0]["id"]})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    ask("asker", "asked")
    no_common = ask("asker", "early")
    response = _api(platform, "POST", f"/events/{event_id}/meetings/{no_common}/accept", people["early"][1],
                    json={"slot": None})
    assert response.status_code == 200, response.text  # left to the organizers

    # --- the member asked picks from the times both have free (not 09:00: the asker is busy then) -------
    tom = person("de")
    tom.sign_in(asked["contact"]["email"])
    page = tom.open(f"/events/{event_id}/matchmaking")
    card = page.locator(".card", has_text=f"{asker['name']} fragt Sie an")
    options = card.locator("select option").evaluate_all("options => options.map(o => o.value)")
    assert options == ["1", "2", "3", "4", "5", ""]
    card.locator("select").select_option("2")
    card.get_by_role("button", name="Annehmen").click()
    assert "Sie haben das Treffen angenommen." in page.inner_text("main")

    # --- the asker moves it to another time both have free ------------------------------------------------
    jana = person("de")
    jana.sign_in(asker["contact"]["email"])
    page = jana.open(f"/events/{event_id}/matchmaking")
    card = page.locator(".card", has_text=f"Sie haben {asked['name']} angefragt")
    options = card.locator("select option").evaluate_all("options => options.map(o => o.value)")
    assert options == ["1", "3", "4", "5"]  # not its own time, not 09:00
    jana.check_accessibility()
    card.locator("select").select_option("4")
    card.get_by_role("button", name="Treffen verschieben").click()
    assert "Das Treffen ist verschoben" in page.inner_text("main")
    mine = _api(platform, "GET", f"/events/{event_id}/members/{asker['id']}/meetings", people["asker"][1]).json()
    assert {m["slot"] for m in mine["items"] if m["other_id"] == asked["id"]} == {4}

    # --- the organizer schedules all: the meeting without a common time, and why --------------------------
    olga = person("de")
    olga.start_staff_session("organizer", "automotive-cluster")
    page = olga.open(f"/organize/events/{event_id}/matchmaking/schedule")
    page.get_by_role("button", name="Alle einplanen").click()
    assert "1 ließen sich nicht einplanen" in page.inner_text("main")
    unplaced = page.inner_text("#unplaced")
    assert asker["name"] in unplaced and early["name"] in unplaced
    assert "keine gemeinsame freie Zeit" in unplaced
    olga.check_accessibility()


def test_moving_an_event_tells_the_organizer_which_meetings_lie_outside_and_members_see_them_to_be_rescheduled(
        platform, person):
    """The organizer moves an event's start from 09:00 to 13:00 after publishing a schedule with a meeting at
    09:30: the event page says after saving how many meetings lie outside and links to the schedule; the
    schedule names the conflict and what to do; the member's agenda shows the meeting to be rescheduled, not
    confirmed at the old time. The organizer then drops the morning block in the set-up form (which names it
    as outside) and schedules all again: the meeting gets an afternoon time, confirmed, and the notice goes."""
    suffix = uuid.uuid4().hex[:6]
    day = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=50)).date()
    starts = datetime(day.year, day.month, day.day, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    event = platform.schedule_event(
        title=f"Verschobener Partnertag {suffix}", kind="fair", organizers=["automotive-cluster"],
        timezone="Europe/Berlin", starts_at=starts.astimezone(UTC).isoformat(),
        ends_at=(starts + timedelta(hours=9)).astimezone(UTC).isoformat(), capacity=50,
        venue={"name": "Messe Chemnitz", "address": "Messeplatz 1", "city": "Chemnitz"})
    event_id, date = event["id"], day.isoformat()
    organizer = bearer("organizer", association="automotive-cluster")
    body = {"sessions": [{"starts_at": f"{date}T09:00:00", "ends_at": f"{date}T12:00:00"},
                         {"starts_at": f"{date}T13:30:00", "ends_at": f"{date}T16:00:00"}], "breaks": [],
            "slot_minutes": 30, "tables": 2, "scheduling_mode": "participants"}
    wait_for(lambda: _api(platform, "PUT", f"/events/{event_id}/meetings/setup", organizer, json=body).ok,
             timeout=60, interval=0.5, message="the set-up (the event reaching meetings-service)")
    people = {}
    for key, sector in (("asker", "automotive"), ("asked", "it")):
        member = platform.register_member(**profile(f"{key.title()} {suffix} GmbH", sector, "automotive-cluster",
                                                    f"{key}.{suffix}@firma.example", "de", ["Druckguss"], []))
        register(platform, event_id, member["id"])
        headers = bearer("member", member_id=member["id"])
        wait_for(lambda headers=headers: _api(platform, "PUT", f"/events/{event_id}/meetings/participation",
                                              headers, json={}).ok, timeout=60, interval=0.5, message="taking part")
        people[key] = (member, headers)
    response = _api(platform, "POST", f"/events/{event_id}/meetings", people["asker"][1],
                    json={"recipient_id": people["asked"][0]["id"]})
    assert response.status_code == 201, response.text
    meeting_id = response.json()["id"]
    response = _api(platform, "POST", f"/events/{event_id}/meetings/{meeting_id}/accept", people["asked"][1],
                    json={"slot": 1})  # 09:30, table 1
    assert response.status_code == 200 and response.json()["table"] == 1, response.text
    assert _api(platform, "POST", f"/events/{event_id}/meetings/publish", organizer, json={"state": "final"}).ok

    jana = person("de")
    jana.sign_in(people["asker"][0]["contact"]["email"])
    page = jana.open(f"/events/{event_id}/agenda")
    assert "Bestätigt" in page.inner_text("#agenda") and "neu geplant" not in page.inner_text("#agenda")

    # --- the organizer moves the start to 13:00 ------------------------------------------------------------
    olga = person("de")
    olga.start_staff_session("organizer", "automotive-cluster")
    page = olga.open(f"/organize/events/{event_id}")
    assert page.locator("#meetings-outside").count() == 0
    page.get_by_role("link", name="Veranstaltung bearbeiten").click()
    page.locator("#starts_at").fill(f"{date}T13:00")
    page.get_by_role("button", name="Änderungen speichern").click()
    page.wait_for_url(f"**/organize/events/{event_id}")
    assert "Ihre Änderungen sind gespeichert" in page.inner_text("main")
    notice = page.inner_text("#meetings-outside")
    assert "1 Termin des veröffentlichten Plans liegt außerhalb der neuen Veranstaltungszeit." in notice, notice
    olga.check_accessibility()
    otto = person("en")  # in English too
    otto.start_staff_session("organizer", "automotive-cluster")
    assert "1 meeting of the published schedule lies outside the event’s new time." in otto.open(
        f"/organize/events/{event_id}").inner_text("#meetings-outside")
    page.locator("#meetings-outside a").click()
    page.wait_for_url("**/matchmaking/schedule")
    # meetings-service hears of the move through event.updated a moment later
    olga.reload_until(lambda p: "außerhalb" in p.inner_text("#conflicts"), message="the conflict of the moved event")
    assert page.inner_text("#conflicts") == "1 Termin liegt außerhalb der neuen Veranstaltungszeit."
    moved = page.inner_text("#event-moved")
    assert "Zeitblock 1 liegt außerhalb der neuen Veranstaltungszeit." in moved
    assert "Zeitblöcke an die neue Zeit der Veranstaltung an" in moved
    assert page.locator("#event-moved a").get_attribute("href").endswith(f"/organize/events/{event_id}/matchmaking")
    olga.check_accessibility()

    # --- the member's agenda: to be rescheduled, not confirmed at 09:30 ------------------------------------
    page = jana.open(f"/events/{event_id}/agenda")
    row = page.inner_text("#agenda tbody tr")
    assert "Wird neu geplant" in row and "Bestätigt" not in row, row
    assert page.locator("#agenda tbody tr del").count() == 1  # the old time, struck through
    jana.check_accessibility()

    # --- the organizer drops the morning block and schedules again -----------------------------------------
    page = olga.page
    page.locator("#event-moved a").click()
    page.wait_for_url("**/matchmaking")
    assert "Zeitblock 1 liegt außerhalb der neuen Veranstaltungszeit." in page.inner_text("#sessions-outside")
    olga.check_accessibility()
    page.locator("#sessions-0-starts_at").fill("")
    page.locator("#sessions-0-ends_at").fill("")
    page.get_by_role("button", name="Einrichtung speichern").click()
    assert "Die Einrichtung der Matchmaking-Termine ist gespeichert" in page.inner_text("main")
    assert page.locator("#sessions-outside").count() == 0
    page = jana.open(f"/events/{event_id}/agenda")
    assert "Neue Zeit folgt" in page.inner_text("#agenda") and "Wird neu geplant" in page.inner_text("#agenda")
    page = olga.open(f"/organize/events/{event_id}/matchmaking/schedule")
    page.get_by_role("button", name="Alle einplanen").click()
    assert page.inner_text("#conflicts") == "Keine."
    page = jana.open(f"/events/{event_id}/agenda")
    row = page.inner_text("#agenda tbody tr")
    assert "Bestätigt" in row and "neu geplant" not in row, row
    assert "13:30" <= re.search(r"(\d{2}:\d{2})–", row).group(1) <= "15:30", row  # in the afternoon block
    assert olga.open(f"/organize/events/{event_id}").locator("#meetings-outside").count() == 0
