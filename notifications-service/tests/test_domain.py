"""Unit tests of the rules, the templates, the mail format and the webhook
signatures: no broker, no database."""
import base64
import email
import email.policy
import json
from datetime import UTC, datetime

import pytest
from icalendar import Calendar

from notifications import domain
from notifications.channels import email as mail
from notifications.channels import webhook
from notifications.config import Config
from notifications.dispatch import ics_for
from notifications.rendering import Rendered, Renderer, RenderError, context_for, reason_text, when
from notifications.testing import (
    event_changed,
    joint_event,
    match_suggested,
    project,
    registration,
    scheduled,
)
from verbund.auth import Principal
from verbund.errors import Forbidden, Unprocessable

MEMBER = "5b2f6a0e-1111-4c3e-9d5e-000000000001"
OTHER = "5b2f6a0e-2222-4c3e-9d5e-000000000002"


# --- who hears of what -----------------------------------------------------------------------------

def test_an_announcement_targets_sectors_and_topics_and_carries_the_calendar():
    joint = joint_event(target_sectors=["automotive", "it"], topics=["ai"])
    plan = domain.plan(scheduled(joint))
    assert plan.announcement and plan.kind == "event_announced"
    assert plan.sectors == ("automotive", "it") and plan.topics == ("ai",) and plan.member_ids == ()
    assert plan.ics_cancel is False


@pytest.mark.parametrize("event, kind, members, ics_cancel", [
    (event_changed("event.updated", joint_event(), [MEMBER, OTHER, MEMBER]), "event_updated", (MEMBER, OTHER), False),
    (event_changed("event.cancelled", joint_event(), [OTHER]), "event_cancelled", (OTHER,), True),
    (registration("registration.confirmed", MEMBER, joint_event()), "registration_confirmed", (MEMBER,), False),
    (registration("registration.waitlisted", MEMBER, joint_event()), "registration_waitlisted", (MEMBER,), False),
    (registration("registration.promoted", MEMBER, joint_event()), "registration_promoted", (MEMBER,), False),
    (registration("registration.cancelled", MEMBER, joint_event()), "registration_cancelled", (MEMBER,), True),
    (match_suggested(MEMBER, OTHER), "match_suggested", (MEMBER,), None),
    (project("project.proposed", [MEMBER, OTHER]), "project_proposed", (MEMBER, OTHER), None),
    (project("project.formed", [MEMBER, OTHER]), "project_formed", (MEMBER, OTHER), None),
    (project("project.closed", [MEMBER, OTHER]), "project_closed", (MEMBER, OTHER), None),
])
def test_other_events_reach_exactly_the_members_they_name(event, kind, members, ics_cancel):
    plan = domain.plan(event)
    assert (plan.kind, plan.member_ids, plan.ics_cancel, plan.announcement) == (kind, members, ics_cancel, False)


def test_member_events_notify_nobody():
    from verbund.testing import member_registered

    assert domain.plan(member_registered()) is None


@pytest.mark.parametrize("sector, topics, preferred, expected", [
    ("automotive", [], None, True),            # targeted sector
    ("logistics", ["ai"], None, True),         # shared topic
    ("logistics", ["hydrogen"], None, False),  # neither
    ("automotive", [], ["ai"], True),          # narrowed to a topic the event has
    ("automotive", [], ["hydrogen"], False),   # narrowed to other topics: not even its sector gets through
    ("logistics", ["hydrogen"], ["ai"], False),  # preferences never widen the audience
    (None, [], None, False),
])
def test_the_announcement_rule(sector, topics, preferred, expected):
    assert domain.wants_announcement(sector, topics, preferred, ["automotive"], ["ai", "e-mobility"]) is expected


@pytest.mark.parametrize("consent, address, email_on, frequency, kind, override, expected", [
    (True, "a@example.org", None, None, "registration_confirmed", None, "pending"),  # no preferences: the policy
    (True, "a@example.org", None, None, "event_announced", None, "held"),         # news: the weekly digest
    (True, "a@example.org", None, None, "match_suggested", None, "held"),
    (True, "a@example.org", True, "immediately", "match_suggested", None, "pending"),  # news each on its own
    (True, "a@example.org", True, "daily", "project_proposed", None, "pending"),  # needs the member: at once
    (True, "a@example.org", True, "daily", "project_proposed", "digest", "held"),  # ... unless it chose
    (True, "a@example.org", True, "weekly", "event_announced", "immediately", "pending"),
    (True, "a@example.org", True, "weekly", "registration_confirmed", "inbox", None),  # the inbox only
    (True, "a@example.org", False, "daily", "registration_confirmed", None, None),  # e-mail turned off
    (False, "a@example.org", True, "immediately", "registration_confirmed", None, None),  # no consent
    (True, None, True, "immediately", "registration_confirmed", None, None),  # no contact address
    (None, None, True, "immediately", "registration_confirmed", None, None),  # registration not arrived yet
])
def test_an_email_follows_the_policy_and_needs_consent_an_address_and_email_on(
        consent, address, email_on, frequency, kind, override, expected):
    assert domain.email_status(consent, address, email_on, frequency, kind, override) == expected


