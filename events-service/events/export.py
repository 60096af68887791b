"""Attendee lists as CSV and Excel files for organizers.

Both formats are made robust against what is already stored: member-typed
text may hold control characters (it came in before input was cleaned) or
look like a spreadsheet formula. CSV comes in three dialects, because Excel
opens a double-clicked CSV with the list separator and encoding of the
user's region: ``excel-de`` (German Excel: UTF-8 with BOM, ``;``, dates as
``31.12.2026 09:00:00``), ``excel`` (UTF-8 with BOM, ``,``, dates as
``2026-12-31 09:00:00``) and ``rfc4180`` (plain RFC 4180 for programs: UTF-8
without BOM, ``,``, ISO 8601 times with their offset).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime

from marshmallow import Schema, fields, validate
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils import get_column_letter

from verbund.reference import label

COLUMNS = (
    ("status", "Status"),
    ("waitlist_position", "Waitlist position"),
    ("organisation", "Organisation"),
    ("sector", "Sector"),
    ("contact_name", "Contact"),
    ("contact_email", "E-mail"),
    ("language", "Language"),
    ("seats", "Seats"),
    ("attendees", "Attendees"),
    ("registered_at", "Registered at"),
    ("member_id", "Member id"),
    ("registration_id", "Registration id"),
)
# The headings an organizer reads, in the request's language (the keys stay for programs: ?headers=codes).
LABELS = {
    "en": dict(COLUMNS),
    "de": {"status": "Status", "waitlist_position": "Wartelistenplatz", "organisation": "Organisation",
           "sector": "Branche", "contact_name": "Ansprechperson", "contact_email": "E-Mail", "language": "Sprache",
           "seats": "Plätze", "attendees": "Teilnehmende", "registered_at": "Angemeldet am",
           "member_id": "Mitglieds-ID", "registration_id": "Anmelde-ID"},
}
STATUS = {"en": {"confirmed": "confirmed", "waitlisted": "waitlisted", "cancelled": "cancelled"},
          "de": {"confirmed": "bestätigt", "waitlisted": "Warteliste", "cancelled": "storniert"}}
SHEETS = {"en": ("Attendees", "Event"), "de": ("Teilnehmende", "Veranstaltung")}
TIME_COLUMNS = ("registered_at",)
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# What XML 1.0 and so .xlsx cannot hold (openpyxl raises IllegalCharacterError on it: C0 but tab,
# newline and carriage return), plus DEL and the C1 controls, which no one means to type either.
CONTROL_CHARACTERS = re.compile(f"(?:{ILLEGAL_CHARACTERS_RE.pattern}|[\x7f-\x9f])+")
# OWASP "CSV Injection": a cell starting with one of these is run as a formula by spreadsheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Dialect:
    """One CSV flavour: separator, whether a UTF-8 BOM leads, and how times are written
    (``None``: ISO 8601 as stored, else a strftime format in the event's local time)."""
    name: str
    delimiter: str
    bom: bool
    time_format: str | None


DIALECTS = {
    # German Excel's list separator is ";" (the comma is the decimal separator), and it reads
    # a file as UTF-8 only when a BOM says so; "31.12.2026 09:00:00" it takes as a date.
    "excel-de": Dialect("excel-de", ";", True, "%d.%m.%Y %H:%M:%S"),
    # Excel elsewhere: "," and a BOM (without one it reads Windows-1252 and garbles umlauts).
    "excel": Dialect("excel", ",", True, "%Y-%m-%d %H:%M:%S"),
    # For programs: RFC 4180 as it stands, no BOM, times in ISO 8601 with their offset.
    "rfc4180": Dialect("rfc4180", ",", False, None),
}


class ExportQuerySchema(Schema):
    headers = fields.String(validate=validate.OneOf(["codes", "labels"]), load_default="codes", metadata={
        "description": "`codes` (default: the column keys, for programs) or `labels`: headings and status "
                       "values in the request's language (German or English, by Accept-Language), as the "
                       "portal asks for them"})
    dialect = fields.String(validate=validate.OneOf(sorted(DIALECTS)), metadata={"description": (
        "CSV flavour: `excel-de` (German Excel: UTF-8 with BOM, `;` between cells, dates as "
        "31.12.2026 09:00:00), `excel` (UTF-8 with BOM, `,`, dates as 2026-12-31 09:00:00) or `rfc4180` "
        "(UTF-8 without BOM, `,`, ISO 8601 times). Default: `excel-de` when Accept-Language prefers "
        "German, else `excel`.")})


def choose_dialect(requested: str | None, languages) -> Dialect:
    """The dialect asked for with ``?dialect=``, else by the request's language: ``excel-de`` when
    ``languages`` (werkzeug's ``request.accept_languages``) prefers German over English, else ``excel``."""
    if requested:
        return DIALECTS[requested]
    return DIALECTS["excel-de" if languages.best_match(("en", "de")) == "de" else "excel"]


def choose_language(languages) -> str:
    """``de`` when ``languages`` (werkzeug's ``request.accept_languages``) prefers German over English, else ``en``."""
    return "de" if languages.best_match(("en", "de")) == "de" else "en"


def _status(value, language: str | None):
    return STATUS[language].get(value, value) if language else value


def _in_words(row: dict, language: str | None) -> dict:
    """With ``language`` (``?headers=labels``): status, sector and language in words of that language
    ("bestätigt", "Logistik", "Deutsch"; ``verbund.reference.label``, the names the member import
    reads too, so a list exported in words can be read back); without: the codes, for programs."""
    if not language:
        return row
    return {**row, "status": _status(row["status"], language),
            **{key: label(key, row[key], language) for key in ("sector", "language") if row.get(key)}}


def clean(value):
    """Text fit for a spreadsheet cell: runs of control characters become one space
    (a vertical tab in a stored name made the whole .xlsx a 500). Other values pass unchanged."""
    if isinstance(value, str):
        return CONTROL_CHARACTERS.sub(" ", value)
    return value


def _defused(value):
    """A CSV cell that a spreadsheet would run as a formula gets a leading apostrophe (OWASP)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _time(value, dialect: Dialect):
    if not value or dialect.time_format is None:
        return value
    return datetime.fromisoformat(value).strftime(dialect.time_format)


def filename(event: dict, extension: str) -> str:
    """``attendees-<title>-<YYYY-MM-DD>.<extension>``; the title keeps its letters ("Gießerei"),
    anything else between words becomes "-". verbund.downloads makes the ASCII stand-in."""
    title = re.sub(r"[\W_]+", "-", event["title"]).strip("-")[:60] or "event"
    return f"attendees-{title}-{event['starts_at'][:10]}.{extension}"


def to_csv(rows: list[dict], dialect: Dialect = DIALECTS["rfc4180"], language: str | None = None) -> bytes:
    """The attendee list as CSV in ``dialect``: the column keys as header (with ``language``, ``de`` or
    ``en``: the headings and status, sector and language values in that language), one line per
    registration, CRLF line ends (RFC 4180), text cleaned of control characters and defused against formulas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=dialect.delimiter)
    writer.writerow([LABELS[language][key] if language else key for key, _ in COLUMNS])
    for row in rows:
        row = _in_words(row, language)
        writer.writerow(["" if row[key] is None else
                         _defused(clean(_time(row[key], dialect) if key in TIME_COLUMNS else row[key]))
                         for key, _ in COLUMNS])
    return ("\ufeff" if dialect.bom else "").encode() + buffer.getvalue().encode("utf-8")


