"""marshmallow fields the services' schemas share.

What a text field accepts is decided here, once, for every service
(``Text``, ``Email``, ``Url``); ``search_key`` is how stored text is
compared in searches.
"""
from __future__ import annotations

import re
import unicodedata

from marshmallow import ValidationError, fields, validate

# Beyond this the offset would overflow a database integer; no list is that long.
MAX_PAGE = 100_000
# The largest integer every database of the platform stores: SQLite's INTEGER and
# PostgreSQL's BIGINT are signed 64-bit. Every integer input has a maximum at or
# below it (most a far smaller business one), or a large value is a 500, not a 422.
MAX_DB_INTEGER = 2**63 - 1
# Euro amounts of a firm (turnover, balance sheet total): 10 trillion EUR is beyond the
# largest company's figures and far inside 64 bits.
MAX_EUR = 10**13

# Characters no text field accepts (the single-line ones refuse line breaks as well):
# - C0 controls U+0000-U+001F (a vertical tab or NUL breaks XLSX and XML exports, a NUL
#   PostgreSQL text), DEL U+007F and the C1 controls U+0080-U+009F (Unicode category Cc);
#   multi-line fields keep tab, line feed and carriage return (CR LF and CR become LF);
# - surrogates U+D800-U+DFFF, which JSON's "\\ud800" escapes can smuggle in alone and
#   which are no characters at all (they cannot be encoded as UTF-8);
# - the noncharacters U+FDD0-U+FDEF and U+xFFFE/U+xFFFF of every plane (Unicode 15, 23.7),
#   never meant for interchange;
# - the bidirectional embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069,
#   which make a name display as something else ("Trojan Source", CVE-2021-42574);
#   the implicit marks U+200E/U+200F, which cannot reorder text, stay allowed.
# Single-line fields also refuse the line and paragraph separators U+2028/U+2029.
# A text left with no visible character (only format characters such as the zero-width space
# U+200B, Unicode Cf, separators Z* and controls C*) is refused as well: a name of zero-width
# spaces shows as nothing in a heading or list, and nobody can type it to confirm a deletion.
_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane * 0x10000 + 0xfffe)}{chr(plane * 0x10000 + 0xffff)}" for plane in range(17))
_ALWAYS_REFUSED = f"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff{_NONCHARACTERS}{_BIDI_CONTROLS}"
_MULTI_LINE_REFUSED = re.compile(f"[{_ALWAYS_REFUSED}]")
_SINGLE_LINE_REFUSED = re.compile(f"[{_ALWAYS_REFUSED}\t\n\r\u2028\u2029]")
# Trimmed first, in any field: spaces (Unicode Zs), tab, line breaks and a byte order mark that
# a copy from a spreadsheet cell or a file brings along. Other controls are refused, not trimmed.
_SPACE = "\t\n\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200b))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"


def normalize_text(value: str, *, multiline: bool = False) -> str:
    """Text as the platform stores it: surrounding whitespace trimmed, line
    breaks as LF, NFC (Unicode Standard Annex #15).

    ``value``: any str. Raises ``ValidationError`` naming the first refused
    character by its code point (see the list above this function) and its
    position, counted from 1 in the trimmed text, or, for a text of invisible
    characters only, its first one. The empty text passes (required fields
    and lengths decide about it).
    """
    value = value.strip(_SPACE)
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    refused = (_MULTI_LINE_REFUSED if multiline else _SINGLE_LINE_REFUSED).search(value)
    if refused:
        char = refused.group()
        kind = "a tab or line break" if char in "\t\n\r\u2028\u2029" else "a control or invalid character"
        raise ValidationError(f"must not contain {kind} (U+{ord(char):04X} at position {refused.start() + 1})")
    if value and not any(unicodedata.category(char)[0] not in "CZ" for char in value):
        raise ValidationError(f"{NO_VISIBLE_CHARACTER} (U+{ord(value[0]):04X} at position 1)")
    return unicodedata.normalize("NFC", value)


NO_VISIBLE_CHARACTER = "must contain a visible character, not only invisible ones"


