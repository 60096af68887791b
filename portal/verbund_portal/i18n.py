"""Translations: gettext catalogues (``translations/<lang>/LC_MESSAGES/messages.po``, German and
English) compiled with Babel when the portal starts, and the labels of the shared reference data
(sectors, associations, states, topics, competencies) in the page's language."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import get_locale

from verbund import reference, vocabulary, wording
from verbund.settings import data_dir

CATALOGUES = Path(__file__).parent / "translations"


def compiled_catalogues(target: Path | None = None) -> Path:
    """Compile every ``.po`` catalogue into ``target`` (default: the data folder) and return it.
    Compiling at start keeps the sources the only thing in the repository and on a fresh machine."""
    target = target or data_dir() / "portal-translations"
    for po_path in CATALOGUES.glob("*/LC_MESSAGES/messages.po"):
        language = po_path.parent.parent.name
        mo_path = target / language / "LC_MESSAGES" / "messages.mo"
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as source:
            catalog = read_po(source, locale=language)
        partial = mo_path.with_suffix(".tmp")
        with partial.open("wb") as out:
            write_mo(out, catalog)
        partial.replace(mo_path)  # whole files only: several processes may start at once
    return target


def language() -> str:
    return str(get_locale() or "de")[:2]


@cache
def _vocabulary() -> vocabulary.Vocabulary:
    return vocabulary.load()


def reference_label(kind: str, value: str | None) -> str:
    """A sector, association, state or language id as its name in the page's language."""
    return reference.label(kind, value, language()) if value else ""


def topic_label(topic: str) -> str:
    term = _vocabulary().topics.get(topic)
    return term.label(language()) if term else topic


def topic_choices() -> list[tuple[str, str]]:
    return sorted(((term.id, term.label(language())) for term in _vocabulary().topics.values()),
                  key=lambda choice: choice[1].casefold())


def competency_labels() -> list[str]:
    """Every competency's name in the page's language: what the fields suggest as one types."""
    return sorted({term.label(language()) for term in _vocabulary().competencies.values()}, key=str.casefold)


def competency_text(competency: dict) -> str:
    """A profile's competency in words: the member's own words where they typed something of their own
    ("Druckguss" stays "Druckguss", though the vocabulary files it under "Aluminium-Druckguss"); the
    vocabulary term's name in the page's language where the label is that term's name in either
    language (or there is no label)."""
    term = _vocabulary().competencies.get(competency.get("term") or "")
    label = (competency.get("label") or "").strip()
    if term and (not label or label.casefold() in (term.de.casefold(), term.en.casefold())):
        return term.label(language())
    return label or competency.get("term") or ""


def competency_name(value: str | None) -> str:
    """A vocabulary term id as its name in the page's language; any other text as it is."""
    term = _vocabulary().competencies.get(value or "")
    return term.label(language()) if term else value or ""


def choices(kind: str) -> list[tuple[str, str]]:
    """(id, name) of a reference kind (sector, association, state, language) in the page's language."""
    return [(value, reference.label(kind, value, language())) for value in reference.NAMES[kind]]


# Dates as a reader writes them, the same CLDR patterns as notifications-service's mails:
# "Mi., 3. März 2027, 9:30 Uhr" / "Wed, 3 March 2027, 09:30" (British usage: day first, 24 hours).
LOCALES = {"de": "de_DE", "en": "en_GB"}
DATE_PATTERNS = {"de": "EEE, d. MMMM y", "en": "EEE, d MMMM y"}
TIME_PATTERNS = {"de": "H:mm", "en": "HH:mm"}
CLOCK = {"de": " Uhr", "en": ""}
ZONE = ZoneInfo("Europe/Berlin")  # the members' time zone


def _moment(value: str | None, zone: ZoneInfo = ZONE) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)


def _day_time(moment: datetime) -> tuple[str, str]:
    lang = language() if language() in LOCALES else "de"
    return (babel_dates.format_date(moment, DATE_PATTERNS[lang], locale=LOCALES[lang]),
            babel_dates.format_time(moment, TIME_PATTERNS[lang], locale=LOCALES[lang]))


def month(value: str | None) -> str:
    """A calendar month "2026-12" (``YYYY-MM``, as the services' statistics give it) as the page's
    language names it with Babel: "Dezember 2026" / "December 2026"; other text as it is."""
    try:
        year, number = (int(part) for part in (value or "").split("-"))
        first = date(year, number, 1)
    except ValueError:
        return value or ""
    lang = language() if language() in LOCALES else "de"
    return babel_dates.format_date(first, "LLLL y", locale=LOCALES[lang])


def when(value: str | None) -> str:
    """An ISO 8601 timestamp as a day and time in the page's language and Berlin time:
    "Mi., 3. März 2027, 9:30 Uhr" / "Wed, 3 March 2027, 09:30"; text that is no timestamp as it is."""
    moment = _moment(value)
    if moment is None:
        return value or ""
    day, time = _day_time(moment)
    return f"{day}, {time}{CLOCK[language() if language() in CLOCK else 'de']}"


