"""Member lists from CSV or Excel: rows in, profile dicts out.

One row per organisation. Lists (associations, offers, needs, topics) are
separated by semicolons; an offer or need may carry a description after a
colon ("Batteriezellfertigung: Pouch-Zellen bis 50 Ah"). Headers are
matched case-insensitively, in English or German.
"""
from __future__ import annotations

import csv
import io
import re

from verbund.errors import BadRequest, UnsupportedMediaType

CSV_TYPES = ("text/csv", "application/csv", "text/plain")
EXCEL_TYPES = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",)
MAX_ROWS = 10_000

# Column name -> the names a header may have.
COLUMNS = {
    "name": ("name", "organisation", "organization", "firma", "unternehmen"),
    "sector": ("sector", "branche", "sektor"),
    "associations": ("associations", "verbände", "verbaende", "verband"),
    "state": ("state", "bundesland"),
    "postcode": ("postcode", "zip", "plz", "postleitzahl"),
    "city": ("city", "ort", "stadt"),
    "employees": ("employees", "mitarbeiter", "beschäftigte", "beschaeftigte"),
    "turnover_eur": ("turnover_eur", "turnover", "umsatz"),
    "balance_sheet_eur": ("balance_sheet_eur", "balance_sheet", "bilanzsumme"),
    "website": ("website", "webseite", "url"),
    "contact_name": ("contact_name", "contact", "ansprechpartner", "kontakt"),
    "contact_email": ("contact_email", "email", "e-mail"),
    "language": ("language", "sprache"),
    "offers": ("offers", "competencies", "angebote", "kompetenzen"),
    "needs": ("needs", "bedarfe", "bedarf", "gesucht"),
    "topics": ("topics", "themen"),
    "suggest_as_partner": ("suggest_as_partner", "partnervorschlag"),
    "email_consent": ("email_consent", "e-mail-einwilligung", "email_einwilligung"),
}
_HEADER = {alias: column for column, aliases in COLUMNS.items() for alias in aliases}
_TRUE = {"1", "true", "yes", "y", "ja", "j", "x"}
_FALSE = {"", "0", "false", "no", "n", "nein"}


class RowError(ValueError):
    """A cell that cannot be read; reported with its row."""


def read_table(content: bytes, content_type: str) -> list[dict]:
    """The rows of an uploaded file as {column: text} dicts, by header."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in EXCEL_TYPES:
        rows = _excel_rows(content)
    elif media_type in CSV_TYPES:
        rows = _csv_rows(content)
    else:
        raise UnsupportedMediaType(f"send text/csv or {EXCEL_TYPES[0]}, not {media_type or 'nothing'}")
    if not rows:
        raise BadRequest("the file has no header row")
    header, body = rows[0], rows[1:]
    columns = [_HEADER.get(str(cell or "").strip().lower()) for cell in header]
    if "name" not in columns:
        raise BadRequest("no 'name' column in the header", known_columns=sorted(COLUMNS))
    if len(body) > MAX_ROWS:
        raise BadRequest(f"at most {MAX_ROWS} rows per import")
    return [{column: "" if cell is None else str(cell).strip()
             for column, cell in zip(columns, row, strict=False) if column}
            for row in body if any(str(cell or "").strip() for cell in row)]


def _csv_rows(content: bytes) -> list[list[str]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("cp1252")  # what Excel on Windows writes
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return list(csv.reader(io.StringIO(text), dialect))


def _excel_rows(content: bytes) -> list[list]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise BadRequest(f"not a readable Excel workbook: {exc}") from None
    sheet = workbook.worksheets[0]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    workbook.close()
    return rows


def _list(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def _competencies(cell: str) -> list[dict]:
    items = []
    for part in _list(cell):
        label, _, description = part.partition(":")
        items.append({"label": label.strip(), "description": description.strip() or None})
    return items


def _bool(cell: str, column: str) -> bool:
    value = cell.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowError(f"{column}: {cell!r} is not yes/no")


def _int(cell: str, column: str) -> int | None:
    text = cell.replace(" ", "")
    if not text:
        return None
    if re.fullmatch(r"\d{1,3}([.,]\d{3})+", text):  # thousands separators: 1.200.000 or 1,200,000
        text = re.sub(r"[.,]", "", text)
    try:
        value = float(text)  # Excel hands over 120 as 120.0
    except ValueError:
        value = None
    if value is None or not value.is_integer():
        raise RowError(f"{column}: {cell!r} is not a whole number")
    return int(value)


def _postcode(cell: str) -> str:
    text = cell.removesuffix(".0")
    return text.zfill(5) if text.isdigit() and len(text) < 5 else text


def to_profile(row: dict) -> dict:
    """A row as the input of a registration; RowError for unreadable cells."""
    return {
        "name": row.get("name", ""),
        "sector": row.get("sector", "").lower(),
        "associations": _list(row.get("associations", "")),
        # Spreadsheets drop leading zeros of postcodes such as 01067 (Dresden).
        "region": {"state": row.get("state", "").upper(), "postcode": _postcode(row.get("postcode", "")),
                   "city": row.get("city", "")},
        "size": {"employees": _int(row.get("employees", ""), "employees"),
                 "turnover_eur": _int(row.get("turnover_eur", ""), "turnover_eur"),
                 "balance_sheet_eur": _int(row.get("balance_sheet_eur", ""), "balance_sheet_eur")},
        "website": row.get("website") or None,
        "contact": {"name": row.get("contact_name", ""), "email": row.get("contact_email", ""),
                    "language": (row.get("language") or "de").lower()},
        "offers": _competencies(row.get("offers", "")),
        "needs": _competencies(row.get("needs", "")),
        "topics": _list(row.get("topics", "")),
        "consent": {"suggest_as_partner": _bool(row.get("suggest_as_partner", ""), "suggest_as_partner"),
                    "email": _bool(row.get("email_consent", ""), "email_consent")},
    }