def test_the_policy_lists_what_needs_a_member_and_what_is_news():
    action = {kind for kind, rule in domain.POLICY.items() if rule.need == domain.ACTION}
    assert action == {"contact_requested", "contact_accepted", "project_proposed", "project_formed",
                      "registration_confirmed", "registration_waitlisted", "registration_promoted",
                      "registration_cancelled", "event_updated", "event_cancelled",
                      "meeting_requested", "meeting_accepted", "meeting_scheduled", "meeting_cancelled",
                      "meeting_reminder", "meeting_requests_pending", "meeting_survey"}
    assert {kind for kind in domain.POLICY if kind not in action} == {"match_suggested", "event_announced",
                                                                      "project_closed", "contact_declined",
                                                                      "meeting_declined"}
    assert set(domain.KINDS.values()) <= set(domain.POLICY)  # every kind sent has a rule
    # The operator's default frequency decides news of a member who chose none.
    assert domain.mail_mode("match_suggested", None, None, default_frequency="immediately") == "immediately"
    assert domain.digest_period(None) == "weekly" and domain.digest_period("daily") == "daily"
    assert domain.digest_period("immediately") == "daily"  # overflow and chosen kinds: next morning


def test_each_message_links_to_the_portal_page_where_the_member_acts():
    joint = {"event": {"id": "e-1"}}
    assert domain.action_path("registration_confirmed", joint) == "/events/e-1"
    assert domain.action_path("event_announced", joint) == "/events/e-1"
    assert domain.action_path("project_proposed", {"project": {}}) == "/projects"
    assert domain.action_path("match_suggested", {}) == "/suggestions"
    assert domain.action_path("contact_requested", {}) == "/contacts"
    assert domain.action_path("unknown", {}) == "/inbox"


def _suggested(*partners):
    return {"type": "match.suggested", "data": {"member_id": "m", "suggestions": [
        {"partner_id": p, "partner_name": p.upper()} for p in partners]}}


def _project(type_, reason=None):
    return {"type": type_, "data": {"project": {"id": "p", "closed_reason": reason}}}


def test_merging_a_suggestion_list_that_changed_back_sends_nothing():
    merged = domain.merge([_suggested("a", "b", "c"), _suggested("a", "b")], True, baseline=[
        {"partner_id": "a"}, {"partner_id": "b"}])
    assert (merged.send, merged.reason, merged.count) == (False, domain.NOTHING_CHANGED, 2)


def test_merging_suggestions_names_who_came_and_who_went_since_the_member_last_heard():
    merged = domain.merge([_suggested("a", "x"), _suggested("a", "c", "d")], True,
                          baseline=[{"partner_id": "a"}, {"partner_id": "b"}])
    assert merged.send and [s["partner_id"] for s in merged.added] == ["c", "d"]
    assert [s["partner_id"] for s in merged.removed] == ["b"]
    first = domain.merge([_suggested("a")], False)  # the first list: every partner is new
    assert [s["partner_id"] for s in first.added] == ["a"] and first.removed == ()


def test_a_proposal_closed_before_its_message_left_is_never_mailed():
    never = domain.merge([_project("project.proposed"), _project("project.closed", "superseded")], False)
    assert (never.send, never.reason) == (False, domain.CLOSED_BEFORE_MAILED)
    assert domain.merge([_project("project.closed", "declined")], True).send  # it was mailed: say it ended


def test_merging_event_changes_names_every_field_changed():
    updates = [{"type": "event.updated", "data": {"changed": ["starts_at"]}},
               {"type": "event.updated", "data": {"changed": ["venue", "starts_at"]}}]
    merged = domain.merge(updates, True)
    assert merged.send and merged.changed == ("starts_at", "venue") and merged.count == 2


def test_the_daily_budget_counts_per_day_in_the_members_zone():
    now = datetime(2027, 3, 2, 23, 30, tzinfo=UTC)  # already 3 March in Berlin
    assert domain.budget_day(now, "Europe/Berlin") == "2027-03-03"
    assert domain.within_budget(2, "2027-03-03", "2027-03-03", 3)
    assert not domain.within_budget(3, "2027-03-03", "2027-03-03", 3)
    assert domain.within_budget(9, "2027-03-02", "2027-03-03", 3)  # yesterday's count does not count
    assert domain.within_budget(99, "2027-03-03", "2027-03-03", 0)  # 0: no limit


def test_webhooks_go_unless_turned_off():
    assert domain.wants_webhooks(None) and domain.wants_webhooks(True) and not domain.wants_webhooks(False)


def test_language_prefers_the_choice_then_the_contact_then_german():
    assert domain.language("en", "de") == "en"
    assert domain.language(None, "en") == "en"
    assert domain.language(None, "fr") == "de"