# Default-ignorable characters (Unicode 15, 5.21: soft hyphen, zero-width space and joiners, word
# joiner, BOM, ...): they show as nothing, so nobody types them into a search box.
_IGNORABLE = re.compile("[\u00ad\u034f\u180b-\u180f\u200b-\u200f\u2060-\u2064\ufe00-\ufe0f\ufeff]")


def search_key(value: str) -> str:
    """The form in which text is compared in searches: NFC, case-folded
    (Unicode full case folding, ``str.casefold``: "Straße" and "STRASSE" meet),
    NFC again since folding can decompose, without default-ignorable characters
    ("Alpha\u200bLogistik" is found as "alphalogistik"). Both the stored column
    and the query go through it, so SQL's ASCII-only ``lower()`` is never needed."""
    return _IGNORABLE.sub("", unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).casefold()))


class _TextMixin:
    """Normalises with ``normalize_text`` before the field's own checks, so
    lengths, patterns and OneOf validators see the stored form."""

    def __init__(self, *args, multiline: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.multiline = multiline

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = normalize_text(value, multiline=self.multiline)
        return super()._deserialize(value, attr, data, **kwargs)


class Text(_TextMixin, fields.String):
    """A text field of an API input (body or query string).

    Single-line by default (names, cities, titles, labels, query terms);
    ``multiline=True`` for descriptions, messages and comments, which keep
    tab and line feeds. Loads as NFC text without surrounding whitespace;
    a refused character is a field error (answered with 422). Validators
    such as ``validate.Length`` apply to the normalised text.
    """


class Email(_TextMixin, fields.Email):
    """``fields.Email`` with the text rules of ``Text`` (single-line), limited
    to what the platform can mail to: the local part (before the last "@")
    must be ASCII, since notifications sends without SMTPUTF8 (RFC 6531);
    an internationalised domain ("bäcker.example") is fine, it is sent in
    its IDNA form (RFC 5891). Refused: a field error (422) saying so.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        address = super()._deserialize(value, attr, data, **kwargs)
        if address and not address.rpartition("@")[0].isascii():
            raise ValidationError(NON_ASCII_LOCAL_PART)
        return address


NON_ASCII_LOCAL_PART = ("the part before the @ must be written without umlauts or accents "
                        "(ASCII); mail cannot be delivered to such an address")


# What an http(s) URL may contain besides non-ASCII letters (an IRI, RFC 3987): RFC 3986's
# unreserved and reserved characters (section 2.2/2.3) and "%" only as the start of a
# percent-encoding "%XX" (section 2.1). "<", ">", '"', "{", "}", "|", "\\", "^" and "`"
# are not part of a URL; a page that links such a value would have to guess.
_URL_REFUSED = re.compile(r'[<>"{}|\\^`]|%(?![0-9A-Fa-f]{2})')


class Url(_TextMixin, fields.Url):
    """``fields.Url`` with the text rules of ``Text`` (single-line), and only
    the characters RFC 3986 allows (non-ASCII letters too, as in an IRI,
    RFC 3987): a stray "<" or a "%" not followed by two hex digits is a
    field error (422) naming the character and its position."""

    def _deserialize(self, value, attr, data, **kwargs):
        url = super()._deserialize(value, attr, data, **kwargs)
        if url and (bad := _URL_REFUSED.search(url)):
            raise ValidationError(
                f"{bad.group()[0]!r} at position {bad.start() + 1} is not allowed in a URL"
                + (" (a % must start a percent-encoding such as %20)" if bad.group() == "%" else ""))
        return url


def page_field() -> fields.Integer:
    """The ``page`` query parameter: 1 by default, 1 to ``MAX_PAGE``."""
    return fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))


def euro_field(**kwargs) -> fields.Integer:
    """A whole euro amount of a firm's figures (turnover, balance sheet total):
    a JSON integer from 0 to ``MAX_EUR`` (10^13 EUR), so it fits a 64-bit
    database integer (``MAX_DB_INTEGER``); bigger is a field error (422)."""
    return fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_EUR), **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true or false only, for request bodies: consent given as 1 or "yes"
    is not consent. (Query strings, which are text, keep fields.Boolean.)"""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value
