"""File downloads: one place that names a file for the browser.

``Content-Disposition`` after RFC 6266 with the RFC 8187 ``filename*``
parameter, so that "Gießerei" survives the download, plus a plain ASCII
``filename`` for clients that know no better (RFC 6266, section 4.3).
Every download of every service (attendee exports, ``.ics`` files) goes
through :func:`file_response`.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from werkzeug.wrappers import Response

# Characters no file system takes in a name (Windows is the strictest), and control characters.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|]+')
# German transliteration first (ü → ue, not u); NFKD then takes the accents off the rest.
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss", "ẞ": "SS"})
_NOT_TOKEN = re.compile(r"[^a-z0-9._-]+")
# RFC 8187 attr-char beyond what quote() keeps anyway (letters, digits, "-._~").
_ATTR_CHARS = "!#$&+^`|"
MAX_NAME = 150  # characters; well below the 255 bytes most file systems allow


def safe_name(name: str) -> str:
    """``name`` fit for a file system: path separators, reserved and control characters become "-",
    text is NFC, leading dots and surrounding blanks go, and it is cut to MAX_NAME characters
    keeping the extension. Empty results become "download"."""
    name = _UNSAFE.sub("-", unicodedata.normalize("NFC", name)).strip().lstrip(".").strip()
    if len(name) > MAX_NAME:
        stem, dot, extension = name.rpartition(".")
        name = stem[:MAX_NAME - len(extension) - 1] + "." + extension if dot and len(extension) <= 10 \
            else name[:MAX_NAME]
    return name or "download"


def ascii_name(name: str) -> str:
    """The ASCII stand-in for ``name``: German umlauts and ß transliterated ("Gießerei.csv" →
    "giesserei.csv"), other accents dropped, lower case, anything else a "-"."""
    plain = unicodedata.normalize("NFKD", name.translate(_GERMAN)).encode("ascii", "ignore").decode("ascii")
    return _NOT_TOKEN.sub("-", plain.lower()).strip("-.") or "download"


def content_disposition(name: str, disposition: str = "attachment") -> str:
    """The ``Content-Disposition`` value for a file called ``name``.

    ``content_disposition("Gießerei.csv")`` is
    ``attachment; filename="giesserei.csv"; filename*=UTF-8''Gie%C3%9Ferei.csv``
    (RFC 6266 section 4.3: the ASCII ``filename`` first, then ``filename*`` in the
    RFC 8187 encoding, which current browsers prefer). A name that is already a
    plain ASCII token gets ``filename`` only. ``disposition`` is "attachment"
    (save) or "inline" (open, e.g. a calendar file).
    """
    name = safe_name(name)
    fallback = ascii_name(name)
    value = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
    return value


def file_response(body: bytes, content_type: str, name: str, disposition: str = "attachment") -> Response:
    """A download: ``body`` with its media type and :func:`content_disposition` for ``name``."""
    return Response(body, content_type=content_type, headers={"Content-Disposition": content_disposition(
        name, disposition)})