def test_digests_are_due_once_per_slot_at_the_configured_hour():
    tz, hour = "Europe/Berlin", 7
    before = datetime(2026, 11, 18, 5, 59, tzinfo=UTC)   # Wed 06:59 Berlin
    after = datetime(2026, 11, 18, 6, 0, tzinfo=UTC)     # Wed 07:00 Berlin
    yesterday = datetime(2026, 11, 17, 6, 30, tzinfo=UTC)
    assert not domain.digest_due("daily", yesterday, before, hour, 0, tz)
    assert domain.digest_due("daily", yesterday, after, hour, 0, tz)
    assert not domain.digest_due("daily", after, after, hour, 0, tz)  # sent at this slot already
    # Weekly on Mondays: from Monday 07:00 until the next Monday.
    sent_last_week = datetime(2026, 11, 9, 6, 5, tzinfo=UTC)
    assert domain.digest_due("weekly", sent_last_week, after, hour, 0, tz)
    assert not domain.digest_due("weekly", datetime(2026, 11, 16, 6, 5, tzinfo=UTC), after, hour, 0, tz)
    assert domain.latest_digest_slot("weekly", after, hour, 0, tz).isoformat() == "2026-11-16T07:00:00+01:00"
    assert not domain.digest_due("immediately", None, after, hour, 0, tz)


def test_retries_follow_the_schedule_then_give_up():
    assert [domain.retry_delay((5, 300), n) for n in (1, 2, 3)] == [5, 300, None]


@pytest.mark.parametrize("pattern, type_, expected", [
    ("#", "registration.confirmed", True), ("event.*", "event.scheduled", True),
    ("event.*", "registration.confirmed", False), ("match.suggested", "match.suggested", True),
    ("*.cancelled", "registration.cancelled", True), ("event", "event.scheduled", False),
])
def test_type_patterns_work_like_rabbitmq_bindings(pattern, type_, expected):
    assert domain.type_matches(pattern, type_) is expected


def test_redaction_takes_an_erased_member_out_of_events_others_keep():
    suggested = match_suggested(MEMBER, OTHER)["data"]
    assert domain.redact("match.suggested", suggested, OTHER)["suggestions"] == []
    proposed = project("project.proposed", [MEMBER, OTHER])["data"]
    redacted = domain.redact("project.proposed", proposed, OTHER)
    assert OTHER not in str(redacted) and "Partner 1" not in str(redacted)
    assert proposed["project"]["members"][1]["member_id"] == OTHER  # the input is untouched


def test_unsubscribe_tokens_name_their_member_and_cannot_be_forged():
    token = domain.unsubscribe_token(MEMBER, "secret")
    assert domain.member_of_unsubscribe_token(token, "secret") == MEMBER
    assert domain.member_of_unsubscribe_token(token, "another secret") is None
    forged = domain.unsubscribe_token(OTHER, "guess").split(".")[0] + "." + token.split(".")[1]
    assert domain.member_of_unsubscribe_token(forged, "secret") is None
    assert domain.member_of_unsubscribe_token("garbage", "secret") is None


def test_unsubscribe_links_in_mails_sent_before_still_work():
    # The token format of mails already out (before itsdangerous made them) is still read.
    legacy = "MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAx.IfTJ1a3qx7Ol5FdH1u3debut"
    assert domain.member_of_unsubscribe_token(legacy, "secret") == "00000000-0000-0000-0000-000000000001"
    assert domain.member_of_unsubscribe_token(legacy, "another secret") is None


# --- templates -------------------------------------------------------------------------------------

EVERY_EVENT = [
    scheduled(joint_event()),
    event_changed("event.updated", joint_event(), [MEMBER]),
    event_changed("event.cancelled", joint_event(), [MEMBER]),
    *[registration(t, MEMBER, joint_event()) for t in ("registration.confirmed", "registration.waitlisted",
                                                       "registration.promoted", "registration.cancelled")],
    match_suggested(MEMBER),
    *[project(t, [MEMBER, OTHER]) for t in ("project.proposed", "project.formed", "project.closed")],
]


@pytest.mark.parametrize("lang", ["de", "en"])
@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: e["type"])
def test_every_kind_renders_in_both_languages(event, lang):
    rendered = Renderer().render(domain.KINDS[event["type"]], lang, context_for(event["type"], event["data"], lang),
                                 footer={"recipient_name": "Erika Muster", "unsubscribe_url": "https://u.example/x"})
    assert rendered.subject and "\n" not in rendered.subject and rendered.summary
    assert ("Guten Tag Erika Muster," if lang == "de" else "Hello Erika Muster,") in rendered.text
    assert "https://u.example/x" in rendered.text
    assert "{{" not in rendered.text and "{%" not in rendered.text


@pytest.mark.parametrize("lang", ["de", "en"])
def test_a_proposal_mail_says_in_a_sentence_what_the_team_covers(lang):
    summary = {"de": "Ein Team für Zellwerk GmbH: TraceSoft GmbH (IT) deckt 2 von 3 Bedarfen ab.",
               "en": "A team for Zellwerk GmbH: TraceSoft GmbH (IT) covers 2 of its 3 needs."}
    event = project("project.proposed", [MEMBER, OTHER], summary=summary)
    rendered = Renderer().render("project_proposed", lang, context_for(event["type"], event["data"], lang),
                                 footer={"recipient_name": None, "unsubscribe_url": "https://u.example/x"})
    assert summary[lang] in rendered.text and summary["en" if lang == "de" else "de"] not in rendered.text


