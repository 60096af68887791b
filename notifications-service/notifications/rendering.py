"""Notifications in words: German and English Jinja2 templates.

Each kind has a template per language (``templates/<lang>/<kind>.txt``)
with three blocks: ``subject`` (mail subject and inbox title), ``summary``
(one or two lines for the inbox and webhooks) and ``content`` (the mail's
body between greeting and footer, which ``_mail.txt`` adds). Undefined
names raise, so a broken template fails loudly as a RenderError instead of
mailing half a sentence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined, TemplateError

from notifications import domain
from verbund import settings, wording
from verbund.reference import NAMES

# Dates and times as a reader writes them (CLDR patterns through Babel): "Mi., 3. März 2027, 9:30 Uhr",
# "Wed, 3 March 2027, 09:30". English follows British usage (day before month, 24-hour clock).
LOCALES = {"de": "de_DE", "en": "en_GB"}
DATE_PATTERNS = {"de": "EEE, d. MMMM y", "en": "EEE, d MMMM y"}
TIME_PATTERNS = {"de": "H:mm", "en": "HH:mm"}
CLOCK = {"de": " Uhr", "en": ""}
# The zone members read times in: the platform's members are in Germany (no member sets its own yet).
MEMBER_ZONE = "Europe/Berlin"
EVENT_KINDS = {
    "de": {"fair": "Messe (Gemeinschaftsstand)", "workshop": "Workshop", "meetup": "Treffen", "webinar": "Webinar",
           "conference": "Konferenz"},
    "en": {"fair": "Trade fair (joint booth)", "workshop": "Workshop", "meetup": "Meetup", "webinar": "Webinar",
           "conference": "Conference"},
}
# Associations and sectors are named as the portal names them: one catalogue, ``verbund.reference.NAMES``.
ASSOCIATIONS = {lang: {key: names[lang] for key, names in NAMES["association"].items()} for lang in LOCALES}
SECTORS = {lang: {key: names[lang] for key, names in NAMES["sector"].items()} for lang in LOCALES}


def association_names(lang: str) -> str:
    """The cooperation's three associations for a mail's signature: "Automobilcluster · IT-Cluster ·
    Logistiknetzwerk" (the portal's names, ``verbund.reference.NAMES``)."""
    return " · ".join(ASSOCIATIONS[lang].values())


def named_event(title: str, kind: str, lang: str) -> str:
    """An event named with its kind: 'Meetup „E-Mobilität“'; a title that starts with the kind's word
    already says it ('„Meetup: E-Mobilität“', not 'Meetup „Meetup: E-Mobilität“')."""
    label = EVENT_KINDS[lang].get(kind, kind)
    words = {label.split(" (")[0].casefold(), kind.casefold(), *(EVENT_KINDS[other].get(kind, kind).split(" (")[0]
                                                                 .casefold() for other in EVENT_KINDS)}
    title = wording.quoted(title, lang)
    return title if any(title[1:].casefold().startswith(word) for word in words if word) else f"{label} {title}"


# What changed in an event.updated, in words (fields not listed are named together as "other details").
FIELDS = {
    "de": {"title": "Titel", "description": "Beschreibung", "starts_at": "Beginn", "ends_at": "Ende",
           "timezone": "Zeitzone", "venue": "Ort", "online_url": "Online-Link", "capacity": "Teilnehmerzahl",
           "registration_deadline": "Anmeldeschluss", "kind": "Art der Veranstaltung", "topics": "Themen",
           "target_sectors": "Zielbranchen", "organizers": "Veranstalter"},
    "en": {"title": "title", "description": "description", "starts_at": "start", "ends_at": "end",
           "timezone": "time zone", "venue": "venue", "online_url": "online link", "capacity": "number of places",
           "registration_deadline": "registration deadline", "kind": "kind of event", "topics": "topics",
           "target_sectors": "target sectors", "organizers": "organisers"},
}
OTHER_DETAILS = {"de": "weitere Angaben", "en": "other details"}


