"""Attendee lists as CSV and Excel files for organizers."""
from __future__ import annotations

import csv
import io
import re

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

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
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _safe(value):
    """Text that a spreadsheet would run as a formula (=, +, -, @) is quoted: exports carry member-typed names."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def filename(event: dict, extension: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", event["title"].lower()).strip("-")[:60] or "event"
    return f"attendees-{slug}-{event['starts_at'][:10]}.{extension}"


def to_csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([key for key, _ in COLUMNS])
    for row in rows:
        writer.writerow(["" if row[key] is None else _safe(row[key]) for key, _ in COLUMNS])
    return buffer.getvalue().encode("utf-8")


def to_xlsx(event: dict, rows: list[dict]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Attendees"
    sheet.append([label for _, label in COLUMNS])
    for row in rows:
        sheet.append([_safe(row[key]) for key, _ in COLUMNS])
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    for index, (key, label) in enumerate(COLUMNS, start=1):
        width = max([len(label), *(len(str(row[key] or "")) for row in rows)])
        sheet.column_dimensions[get_column_letter(index)].width = min(width + 2, 60)
    info = workbook.create_sheet("Event")
    for key in ("title", "kind", "starts_at", "ends_at", "timezone", "capacity", "status"):
        info.append([key, _safe(str(event[key]))])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