def test_dates_are_shown_in_the_members_zone_as_each_language_writes_them():
    event = scheduled(joint_event(starts_at="2027-03-03T08:30:00Z", ends_at="2027-03-03T15:00:00Z"))
    german = Renderer().render("event_announced", "de", context_for(event["type"], event["data"], "de"))
    english = Renderer().render("event_announced", "en", context_for(event["type"], event["data"], "en"))
    assert "am Mi., 3. März 2027, 9:30–16:00 Uhr," in german.summary
    assert "on Wed, 3 March 2027, 09:30–16:00," in english.summary
    assert german.subject.endswith("am Mi., 3. März 2027") and english.subject.endswith("on Wed, 3 March 2027")
    # Across days, and in summer time: each end has its own day and time.
    summer = joint_event(starts_at="2027-07-01T07:00:00Z", ends_at="2027-07-02T14:00:00Z")
    assert when(summer, "de") == "Do., 1. Juli 2027, 9:00 Uhr – Fr., 2. Juli 2027, 16:00 Uhr"
    assert when(summer, "en") == "Thu, 1 July 2027, 09:00 – Fri, 2 July 2027, 16:00"


@pytest.mark.parametrize("seats, german, english", [
    (1, "(1 Platz)", "(1 place)"), (2, "(2 Plätze)", "(2 places)")])
def test_numbers_agree_with_their_nouns_and_verbs(seats, german, english):
    event = registration("registration.promoted", MEMBER, joint_event(), seats=seats)
    de = Renderer().render("registration_promoted", "de", context_for(event["type"], event["data"], "de"),
                           footer={"recipient_name": None, "unsubscribe_url": "u"})
    en = Renderer().render("registration_promoted", "en", context_for(event["type"], event["data"], "en"),
                           footer={"recipient_name": None, "unsubscribe_url": "u"})
    assert german in de.summary and english in en.summary
    assert ("Es ist ein Platz frei geworden" if seats == 1 else "Es sind Plätze frei geworden") in de.text
    assert ("a place has become free" if seats == 1 else "places have become free") in en.text


@pytest.mark.parametrize("lang", ["de", "en"])
@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: e["type"])
def test_messages_speak_the_members_language_without_codes_or_ids_and_link_to_the_portal(event, lang):
    event = json.loads(json.dumps(event))
    data = event["data"]
    if "event" in data:  # what organizers and members typed stays as they typed it; here it is neither language
        data["event"].update(title="Battery Day 2027", description=None)
    for suggestion in data.get("suggestions", []):
        suggestion["reasons"] = [{"kind": "need_met", "text": "…", "need": "Li-ion", "offer": "Li-ion"}]
    rendered = Renderer(portal_url="https://portal.example/").render(
        domain.KINDS[event["type"]], lang, context_for(event["type"], data, lang),
        footer={"recipient_name": None, "unsubscribe_url": "https://u.example/x"})
    body = rendered.text.split("\n--\n")[0]
    link = f"https://portal.example{domain.action_path(domain.KINDS[event['type']], data)}"
    assert link in body
    for code in ("(declined)", "(superseded)", "member_deleted", "event_cancelled", "starts_at", "Nachbarland",
                 "Europe/Berlin", MEMBER, OTHER, event["subject"]):
        assert code not in f"{rendered.subject} {rendered.summary} {rendered.text}".replace(link, "")
    other = {"de": (" the ", " your ", "Hello", " and "), "en": (" Sie ", " Ihre ", " und ", "Guten Tag")}[lang]
    assert not [word for word in other if word in body]


def test_suggestion_reasons_are_told_in_the_members_language_and_states_are_bundeslaender():
    reasons = [{"kind": "need_met", "text": "Your need 'x' ↔ their offer 'y' (term 'z')", "need": "Batterietransport",
                "offer": "Gefahrgutlogistik"},
               {"kind": "topic", "text": "Topics in common: E-mobility", "topics": ["e-mobility"]},
               {"kind": "region", "text": "Nachbarland (Brandenburg)"},
               {"kind": "region", "text": "Neighbouring state (Sachsen)"}]
    assert [reason_text(r, "de") for r in reasons] == [
        "Ihr Bedarf „Batterietransport“ passt zu deren Angebot „Gefahrgutlogistik“",
        "Gemeinsame Themen: Elektromobilität", "Benachbartes Bundesland (Brandenburg)",
        "Benachbartes Bundesland (Sachsen)"]
    # older text in the other language reads as a reason with its parts does: a "federal state"
    assert reason_text(reasons[2], "en") == "Neighbouring federal state (Brandenburg)"


def test_suggestion_reasons_in_mails_say_how_loosely_and_through_what_need_and_offer_are_linked():
    loose = {"kind": "need_met", "text": "…", "need": "Computer Vision Qualitätsprüfung",
             "offer": "OPC UA for old machines", "strength": 0.05, "fit": "loosely", "match": "semantic"}
    related = {"kind": "offer_wanted", "text": "…", "need": "Tourenplanung", "offer": "live GPS tracking",
               "match": "related", "via": "route-optimisation-software", "term": "fleet-telematics"}
    word = {"kind": "need_met", "text": "…", "need": "Express delivery", "offer": "delivery of spare parts",
            "match": "word", "via": "delivery"}
    assert [reason_text(r, "de") for r in (loose, related, word)] == [
        "Ihr Bedarf „Computer Vision Qualitätsprüfung“ passt inhaltlich nur entfernt zu deren Angebot "
        "„OPC UA for old machines“",
        "Ihr Angebot „live GPS tracking“ – deren Bedarf „Tourenplanung“ (verwandte Themen: "
        "Tourenplanungssoftware und Flottentelematik)",
        "Ihr Bedarf „Express delivery“ – deren Angebot „delivery of spare parts“ (nur das gemeinsame Wort "
        "„delivery“)"]
    assert [reason_text(r, "en") for r in (loose, related, word)] == [
        "Your need “Computer Vision Qualitätsprüfung” and their offer “OPC UA for old machines”: "
        "a loose fit in substance",
        "Your offer “live GPS tracking” – their need “Tourenplanung” (related topics: Route planning and "
        "optimisation software and Fleet telematics)",
        "Your need “Express delivery” – their offer “delivery of spare parts” (only the shared word “delivery”)"]
    assert "passt inhaltlich nur entfernt" in reason_text({**loose, "fit": "partly"}, "de")  # older suggestions
    assert reason_text({**loose, "fit": "very_well"}, "en").endswith(": a very close fit in substance")