def event_zone(event: dict | None) -> tuple[ZoneInfo, str]:
    """An event's own time zone and its tz database name (``timezone``); Europe/Berlin when it has
    none or an unknown one."""
    name = (event or {}).get("timezone") or "Europe/Berlin"
    try:
        return ZoneInfo(name), name
    except (ValueError, KeyError):
        return ZONE, "Europe/Berlin"


def when_range_zoned(event: dict, starts: str | None = None, ends: str | None = None) -> str:
    """An event's from–to in its own time zone, with the zone's name: "Mi., 3. März 2027,
    9:30–12:00 Uhr (Europe/Berlin)" (what organizers typed into the form, and where it happens).
    ``starts``/``ends`` (ISO 8601): another span at the event (a meeting there) instead of the event's own."""
    zone, name = event_zone(event)
    starts, ends = (starts, ends) if starts else (event.get("starts_at"), event.get("ends_at"))
    return f"{when_range(starts, ends, zone)} ({name})"


def when_zoned(value: str | None, event: dict) -> str:
    """A moment of an event (its registration deadline) in the event's own time zone, with the
    zone's name: "Mo., 1. März 2027, 18:00 Uhr (Asia/Tokyo)"; empty without a value."""
    if not value:
        return ""
    zone, name = event_zone(event)
    moment = _moment(value, zone)
    if moment is None:
        return value
    day, time = _day_time(moment)
    return f"{day}, {time}{CLOCK[language() if language() in CLOCK else 'de']} ({name})"


def when_range(starts: str | None, ends: str | None, zone: ZoneInfo = ZONE) -> str:
    """From–to as the mails write it: the day once when both fall on it ("Mi., 3. März 2027,
    9:30–12:00 Uhr" / "Wed, 3 March 2027, 09:30–12:00"), else both in full; Berlin time unless ``zone``."""
    start, end = _moment(starts, zone), _moment(ends, zone)
    if start is None or end is None:
        return when(starts) if end is None else f"{when(starts)} – {when(ends)}"
    clock = CLOCK[language() if language() in CLOCK else "de"]
    (start_day, start_time), (end_day, end_time) = _day_time(start), _day_time(end)
    if start.date() == end.date():
        return f"{start_day}, {start_time}–{end_time}{clock}"
    return f"{start_day}, {start_time}{clock} – {end_day}, {end_time}{clock}"


def percent(share: float | None) -> str:
    """A share (0.033) as a percentage in the page's language, one decimal at most:
    "3,3 %" (with a no-break space) / "3.3%" (CLDR via Babel); None as 0."""
    lang = language() if language() in LOCALES else "de"
    locale = Locale.parse(LOCALES[lang])
    # the locale's own pattern ("#,##0\u00a0%" in German) with one optional decimal
    pattern = re.sub(r"0(?=\W*%)", "0.#", locale.percent_formats[None].pattern, count=1)
    return babel_numbers.format_percent(share or 0, pattern, locale=locale)


def number(value: int | float | None) -> str:
    """A count or figure in the page's language: "1.250" / "1,250"; None as an empty text."""
    if value is None:
        return ""
    lang = language() if language() in LOCALES else "de"
    return babel_numbers.format_decimal(value, locale=LOCALES[lang])


def reason_text(reason: dict) -> str:
    """Why a partner is suggested (a reason of match-suggestion.v1), in the page's language from the
    reason's fields: the platform's one wording of reasons (``verbund.wording.reason_text``), the same
    words as the mails and the inbox. A match by meaning says how well in words (its ``fit`` band),
    never a percentage; a page in a language the platform does not write reads German."""
    return wording.reason_text(reason, language() if language() in wording.LANGUAGES else "de")


def flat_errors(errors) -> list[str]:
    """A field's errors as one list of messages (a list of inputs has a list per input)."""
    flat = []
    for error in errors or []:
        flat.extend(flat_errors(error) if isinstance(error, (list, tuple, dict)) else [str(error)])
    return flat


def web_link(address: str | None) -> str | None:
    """``address`` (an event's online address, as the service holds it) trimmed, when it may be an ``href``:
    an http or https URL with a host; else None, and the page shows it as text only. The service checks
    addresses on the way in; this keeps a hostile one (``javascript:``, ``data:``) from a link all the same."""
    address = (address or "").strip()
    try:
        parts = urlsplit(address)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    return address if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        sector=lambda value: reference_label("sector", value),
        association=lambda value: reference_label("association", value),
        state=lambda value: reference_label("state", value),
        language_name=lambda value: reference_label("language", value),
        topic=topic_label, competency=competency_text, competency_name=competency_name, when=when,
        when_range=lambda event: when_range(event.get("starts_at"), event.get("ends_at")),
        when_range_zoned=when_range_zoned, when_zoned=when_zoned,
        flat_errors=flat_errors, percent=percent, number=number,
        reason_text=reason_text, web_link=web_link)
    app.jinja_env.globals.update(competency_labels=competency_labels)
