"""Translations: gettext catalogues (``translations/<lang>/LC_MESSAGES/messages.po``, German and
English) compiled with Babel when the portal starts, and the labels of the shared reference data
(sectors, associations, states, topics, competencies) in the page's language."""
from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import format_date, format_time, get_locale

from verbund import reference, vocabulary
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
    """A profile's competency in words: the vocabulary term's name in the page's language, else the label typed."""
    term = _vocabulary().competencies.get(competency.get("term") or "")
    return term.label(language()) if term else competency.get("label") or competency.get("term") or ""


def competency_name(value: str | None) -> str:
    """A vocabulary term id as its name in the page's language; any other text as it is."""
    term = _vocabulary().competencies.get(value or "")
    return term.label(language()) if term else value or ""


def choices(kind: str) -> list[tuple[str, str]]:
    """(id, name) of a reference kind (sector, association, state, language) in the page's language."""
    return [(value, reference.label(kind, value, language())) for value in reference.NAMES[kind]]


def when(value: str | None) -> str:
    """An ISO 8601 timestamp as a date and time in the page's language and Berlin time
    ("05.01.2027, 09:30" / "5 Jan 2027, 09:30")."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return f"{format_date(moment, 'medium')}, {format_time(moment, 'HH:mm')}"


def flat_errors(errors) -> list[str]:
    """A field's errors as one list of messages (a list of inputs has a list per input)."""
    flat = []
    for error in errors or []:
        flat.extend(flat_errors(error) if isinstance(error, (list, tuple, dict)) else [str(error)])
    return flat


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        sector=lambda value: reference_label("sector", value),
        association=lambda value: reference_label("association", value),
        state=lambda value: reference_label("state", value),
        language_name=lambda value: reference_label("language", value),
        topic=topic_label, competency=competency_text, competency_name=competency_name, when=when,
        flat_errors=flat_errors)
    app.jinja_env.globals.update(competency_labels=competency_labels)