def test_a_region_reason_with_its_parts_is_told_in_the_mails_language():
    neighbour = {"kind": "region", "text": "Benachbartes Bundesland (Sachsen)", "level": "neighbouring_state",
                 "state": "SN", "postcode_prefix": None}
    area = {"kind": "region", "text": "Same region (postcode 01…, Saxony)", "level": "same_postcode_area",
            "state": "SN", "postcode_prefix": "01"}
    assert reason_text(neighbour, "en") == "Neighbouring federal state (Saxony)"
    assert reason_text(area, "de") == "Gleiche Region (PLZ 01…, Sachsen)"
    assert reason_text({**neighbour, "level": "same_state"}, "de") == "Gleiches Bundesland (Sachsen)"


def test_a_merged_suggestion_message_says_who_came_and_who_went():
    event = match_suggested(MEMBER)
    came = event["data"]["suggestions"][0]
    merged = domain.Merged(True, added=(came,), removed=({"partner_id": "p", "partner_name": "Spree IT"},), count=3)
    rendered = Renderer().render("match_suggested", "de", context_for(event["type"], event["data"], "de", merged),
                                 footer={"recipient_name": None, "unsubscribe_url": "u"})
    assert rendered.summary == "1 neuer Vorschlag: Elbe Logistik GmbH. Nicht mehr vorgeschlagen: Spree IT."
    assert "Nicht mehr vorgeschlagen, weil sich ein Profil geändert hat: Spree IT." in rendered.text


def test_a_broken_template_is_a_render_error(tmp_path):
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "event_announced.txt").write_text(
        "{% block subject %}{{ event.no_such_field }}{% endblock %}{% block summary %}x{% endblock %}"
        "{% block content %}x{% endblock %}")
    event = scheduled(joint_event())
    with pytest.raises(RenderError, match="no_such_field"):
        Renderer(str(tmp_path)).render("event_announced", "de", context_for(event["type"], event["data"], "de"))


def test_a_digest_groups_its_items():
    items = [Rendered("Einladung: A", "Workshop A", ""), Rendered("Abgesagt: B", "B fällt aus", "")]
    digest = Renderer().render_digest("de", items, {"recipient_name": None, "unsubscribe_url": "u"}, "weekly")
    assert digest.subject == "Ihre wöchentliche Übersicht: 2 Neuigkeiten"
    assert "* Einladung: A" in digest.text and "B fällt aus" in digest.text and digest.text.startswith("Guten Tag,")


# --- the mail --------------------------------------------------------------------------------------

def test_a_mail_has_the_headers_a_mail_system_expects_and_a_valid_calendar_file():
    source = registration("registration.confirmed", MEMBER, joint_event())
    ics, method = ics_for(source)
    message = mail.compose(mail_from="Verbund <noreply@verbund.example>", to_address="erika@example.org",
                           to_name="Erika Muster", rendered=Rendered("Anmeldung bestätigt", "s", "Hallo\n"),
                           language="de", message_id=mail.message_id("x", "1.2", "verbund.example"),
                           unsubscribe_url="https://n.example/unsubscribe/tok", ics=ics, ics_method=method)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == "<x.1.2@verbund.example>"
    assert parsed["List-Unsubscribe"] == "<https://n.example/unsubscribe/tok>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Content-Language"] == "de" and parsed["Date"] and parsed["Subject"] == "Anmeldung bestätigt"
    assert parsed.get_content_type() == "multipart/mixed"
    text, attachment = list(parsed.iter_parts())
    assert text.get_content_type() == "text/plain" and text.get_content().strip() == "Hallo"
    assert attachment.get_content_type() == "text/calendar" and attachment.get_param("method") == "PUBLISH"
    calendar = Calendar.from_ical(attachment.get_content())
    [vevent] = calendar.walk("VEVENT")
    assert str(vevent["SUMMARY"]) == source["data"]["event"]["title"]
    assert str(vevent["UID"]).startswith(source["data"]["event"]["id"])


GERMAN_SENDER = "Verbund Geschäftsstelle <noreply@verbund.example>"