def _text_cells(sheet) -> None:
    """Every text cell is stored as text, never as a formula, and marked quotePrefix so Excel keeps
    it text when it is edited: the name reads as typed, "=HYPERLINK(…" included."""
    for row in sheet.iter_rows():
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"
                if cell.value.startswith(FORMULA_STARTS):
                    cell.quotePrefix = True


def to_xlsx(event: dict, rows: list[dict], language: str = "en") -> bytes:
    """The attendee list as an Excel workbook in ``language`` (``de`` or ``en``): sheet "Attendees" /
    "Teilnehmende" (labelled header, status, sector and language in words, frozen, filtered;
    ``registered_at`` a date cell in the event's local time) and sheet "Event" / "Veranstaltung" (the
    event's key facts). Text is cleaned of control characters and never stored as a formula."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title, facts = SHEETS[language]
    sheet.append([LABELS[language][key] for key, _ in COLUMNS])
    for row in rows:
        row = _in_words(row, language)
        # Times as Excel dates (sortable, filterable), in the event's time zone: Excel has no zones.
        sheet.append([datetime.fromisoformat(row[key]).replace(tzinfo=None) if key in TIME_COLUMNS and row[key]
                      else clean(row[key]) for key, _ in COLUMNS])
    for key in TIME_COLUMNS:
        column = get_column_letter([k for k, _ in COLUMNS].index(key) + 1)
        for cell in sheet[column][1:]:
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    for index, (key, _) in enumerate(COLUMNS, start=1):
        label = LABELS[language][key]
        width = max([len(label), *(len(str(row[key] or "")) for row in rows)])
        sheet.column_dimensions[get_column_letter(index)].width = min(width + 2, 60)
    info = workbook.create_sheet(facts)
    for key in ("title", "kind", "starts_at", "ends_at", "timezone", "capacity", "status"):
        info.append([key, clean(str(event[key]))])
    _text_cells(sheet)
    _text_cells(info)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
