"""The member import's messages in German and English.

A small keyed catalogue per language (``locale/de.yaml``, ``locale/en.yaml``)
rather than gettext: the messages are few, a translator edits plain YAML, and
nothing has to be compiled at build time. ``Messages(language).text(key,
**params)`` formats one message; ``field_error`` translates marshmallow's
common messages (required, not one of, invalid e-mail, length, range).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

LANGUAGES = ("de", "en")
# The platform's people are staff of German associations: a request that
# names neither language (no Accept-Language, or only others) gets German.
DEFAULT_LANGUAGE = "de"

# marshmallow 3/4 messages -> (catalogue key, names of the captured groups).
_MARSHMALLOW = [
    (re.compile(r"Missing data for required field\.|Field may not be null\."), "required"),
    (re.compile(r"Must be one of: (?P<choices>.*)\."), "one_of"),
    (re.compile(r"Not a valid email address\."), "invalid_email"),
    (re.compile(r"Not a valid URL\."), "invalid_url"),
    (re.compile(r"Not a valid integer\."), "invalid_integer"),
    (re.compile(r"Length must be between (?P<min>\d+) and (?P<max>\d+)\."), "length_between"),
    (re.compile(r"Shorter than minimum length (?P<min>\d+)\."), "length_min"),
    (re.compile(r"Longer than maximum length (?P<max>\d+)\."), "length_max"),
    (re.compile(r"Must be greater than or equal to (?P<min>-?\d+)\."), "range_min"),
    (re.compile(r"Must be less than or equal to (?P<max>-?\d+)\."), "range_max"),
    # the kit's text field (verbund.schema_fields.normalize_text)
    (re.compile(r"must not contain a tab or line break \(U\+(?P<code>[0-9A-F]{4,6}) at position (?P<position>\d+)\)"),
     "text_line_break"),
    (re.compile(r"must not contain a control or invalid character \(U\+(?P<code>[0-9A-F]{4,6}) at position "
                r"(?P<position>\d+)\)"), "text_control"),
    # the members schemas' own messages
    (re.compile(r"a German postcode has five digits"), "postcode"),
    (re.compile(r"unknown topic.*"), "unknown_topic"),
    (re.compile(r"unknown vocabulary term.*"), "unknown_term"),
    (re.compile(r"give a vocabulary term id or a free-text label"), "term_or_label"),
    (re.compile(r"lists each value once"), "each_once"),
]


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    """The messages of ``language`` ("de" or "en") by key; KeyError for another language."""
    if language not in LANGUAGES:
        raise KeyError(language)
    return yaml.safe_load((Path(__file__).parent / "locale" / f"{language}.yaml").read_text("utf-8"))


def negotiate(accept_languages) -> str:
    """The language to answer in, from werkzeug's ``request.accept_languages``
    (RFC 9110 Accept-Language; "en-GB" counts as "en"); German by default."""
    return accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE)


class Messages:
    """The messages of one language: ``Messages("en").text("same_as_row", row=3)``."""

    def __init__(self, language: str = DEFAULT_LANGUAGE):
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self._messages = catalogue(self.language)

    def text(self, key: str, **params) -> str:
        """The message ``key`` with its placeholders filled; KeyError for an unknown key."""
        return self._messages[key].format(**params)

    def field_error(self, message: str) -> str:
        """A marshmallow field message in this language; unknown messages unchanged."""
        for pattern, key in _MARSHMALLOW:
            match = pattern.fullmatch(message)
            if match:
                return self.text(key, **match.groupdict())
        return message