def parsed_mail(**overrides) -> email.message.EmailMessage:
    arguments = {"mail_from": GERMAN_SENDER, "to_address": "j.mueller@example.org", "to_name": "Jürgen Müller",
                 "rendered": Rendered("Grüße", "s", "Hallo\n"), "language": "de", "message_id": "<x.1@verbund.example>",
                 "unsubscribe_url": "https://n.example/unsubscribe/tok", **overrides}
    raw = mail.compose(**arguments).as_bytes(policy=mail.POLICY)
    assert raw.split(b"\r\n\r\n")[0].isascii()  # headers are 7-bit: RFC 2047 words only where needed
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_a_sender_with_umlauts_stays_a_display_name_and_an_address():
    parsed = parsed_mail()
    [sender] = parsed["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Verbund Geschäftsstelle", "noreply@verbund.example")
    assert "<noreply@verbund.example>" in parsed.as_string().split("\n\n")[0]  # the address outside any encoded word
    [recipient] = parsed["To"].addresses
    assert (recipient.display_name, recipient.addr_spec) == ("Jürgen Müller", "j.mueller@example.org")


@pytest.mark.parametrize("to_name, shown", [
    ("Müller, Hans", "Müller, Hans"),                  # a comma would split the address list if not quoted
    ('Erika "Eri" Muster', 'Erika "Eri" Muster'),
    ("Anna\x0bBerg\r\nBcc: spy@evil.example", "Anna Berg Bcc: spy@evil.example"),  # stored before validation
    (None, ""),
])
def test_recipient_names_are_never_pasted_into_the_header(to_name, shown):
    parsed = parsed_mail(to_name=to_name)
    [recipient] = parsed["To"].addresses
    assert (recipient.display_name, recipient.addr_spec) == (shown, "j.mueller@example.org")
    assert parsed["Bcc"] is None


def test_an_international_domain_is_sent_in_its_idna_form():
    [recipient] = parsed_mail(to_address="info@müller-logistik.example")["To"].addresses
    assert recipient.addr_spec == "info@xn--mller-logistik-gsb.example"


@pytest.mark.parametrize("address, valid", [
    ("erika@example.org", True), ("info@müller-logistik.example", True), ("@example.org", False),
    ("erika", False), ("jürgen@example.org", False), ("a@example.org, b@example.org", False), (None, False),
])
def test_only_addresses_a_mail_can_be_sent_to_are_valid(address, valid):
    assert mail.valid_address(address) is valid


@pytest.mark.parametrize("value", ["noreply", "Verbund Geschäftsstelle noreply@verbund.example",
                                   "a@verbund.example, b@verbund.example", "Verbund <noreply>", " ",
                                   "Verbund <noreply@verbund.example>\r\nBcc: spy@evil.example"])
def test_a_mail_from_that_is_not_one_address_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("MAIL_FROM", value)
    monkeypatch.delenv("NOTIFICATIONS_MAIL_FROM", raising=False)
    with pytest.raises(SystemExit, match="MAIL_FROM"):
        Config.from_env()


def test_a_valid_mail_from_is_taken(monkeypatch):
    monkeypatch.setenv("NOTIFICATIONS_MAIL_FROM", GERMAN_SENDER)
    config = Config.from_env()
    assert config.mail_from == GERMAN_SENDER and config.mail_domain == "verbund.example"
    assert mail.parse_mail_from("noreply@verbund.example").addr_spec == "noreply@verbund.example"


def test_a_cancelled_registration_sends_a_calendar_cancellation():
    ics, method = ics_for(registration("registration.cancelled", MEMBER, joint_event()))
    assert method == "CANCEL" and b"METHOD:CANCEL" in ics and b"STATUS:CANCELLED" in ics
    assert ics_for(match_suggested(MEMBER)) is None


# --- webhook signatures and targets ----------------------------------------------------------------

def test_signatures_match_the_standard_webhooks_reference_vector():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = webhook.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = webhook.headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", body, timestamp=1614265330)
    webhook.verify(secret, headers, body, now=1614265330 + 10)
    with pytest.raises(webhook.InvalidSignature):
        webhook.verify(secret, headers, body + b" ", now=1614265330)
    with pytest.raises(webhook.InvalidSignature):
        webhook.verify(secret, headers, body, now=1614265330 + 3600)  # a replay, much later
    with pytest.raises(webhook.InvalidSignature):
        webhook.verify(webhook.new_secret(), headers, body, now=1614265330)


def test_new_secrets_are_standard_webhooks_secrets():
    secret = webhook.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    assert secret != webhook.new_secret()


# Every spelling of a non-public address the connection would reach; refused without asking a resolver.
NON_PUBLIC_SPELLINGS = [
    "http://2130706433:9/x", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/", "http://0x7f.1/",
    "http://017700000001/", "http://127.0.0.1./", "http://0/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/", "http://[::1]/", "http://[0:0:0:0:0:0:0:1]/", "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/", "http://[fd12:3456:789a::1]/", "http://[fc00::1]/", "http://[::]/",
    "http://[ff02::1]/", "http://224.0.0.1/", "http://240.0.0.1/", "http://255.255.255.255/",
    "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://localhost./", "http://LOCALHOST/",
    "http://api.localhost/", "http://0xA9FEA9FE/latest/meta-data",  # 169.254.169.254, the cloud metadata
]


