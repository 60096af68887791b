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

from verbund.schema_fields import NO_VISIBLE_CHARACTER, NON_ASCII_LOCAL_PART

LANGUAGES = ("de", "en")
# The platform's people are staff of German associations: a request that
# names neither language (no Accept-Language, or only others) gets German.
DEFAULT_LANGUAGE = "de"

# A bound as marshmallow writes it: an int or a float, perhaps negative.
_NUMBER = r"-?\d+(?:\.\d+)?"

# marshmallow 3/4 messages -> catalogue key; the named groups fill its placeholders.
_MARSHMALLOW = [
    (re.compile(r"Missing data for required field\.|Field may not be null\."), "required"),
    (re.compile(r"Must be one of: (?P<choices>.*)\."), "one_of"),
    (re.compile(r"Not a valid email address\."), "invalid_email"),
    (re.compile(r"Not a valid URL\."), "invalid_url"),
    (re.compile(r"Not a valid integer\."), "invalid_integer"),
    # validate.Length and validate.Range, every variant (min only, max only, both; inclusive or not)
    (re.compile(r"Length must be between (?P<min>\d+) and (?P<max>\d+)\."), "length_between"),
    (re.compile(r"Length must be (?P<equal>\d+)\."), "length_equal"),
    (re.compile(r"Shorter than minimum length (?P<min>\d+)\."), "length_min"),
    (re.compile(r"Longer than maximum length (?P<max>\d+)\."), "length_max"),
    (re.compile(rf"Must be greater than or equal to (?P<min>{_NUMBER}) and less than or equal to (?P<max>{_NUMBER})\."),
     "range_between"),
    (re.compile(rf"Must be greater than (?P<min>{_NUMBER}) and less than or equal to (?P<max>{_NUMBER})\."),
     "range_gt_max"),
    (re.compile(rf"Must be greater than or equal to (?P<min>{_NUMBER}) and less than (?P<max>{_NUMBER})\."),
     "range_min_lt"),
    (re.compile(rf"Must be greater than (?P<min>{_NUMBER}) and less than (?P<max>{_NUMBER})\."), "range_gt_lt"),
    (re.compile(rf"Must be greater than or equal to (?P<min>{_NUMBER})\."), "range_min"),
    (re.compile(rf"Must be greater than (?P<min>{_NUMBER})\."), "range_gt"),
    (re.compile(rf"Must be less than or equal to (?P<max>{_NUMBER})\."), "range_max"),
    (re.compile(rf"Must be less than (?P<max>{_NUMBER})\."), "range_lt"),
    # the kit's e-mail field (verbund.schema_fields.Email)
    (re.compile(re.escape(NON_ASCII_LOCAL_PART)), "email_non_ascii"),
    # the kit's text field (verbund.schema_fields.normalize_text)
    (re.compile(r"must not contain a tab or line break \(U\+(?P<code>[0-9A-F]{4,6}) at position (?P<position>\d+)\)"),
     "text_line_break"),
    (re.compile(r"must not contain a control or invalid character \(U\+(?P<code>[0-9A-F]{4,6}) at position "
                r"(?P<position>\d+)\)"), "text_control"),
    (re.compile(re.escape(NO_VISIBLE_CHARACTER) + r" \(U\+(?P<code>[0-9A-F]{4,6}) at position \d+\)"),
     "text_invisible"),
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
                return self.text(key, **{name: self.number(value) if name in ("min", "max", "equal") else value
                                         for name, value in match.groupdict().items()})
        return message

    def number(self, text: str) -> str:
        """A number as this language writes it: "10000000000000" is "10.000.000.000.000"
        in German (DIN 5008 groups by dots) and "10,000,000,000,000" in English."""
        whole, _, fraction = text.partition(".")
        grouped = f"{int(whole):,}"
        if self.language == "de":
            return grouped.replace(",", ".") + (f",{fraction}" if fraction else "")
        return grouped + (f".{fraction}" if fraction else "")
