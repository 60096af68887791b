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

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined, TemplateError

from verbund.settings import portal_url

WEEKDAYS = {"de": ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"), "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}
EVENT_KINDS = {
    "de": {"fair": "Messe (Gemeinschaftsstand)", "workshop": "Workshop", "meetup": "Meetup", "webinar": "Webinar",
           "conference": "Konferenz"},
    "en": {"fair": "Trade fair (joint booth)", "workshop": "Workshop", "meetup": "Meetup", "webinar": "Webinar",
           "conference": "Conference"},
}
ASSOCIATIONS = {
    "de": {"automotive-cluster": "Automotive-Cluster", "it-cluster": "IT-Cluster",
           "logistics-network": "Logistiknetzwerk"},
    "en": {"automotive-cluster": "Automotive Cluster", "it-cluster": "IT Cluster",
           "logistics-network": "Logistics Network"},
}
SECTORS = {
    "de": {"automotive": "Automobil", "it": "IT", "logistics": "Logistik", "research": "Forschung",
           "public": "öffentliche Hand", "other": "Sonstige"},
    "en": {"automotive": "automotive", "it": "IT", "logistics": "logistics", "research": "research",
           "public": "public sector", "other": "other"},
}


class RenderError(Exception):
    """A template could not be rendered; the notification goes to the failure log."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    summary: str
    text: str  # the whole mail body


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _date_time(moment: datetime, lang: str) -> tuple[str, str]:
    day = WEEKDAYS[lang][moment.weekday()]
    if lang == "de":
        return f"{day}., {moment:%d.%m.%Y}", f"{moment:%H:%M}"
    return f"{day}, {moment:%Y-%m-%d}", f"{moment:%H:%M}"


def when(event: dict, lang: str) -> str:
    """Start and end in the event's own time zone, as a reader of ``lang`` writes them."""
    zone = ZoneInfo(event.get("timezone") or "Europe/Berlin")
    start, end = _moment(event["starts_at"]).astimezone(zone), _moment(event["ends_at"]).astimezone(zone)
    start_day, start_time = _date_time(start, lang)
    end_day, end_time = _date_time(end, lang)
    clock = " Uhr" if lang == "de" else ""
    if start.date() == end.date():
        return f"{start_day}, {start_time}–{end_time}{clock} ({zone.key})"
    return f"{start_day}, {start_time}{clock} – {end_day}, {end_time}{clock} ({zone.key})"


def where(event: dict) -> str | None:
    venue = event.get("venue") or {}
    place = ", ".join(part for part in (venue.get("name"), venue.get("address"), venue.get("city")) if part)
    return place or event.get("online_url") or None


def event_view(event: dict, lang: str) -> dict:
    """The joint event with what templates show precomputed."""
    return {
        **event,
        "when": when(event, lang),
        "day": _date_time(_moment(event["starts_at"]).astimezone(ZoneInfo(event.get("timezone") or "Europe/Berlin")),
                          lang)[0],
        "where": where(event),
        "kind_label": EVENT_KINDS[lang].get(event["kind"], event["kind"]),
        "organizer_names": ", ".join(ASSOCIATIONS[lang].get(a, a) for a in event.get("organizers", [])),
        "description": event.get("description"),
        "online_url": event.get("online_url"),
    }


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class Renderer:
    def __init__(self, override_dir: str = ""):
        loaders = [FileSystemLoader(override_dir)] if override_dir else []
        self.environment = Environment(
            loader=ChoiceLoader([*loaders, PackageLoader("notifications", "templates")]),
            undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=True)
        self.environment.globals["sector_name"] = lambda sector, lang: SECTORS[lang].get(sector, sector)
        self.environment.globals["portal_url"] = portal_url()  # where members answer (contact requests)

    def _block(self, template, name: str, context: dict) -> str:
        return "".join(template.blocks[name](template.new_context(context)))

    def render(self, kind: str, lang: str, context: dict, *, footer: dict | None = None) -> Rendered:
        """Subject, summary and (with ``footer``: recipient and unsubscribe link) the whole mail text."""
        context = {**context, "lang": lang}
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
        return Rendered(subject, summary, text)

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


def context_for(source_type: str, data: dict, lang: str) -> dict:
    """What the templates of a source event's kind get to see."""
    context: dict = {"type": source_type}
    if "event" in data:
        context["event"] = event_view(data["event"], lang)
    if "registration" in data:
        context["registration"] = data["registration"]
    if source_type == "event.updated":
        context["changed"] = data.get("changed", [])
    if source_type == "event.cancelled":
        context["reason"] = data.get("reason")
    if source_type == "match.suggested":
        context["suggestions"] = data.get("suggestions", [])
    if "project" in data:
        context["project"] = data["project"]
    if source_type.startswith("contact."):
        context["contact"] = data["request"]
    return context