def changed_names(fields, lang: str) -> str:
    """"Beginn und Ort" / "start and venue" for the changed fields of an event."""
    names = list(dict.fromkeys(FIELDS[lang][field] for field in fields if field in FIELDS[lang]))
    if not names or any(field not in FIELDS[lang] for field in fields):
        names.append(OTHER_DETAILS[lang])
    return join_and(names, lang)


class RenderError(Exception):
    """A template could not be rendered; the notification goes to the failure log."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    summary: str
    text: str  # the whole mail body
    link: str = ""  # the portal page where the member acts on it


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _date_time(moment: datetime, lang: str) -> tuple[str, str]:
    """The day ("Mi., 3. März 2027") and the time ("9:30") of an aware ``moment`` in ``lang``."""
    locale = LOCALES[lang]
    return (format_date(moment, DATE_PATTERNS[lang], locale=locale),
            format_time(moment, TIME_PATTERNS[lang], locale=locale))


def plural(count: int, one: str, other: str, lang: str) -> str:
    """``one`` or ``other`` by the CLDR plural rule of ``lang`` (German and English: "one" for 1)."""
    return one if Locale.parse(LOCALES[lang]).plural_form(count) == "one" else other


def join_and(items, lang: str) -> str:
    """"A, B und C" / "A, B and C"."""
    items = [str(item) for item in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {'und' if lang == 'de' else 'and'} {items[-1]}"


def when(event: dict, lang: str, zone: str = MEMBER_ZONE) -> str:
    """Start and end in the reader's time ``zone``, as a reader of ``lang`` writes them:
    "Mi., 3. März 2027, 9:00–16:00 Uhr", across days "Mi., 3. März 2027, 9:00 Uhr – Do., 4. März 2027,
    17:00 Uhr"."""
    tz = ZoneInfo(zone)
    start, end = _moment(event["starts_at"]).astimezone(tz), _moment(event["ends_at"]).astimezone(tz)
    start_day, start_time = _date_time(start, lang)
    end_day, end_time = _date_time(end, lang)
    clock = CLOCK[lang]
    if start.date() == end.date():
        return f"{start_day}, {start_time}–{end_time}{clock}"
    return f"{start_day}, {start_time}{clock} – {end_day}, {end_time}{clock}"


def where(event: dict) -> str | None:
    venue = event.get("venue") or {}
    place = ", ".join(part for part in (venue.get("name"), venue.get("address"), venue.get("city")) if part)
    return place or event.get("online_url") or None


def event_view(event: dict, lang: str) -> dict:
    """The joint event with what templates show precomputed."""
    return {
        **event,
        "when": when(event, lang),
        "day": _date_time(_moment(event["starts_at"]).astimezone(ZoneInfo(MEMBER_ZONE)), lang)[0],
        "where": where(event),
        "kind_label": EVENT_KINDS[lang].get(event["kind"], event["kind"]),
        "named": named_event(event["title"], event["kind"], lang),
        "organizer_names": join_and((ASSOCIATIONS[lang].get(a, a) for a in event.get("organizers") or []), lang),
        "organizer_count": len(event.get("organizers") or []),
        "description": event.get("description"),
        "online_url": event.get("online_url"),
    }


# The word matching-service puts before a proposal's title (``matching.wording.TITLE``), for
# proposals announced before the title came in both languages.
PROJECT_WORD = {"de": "Partnerprojekt: ", "en": "Partner project: "}