@pytest.mark.parametrize("url", NON_PUBLIC_SPELLINGS)
def test_every_spelling_of_a_non_public_address_is_refused(url, monkeypatch):
    def no_resolver(*args, **kwargs):  # as under eventlet's resolver, which knows no inet_aton spellings
        raise OSError("no address found")
    monkeypatch.setattr(webhook.socket, "getaddrinfo", no_resolver)
    with pytest.raises(webhook.UnsafeUrl):
        webhook.check_url(url)
    with pytest.raises(webhook.UnsafeUrl):
        webhook.check_url(url, must_resolve=True)  # the same function decides at delivery
    webhook.check_url(url, allow_private=True)  # an admin's explicit permission, and the tests' receivers


@pytest.mark.parametrize("host, address", [
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("10.1", "10.0.0.1"), ("0x0a.0.0.1", "10.0.0.1"), ("3221225985", "192.0.2.1"),
    ("::ffff:127.0.0.1", "::ffff:7f00:1"), ("1.2.3.4.", "1.2.3.4"),
])
def test_hosts_are_read_the_way_the_connection_reads_them(host, address):
    assert str(webhook.canonical_host(host)) == address
    assert webhook.canonical_host("Crm.Example.COM.") == "crm.example.com"


@pytest.mark.parametrize("url", ["http://1.2.3.4.5/", "http://256.0.0.1/", "http://0x100000000/", "http://08.0.0.1/"])
def test_numeric_hosts_that_are_no_address_are_refused(url):
    with pytest.raises(webhook.UnsafeUrl, match="not a valid IP address"):
        webhook.check_url(url, allow_private=True)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/hook", "http://192.168.0.10/",
    "http://172.16.5.5/", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[fe80::1]/",
    "http://[::ffff:10.0.0.1]/", "http://0.0.0.0/", "http://100.64.0.1/",
])
def test_private_loopback_and_link_local_targets_are_refused(url):
    with pytest.raises(webhook.UnsafeUrl):
        webhook.check_url(url)
    webhook.check_url(url, allow_private=True)  # an admin's explicit permission


@pytest.mark.parametrize("url", [f"https://{'a' * 3000}.example/", f"https://{'a' * 64}.example/",
                                 "https://" + ".".join(["abcdefghi"] * 26) + ".example/"])
def test_host_names_beyond_rfc_1035_are_refused(url):
    with pytest.raises(webhook.UnsafeUrl, match="host name is too long"):
        webhook.check_url(url, allow_private=True)
    webhook.check_url(f"https://{'a' * 63}.example/", allow_private=True)  # the longest label is fine


@pytest.mark.parametrize("url", ["ftp://crm.example.com/x", "crm.example.com/hook", "http:///nohost",
                                 "https://user:pw@crm.example.com/", "http://[zz]/"])
def test_malformed_targets_are_refused_even_with_permission(url):
    with pytest.raises(webhook.UnsafeUrl):
        webhook.check_url(url, allow_private=True)


def test_public_targets_pass():
    webhook.check_url("https://93.184.215.14/hooks/verbund")
    assert webhook.is_public("2a00:1450:4001:80b::200e")


# --- authorization and policy of the use cases -----------------------------------------------------

def test_a_members_preferences_and_inbox_are_its_own_or_an_admins():
    domain.check_own(Principal("a", "admin"), MEMBER, "inbox")
    domain.check_own(Principal("m", "member", member_id=MEMBER), MEMBER, "inbox")
    for stranger in (Principal("m", "member", member_id=OTHER), Principal("o", "organizer"),
                     Principal("crm", "integrator")):
        with pytest.raises(Forbidden, match="your own inbox"):
            domain.check_own(stranger, MEMBER, "inbox")


def test_who_manages_a_webhook_endpoint():
    integrator, other_integrator = Principal("crm", "integrator"), Principal("erp", "integrator")
    assert domain.may_manage_endpoint(Principal("a", "admin"), "integrator", "crm", None)
    assert domain.may_manage_endpoint(integrator, "integrator", "crm", None)
    assert not domain.may_manage_endpoint(other_integrator, "integrator", "crm", None)
    assert domain.may_manage_endpoint(Principal("m", "member", member_id=MEMBER), "member", "x", MEMBER)
    assert not domain.may_manage_endpoint(Principal("m", "member", member_id=OTHER), "member", "x", MEMBER)
    assert not domain.may_manage_endpoint(integrator, "member", "crm", MEMBER)


def test_whose_notifications_a_new_webhook_receives():
    me = Principal("m", "member", member_id=MEMBER)
    assert domain.webhook_member(me, {"url": "https://x"}) == MEMBER
    assert domain.webhook_member(Principal("crm", "integrator"), {"url": "https://x"}) is None
    assert domain.webhook_member(Principal("a", "admin"), {"member_id": OTHER}) == OTHER
    assert domain.webhook_member(Principal("a", "admin"), {"allow_private": True}) is None
    with pytest.raises(Forbidden):
        domain.webhook_member(me, {"member_id": OTHER})
    with pytest.raises(Forbidden):
        domain.webhook_member(me, {"allow_private": True})
    with pytest.raises(Forbidden):
        domain.webhook_member(Principal("o", "organizer"), {})
    with pytest.raises(Unprocessable) as refused:
        domain.webhook_member(Principal("crm", "integrator"), {"member_id": MEMBER})
    assert "member_id" in refused.value.details["fields"]
    with pytest.raises(Unprocessable) as refused:
        domain.webhook_member(me, {"event_types": ["event.*"]})
    assert "event_types" in refused.value.details["fields"]