def project_view(project: dict, lang: str) -> dict:
    """A partner project as the templates show it, in the reader's language: ``title`` ("Partnerprojekt:
    Rückverfolgbarkeit") and ``about`` (what it is about, for texts that say "Partnerprojekt"
    themselves) from the event's ``title_i18n``/``about_i18n``; events without them (older ones) give
    the title in the anchor's language, whose word before the colon is put in the reader's."""
    about = (project.get("about_i18n") or {}).get(lang)
    if about is None:
        about = project.get("title") or ""
        for word in PROJECT_WORD.values():
            if about.startswith(word):
                about = about[len(word):]
                break
    title = (project.get("title_i18n") or {}).get(lang) or PROJECT_WORD[lang] + about
    return {**project, "title": title, "about": about}


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class Renderer:
    """The templates (``override_dir`` first, then the built-in ones); links in mails point into the
    portal at ``portal_url``."""

    def __init__(self, override_dir: str = "", portal_url: str | None = None):
        loaders = [FileSystemLoader(override_dir)] if override_dir else []
        self.environment = Environment(
            loader=ChoiceLoader([*loaders, PackageLoader("notifications", "templates")]),
            undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=True)
        self.environment.globals["sector_name"] = lambda sector, lang: SECTORS[lang].get(sector, sector)
        self.environment.globals["plural"] = plural
        self.environment.globals["reason_text"] = reason_text
        self.environment.globals["join_and"] = join_and
        self.environment.globals["association_names"] = association_names
        self.portal_url = (portal_url or settings.portal_url()).rstrip("/")
        self.environment.globals["portal_url"] = self.portal_url

    def _block(self, template, name: str, context: dict) -> str:
        return "".join(template.blocks[name](template.new_context(context)))

    def render(self, kind: str, lang: str, context: dict, *, footer: dict | None = None) -> Rendered:
        """Subject, summary and (with ``footer``: recipient and unsubscribe link) the whole mail text."""
        context = {"link": self.portal_url + context.get("path", "/inbox"), **context, "lang": lang}
        try:
            template = self.environment.get_template(f"{lang}/{kind}.txt")
            subject = _one_line(self._block(template, "subject", context))
            summary = _one_line(self._block(template, "summary", context))
            text = ""
            if footer is not None:
                content = self._block(template, "content", context).strip("\n")
                text = self.environment.get_template(f"{lang}/_mail.txt").render(
                    {**context, **footer, "content": content})
        except (TemplateError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RenderError(f"{lang}/{kind}.txt: {type(exc).__name__}: {exc}") from exc
        return Rendered(subject, summary, text, context["link"])

    def render_requested(self, kind: str, lang: str, context: dict, recipient_name: str | None) -> Rendered:
        """A mail the person asked for (a sign-in link): the template's blocks wrapped by
        ``_requested_mail.txt``, which says why it came and has no unsubscribe footer."""
        context = {**context, "lang": lang}
        try:
            template = self.environment.get_template(f"{lang}/{kind}.txt")
            subject = _one_line(self._block(template, "subject", context))
            summary = _one_line(self._block(template, "summary", context))
            content = self._block(template, "content", context).strip("\n")
            text = self.environment.get_template(f"{lang}/_requested_mail.txt").render(
                {**context, "recipient_name": recipient_name, "content": content})
        except (TemplateError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RenderError(f"{lang}/{kind}.txt: {type(exc).__name__}: {exc}") from exc
        return Rendered(subject, summary, text)

    def render_digest(self, lang: str, items: list[Rendered], footer: dict, frequency: str) -> Rendered:
        try:
            template = self.environment.get_template(f"{lang}/_digest.txt")
            context = {**footer, "items": items, "count": len(items), "frequency": frequency, "lang": lang}
            subject = _one_line(self._block(template, "subject", context))
            content = self._block(template, "content", context).strip("\n")
            text = self.environment.get_template(f"{lang}/_mail.txt").render({**context, "content": content})
        except (TemplateError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RenderError(f"{lang}/_digest.txt: {type(exc).__name__}: {exc}") from exc
        return Rendered(subject, f"{len(items)}", text)


# Why a partner is suggested, in the mail's language from the reason's fields: the platform's one
# wording of reasons (``verbund.wording``), the same as the portal's pages.
reason_text = wording.reason_text


OTHER_MEMBER = {"de": "ein anderes Mitglied", "en": "another member"}


def meeting_when(starts_at: str | None, ends_at: str | None, lang: str, zone: str | None) -> str | None:
    """A meeting's slot in the event's time ``zone`` (else the members' zone): "Mi., 3. März 2027,
    9:30–9:50 Uhr"; None while it has none."""
    if not starts_at:
        return None
    if not ends_at:
        tz = ZoneInfo(zone or MEMBER_ZONE)
        day, clock_time = _date_time(_moment(starts_at).astimezone(tz), lang)
        return f"{day}, {clock_time}{CLOCK[lang]}"
    return when({"starts_at": starts_at, "ends_at": ends_at}, lang, zone or MEMBER_ZONE)


def meeting_context(source_type: str, data: dict, lang: str, reader: str | None) -> dict:
    """What the meeting templates see, from the reader's side (``reader``, the member the mail is
    for): ``meeting`` (``other`` the organisation met, ``when`` in the event's time zone, ``table``),
    ``event_title``, and for the summary ``requests`` and for the survey ``meetings`` (each with
    ``other`` and ``when``). Names come from the read model (``data.context``); a member not
    known yet is "another member"."""
    extra = data.get("context") or {}
    names, joint = extra.get("names") or {}, extra.get("event") or {}
    zone = joint.get("timezone")

    def name(member_id):
        return names.get(member_id) or OTHER_MEMBER[lang]

    context: dict = {"event_title": joint.get("title"), "event_id": joint.get("id") or data.get("event_id")}
    meeting = data.get("meeting")
    if meeting:
        if reader is None:  # a webhook or a preview without a reader: the side the event speaks to
            reader = meeting["recipient_id"] if source_type == "meeting.requested" else meeting["requester_id"]
        other = domain.other_side(meeting, reader)
        context["meeting"] = {**meeting, "other": name(other), "other_known": bool(names.get(other)),
                              "when": meeting_when(meeting.get("starts_at"), meeting.get("ends_at"), lang, zone),
                              "requested_by_me": meeting["requester_id"] == reader,
                              "by_other": data.get("cancelled_by") not in (None, reader),
                              # meeting.cancelled of a request never accepted: withdrawn or lapsed, not a
                              # cancelled meeting (events before ``was_accepted`` existed read as cancelled)
                              "request_only": data.get("was_accepted") is False,
                              "cause": data.get("cause"),
                              "expires": meeting_when(data.get("expires_at"), None, lang, zone)}
    if "requests" in data:
        context["requests"] = [{**r, "other": name(r["requester_id"]),
                                "expires": meeting_when(r.get("expires_at"), None, lang, zone)}
                               for r in data["requests"]]
    if "meetings" in data:
        me = data["member_id"]
        context["meetings"] = [{**m, "other": name(domain.other_side(m, me)),
                                "when": meeting_when(m.get("starts_at"), m.get("ends_at"), lang, zone)}
                               for m in data["meetings"]]
    return context


def context_for(source_type: str, data: dict, lang: str, merged: domain.Merged | None = None,
                reader: str | None = None) -> dict:
    """What the templates of a source event's kind get to see: the event's data made readable,
    ``link`` (the portal page where the member acts on it, ``domain.action_path``), and after
    coalescing (``merged``, ``domain.merge``) what changed since the member last heard of it:
    ``changed`` over all merged event updates, ``added``/``removed`` suggestions, ``count``."""
    kind = domain.KINDS.get(source_type, "")
    context: dict = {"type": source_type, "path": domain.action_path(kind, data), "merged_count": 1}
    if "event" in data:
        context["event"] = event_view(data["event"], lang)
    if "registration" in data:
        context["registration"] = data["registration"]
    if source_type == "event.updated":
        context["changed"] = data.get("changed", [])
    if source_type == "event.cancelled":
        context["reason"] = data.get("reason")
    if reader is not None and "registered_member_ids" in data:
        # registered (its registration ended with the event) or only invited (it held the announcement)
        context["registered"] = reader in data["registered_member_ids"]
    if source_type == "match.suggested":
        context["suggestions"] = data.get("suggestions", [])
    if "project" in data:
        context["project"] = project_view(data["project"], lang)
    if source_type.startswith("contact."):
        context["contact"] = data["request"]
    if source_type.startswith("meeting."):
        context.update(meeting_context(source_type, data, lang, reader))
        steps = merged.steps if merged is not None else (source_type,)
        context["accepted_too"] = "meeting.accepted" in steps  # accepted and scheduled in one message
    if merged is not None:
        context["merged_count"] = merged.count
        if source_type == "event.updated":
            context["changed"] = list(merged.changed) or context["changed"]
        if source_type == "match.suggested":
            context["added"], context["removed"] = list(merged.added), list(merged.removed)
    if source_type == "event.updated":
        context["changed_names"] = changed_names(context["changed"], lang)
    return context