def test_a_digest_waits_for_the_first_slot_after_something_waits_for_it():
    tuesday = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
    monday = datetime(2027, 3, 8, 6, 1, tzinfo=UTC)  # 7:01 in Berlin
    args = (7, 0, "Europe/Berlin")
    assert not domain.digest_due("weekly", None, tuesday, *args, oldest_held=tuesday)  # Monday's slot was before
    assert domain.digest_due("weekly", None, monday, *args, oldest_held=tuesday)
    assert not domain.digest_due("weekly", monday, monday, *args, oldest_held=tuesday)  # one per period


def test_held_mails_are_released_by_immediate_mail_only():
    assert domain.releases_held(True, "immediately")
    assert not domain.releases_held(True, "daily")
    assert not domain.releases_held(False, "immediately")


# --- findings of a new-user test: one language, no doubled words, the portal's names -------------------

@pytest.mark.parametrize("lang", ["de", "en"])
def test_a_proposal_mail_names_the_project_once_in_the_readers_language(lang):
    # An English-speaking anchor: the stored title is English; the German reader sees it in German.
    event = project("project.proposed", [MEMBER, OTHER], title="Partner project: Returnable packaging",
                    title_i18n={"de": "Partnerprojekt: Mehrwegverpackungen",
                                "en": "Partner project: Returnable packaging"},
                    about_i18n={"de": "Mehrwegverpackungen", "en": "Returnable packaging"})
    rendered = Renderer().render("project_proposed", lang, context_for(event["type"], event["data"], lang),
                                 footer={"recipient_name": None, "unsubscribe_url": "https://u.example/x"})
    expected = {"de": "Einladung zu einem Partnerprojekt: Mehrwegverpackungen",
                "en": "Invitation to a partner project: Returnable packaging"}[lang]
    assert rendered.subject == expected
    other_word = {"de": "Partner project", "en": "Partnerprojekt"}[lang]
    assert other_word not in rendered.text and other_word not in rendered.subject
    assert rendered.text.count({"de": "Partnerprojekt:", "en": "Partner project:"}[lang]) == 1  # the title line


@pytest.mark.parametrize("title, lang, subject", [
    ("Partnerprojekt: Rückverfolgbarkeit", "de", "Einladung zu einem Partnerprojekt: Rückverfolgbarkeit"),
    ("Partnerprojekt: Rückverfolgbarkeit", "en", "Invitation to a partner project: Rückverfolgbarkeit"),
    ("Batterielogistik", "de", "Einladung zu einem Partnerprojekt: Batterielogistik"),
])
def test_a_proposal_announced_before_titles_came_in_both_languages_does_not_double_the_word(title, lang, subject):
    event = project("project.proposed", [MEMBER, OTHER], title=title)
    for type_ in ("project.proposed", "project.formed", "project.closed"):
        event["type"] = type_
        rendered = Renderer().render(domain.KINDS[type_], lang, context_for(type_, event["data"], lang),
                                     footer={"recipient_name": None, "unsubscribe_url": "u"})
        text = (rendered.subject + rendered.summary + rendered.text).casefold()
        assert "partnerprojekt: partnerprojekt" not in text and "project: partnerprojekt" not in text
        assert "partnerprojekt „partnerprojekt" not in text and "projekt „partnerprojekt" not in text
    first = Renderer().render("project_proposed", lang, context_for("project.proposed", event["data"], lang))
    assert first.subject == subject


@pytest.mark.parametrize("title, lang, named", [
    ("Meetup: E-Mobilität", "de", "„Meetup: E-Mobilität“ am"),  # the kind's word in either language
    ("Treffen E-Mobilität", "de", "„Treffen E-Mobilität“ am"),
    ("E-Mobilität", "de", "Treffen „E-Mobilität“ am"),  # the portal's German name of the kind
    ("meetup E-Mobility", "en", "“meetup E-Mobility” on"),
    ("E-Mobility", "en", "Meetup “E-Mobility” on"),
])
def test_an_invitation_does_not_repeat_the_kind_the_title_already_says(title, lang, named):
    event = scheduled(joint_event(title=title, kind="meetup"))
    rendered = Renderer().render("event_announced", lang, context_for(event["type"], event["data"], lang))
    assert rendered.summary.startswith(named)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_mails_name_the_associations_as_the_portal_does(lang):
    from verbund.reference import NAMES

    event = scheduled(joint_event(organizers=["automotive-cluster"]))
    rendered = Renderer().render("event_announced", lang, context_for(event["type"], event["data"], lang),
                                 footer={"recipient_name": None, "unsubscribe_url": "u"})
    names = [NAMES["association"][key][lang] for key in ("automotive-cluster", "it-cluster", "logistics-network")]
    assert " · ".join(names) in rendered.text  # the signature
    assert rendered.text.startswith({"de": "Guten Tag", "en": "Hello"}[lang])
    assert names[0] in rendered.text.split("\n\n")[1]  # who invites
    assert ("Automotive-Cluster" if lang == "de" else "Automotive Cluster") not in rendered.text
