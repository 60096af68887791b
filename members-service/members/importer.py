"""Member lists from CSV or Excel: rows in, profile dicts out.

One row per organisation. Lists (associations, offers, needs, topics) are
separated by semicolons; an offer or need may carry a description after a
colon ("Batteriezellfertigung: Pouch-Zellen bis 50 Ah"). Headers and the
values of sectors, states, languages, associations and yes/no are matched
in English or German, regardless of case, spaces, hyphens and umlaut
spelling (``verbund.reference``). The accepted format is documented in
members-service/README.md ("Import format").
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from members.messages import Messages
from verbund import reference
from verbund.errors import BadRequest, UnsupportedMediaType
from verbund.vocabulary import load as load_vocabulary

CSV_TYPES = ("text/csv", "application/csv", "text/plain", "text/tab-separated-values")
EXCEL_TYPES = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",)
MAX_ROWS = 10_000  # rows with content; blank rows do not count

# Column name -> the headers (English, German) that mean it; case, spaces, hyphens,
# underscores and umlaut spelling do not matter ("E-Mail" = "email", "Partnervorschlaege").
COLUMNS = {
    "name": ("name", "organisation", "organization", "company", "firma", "firmenname", "unternehmen",
             "organisationsname"),
    "sector": ("sector", "industry", "branche", "sektor"),
    "associations": ("associations", "association", "verbände", "verband"),
    "state": ("state", "federal state", "bundesland"),
    "postcode": ("postcode", "postal code", "zip", "zip code", "plz", "postleitzahl"),
    "city": ("city", "town", "ort", "stadt"),
    "employees": ("employees", "headcount", "mitarbeiter", "mitarbeitende", "beschäftigte", "mitarbeiterzahl"),
    "turnover_eur": ("turnover_eur", "turnover", "revenue", "umsatz", "jahresumsatz"),
    "balance_sheet_eur": ("balance_sheet_eur", "balance sheet", "balance sheet total", "bilanzsumme"),
    "website": ("website", "homepage", "url", "webseite", "internetseite"),
    "contact_name": ("contact_name", "contact", "contact person", "ansprechpartner", "ansprechpartnerin",
                     "kontakt", "kontaktperson"),
    "contact_email": ("contact_email", "e-mail", "email address", "e-mail-adresse"),
    "language": ("language", "sprache", "korrespondenzsprache"),
    "offers": ("offers", "offer", "competencies", "angebote", "angebot", "kompetenzen"),
    "needs": ("needs", "need", "bedarfe", "bedarf", "gesucht"),
    "topics": ("topics", "topic", "themen", "thema"),
    "suggest_as_partner": ("suggest_as_partner", "partner suggestions",
                           "partnervorschläge", "partnervorschlag", "als partner vorschlagen"),
    "email_consent": ("email_consent", "e-mail-einwilligung", "einwilligung e-mail"),
}
_HEADER = {reference.name_key(alias): column for column, aliases in COLUMNS.items() for alias in aliases}

# Where a marshmallow field of the profile comes from in the file.
_PATHS = {("region", "state"): "state", ("region", "postcode"): "postcode", ("region", "city"): "city",
          ("size", "employees"): "employees", ("size", "turnover_eur"): "turnover_eur",
          ("size", "balance_sheet_eur"): "balance_sheet_eur", ("contact", "name"): "contact_name",
          ("contact", "email"): "contact_email", ("contact", "language"): "language",
          ("consent", "suggest_as_partner"): "suggest_as_partner", ("consent", "email"): "email_consent"}

# Legacy encodings of German office files: Windows (Excel "CSV"), old Mac, DOS, ISO Latin-9.
_LEGACY_ENCODINGS = ("cp1252", "mac_roman", "cp850", "iso8859_15")
# Characters a German or English member list plausibly holds beyond ASCII; the
# same bytes read in a wrong legacy encoding give others ("MŸller", "M¸ller").
_PLAUSIBLE = set("äöüÄÖÜßéèêëàáâçñóòôíìîúùûÉÈÀÇ€„“”‚‘’«»–—…•°§²³µ·×\xa0")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# Excel writes "sep=;" as the first line, LibreOffice '"sep=;";;;;' (the hint as a quoted
# cell, then the row's empty cells).
_SEP_HINT = re.compile(r'"?sep=([^\r\n"])"?(?:[;,\t]|"")*[ \t]*(\r\n|\r|\n|$)', re.IGNORECASE)


class RowError(ValueError):
    """Cells of a row that cannot be read; reported with their row."""


class Row(dict):
    """A data row as {column: text}; ``number`` is its row in the spreadsheet (header = 1),
    ``formulas`` the columns whose Excel cell holds a formula without a saved value (their text is
    empty: the file was written by a program that does not calculate, or saved without recalculating)."""

    number: int | None = None
    formulas: frozenset[str] = frozenset()


class _Formula:
    """An Excel cell with a formula but no saved value (openpyxl reads such a cell as None)."""

    def __str__(self) -> str:
        return ""


FORMULA_WITHOUT_VALUE = _Formula()


@dataclass
class Table:
    """What an uploaded file holds: its data rows (blank rows left out) and
    warnings about its columns (``{"code", "columns", "message"}``)."""

    rows: list[Row] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)


def read_table(content: bytes, content_type: str, messages: Messages | None = None) -> Table:
    """The rows of an uploaded CSV or Excel file, by header.

    Rows without content (``;;;;`` lines, formatted but empty Excel rows)
    neither count toward ``MAX_ROWS`` nor shift row numbers. Headers nobody
    knows are reported in ``warnings``, never dropped in silence. Raises
    UnsupportedMediaType (415) for other files, BadRequest (400) for a file
    that cannot be read, has no name column or more than ``MAX_ROWS`` rows;
    messages in the language of ``messages`` (German by default).
    """
    messages = messages or Messages()
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in EXCEL_TYPES:
        records = _excel_records(content, messages)
    elif media_type in CSV_TYPES:
        records = _csv_records(content, messages, _charset(content_type))
    else:
        raise UnsupportedMediaType(messages.text("file_type", excel=EXCEL_TYPES[0],
                                                 media_type=media_type or "-"))
    header, body, formulas = None, [], {}
    for number, cells in records:
        texts = [_cell_text(cell) for cell in cells]
        unsaved = {index for index, cell in enumerate(cells) if cell is FORMULA_WITHOUT_VALUE}
        if not any(texts) and not unsaved:
            continue
        if header is None:
            header = texts
            continue
        if len(body) == MAX_ROWS:
            raise BadRequest(messages.text("too_many_rows", max_rows=MAX_ROWS))
        body.append((number, texts))
        if unsaved:
            formulas[number] = unsaved
    if header is None:
        raise BadRequest(messages.text("no_header"))
    columns, warnings = _columns(header, body, messages)
    if "name" not in columns:
        raise BadRequest(messages.text("no_name_column"), known_columns=sorted(COLUMNS))
    rows = []
    for number, texts in body:
        row = Row((column, text) for column, text in zip(columns, texts, strict=False) if column)
        row.number = number
        row.formulas = frozenset(columns[index] for index in formulas.get(number, ())
                                 if index < len(columns) and columns[index])
        rows.append(row)
    return Table(rows, warnings)


def _cell_text(cell) -> str:
    """A cell as text; Excel's whole numbers as digits (a float 1e20 would read "1e+20")."""
    if cell is None or cell is FORMULA_WITHOUT_VALUE:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


def _columns(header: list[str], body: list, messages: Messages) -> tuple[list[str | None], list[dict]]:
    """The column each header means, and warnings for headers that mean nothing or the same."""
    from openpyxl.utils import get_column_letter

    columns: list[str | None] = []
    first: dict[str, str] = {}
    unknown, duplicates = [], {}
    width = max([len(header)] + [len(texts) for _, texts in body])
    for index in range(width):
        title = header[index] if index < len(header) else ""
        column = _HEADER.get(reference.name_key(title))
        if column in first:
            duplicates.setdefault(column, [first[column]]).append(title)
            column = None
        elif column:
            first[column] = title
        elif title:
            unknown.append(title)
        elif any(index < len(texts) and texts[index] for _, texts in body):
            unknown.append(f"{get_column_letter(index + 1)} (-)")  # data under an empty header
        columns.append(column)
    warnings = []
    if unknown:
        warnings.append({"code": "unknown_columns", "columns": unknown,
                         "message": messages.text("unknown_columns", columns=", ".join(unknown))})
    for column, titles in duplicates.items():
        warnings.append({"code": "duplicate_columns", "columns": titles,
                         "message": messages.text("duplicate_columns", columns=", ".join(titles), column=column)})
    return columns, warnings


def decode(content: bytes, messages: Messages | None = None, charset: str | None = None) -> str:
    """The text of a CSV file: UTF-8 (with or without BOM), UTF-16/32 with
    BOM (Excel "Unicode text"), UTF-16 without BOM (recognised by its NUL
    bytes), or a legacy encoding of German office files
    (Windows-1252, Mac Roman, DOS 850, ISO 8859-15) when charset-normalizer
    and the characters it yields agree on one. BadRequest (400) otherwise:
    a wrong guess would store mojibake ("MŸller") without a word.

    A ``charset`` the sender declared (the ``charset`` parameter of the
    Content-Type, RFC 9110 8.3) is used when the bytes decode with it;
    otherwise, or when it names no known codec, the file is detected.
    """
    messages = messages or Messages()
    return _refuse_mojibake(_decode(content, messages, charset), messages)


def _refuse_mojibake(text: str, messages: Messages) -> str:
    """``text``, unless it holds mojibake: UTF-8 read once too often ("MÃ¼ller"
    for "Müller"), which decodes without error. ftfy's badness heuristic finds
    it; the file is refused (BadRequest, 400) with the first such cell and its
    likely repair, because guessing would change names without a word."""
    import ftfy
    from ftfy.badness import is_bad

    if not is_bad(text):
        return text
    for line_number, line in enumerate(text.splitlines(), start=1):
        if is_bad(line):
            cell = next((cell.strip(' "') for cell in re.split(r"[;,\t]", line) if is_bad(cell)), line.strip())
            raise BadRequest(messages.text("encoding_mojibake", row=line_number, cell=cell[:80],
                                           fixed=ftfy.fix_text(cell)[:80]))
    return text  # only spans across lines look odd: nothing to point at


def _utf16_without_bom(content: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" for UTF-16 text saved without a byte order mark (some exports'
    "Unicode text"): a member list is mostly Latin letters, so every second byte is NUL, on one side
    only. Such bytes are valid UTF-8 (NULs and letters), so without this they would be read as
    text with NUL characters and refused without a useful word."""
    if len(content) < 4:
        return None
    even, odd = content[0::2].count(0), content[1::2].count(0)
    pairs = len(content) // 2
    if odd >= pairs * 0.6 and even == 0:
        return "utf-16-le"
    if even >= pairs * 0.6 and odd == 0:
        return "utf-16-be"
    return None


def _decode(content: bytes, messages: Messages, charset: str | None) -> str:
    from charset_normalizer import from_bytes

    refused = BadRequest(messages.text("encoding_unknown"))
    if charset:
        try:
            return content.decode("utf-8-sig" if codecs.lookup(charset).name == "utf-8" else charset)
        except (LookupError, UnicodeDecodeError):
            pass
    for bom, codec in _BOMS:
        if content.startswith(bom):
            try:
                return content.decode(codec)
            except UnicodeDecodeError:
                raise refused from None
    unmarked = _utf16_without_bom(content)
    if unmarked:
        try:
            return content.decode(unmarked)
        except UnicodeDecodeError:
            raise BadRequest(messages.text("encoding_utf16")) from None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # charset-normalizer ranks the decodings by how chaotic they look; on a
    # short member list several look clean, so the one whose non-ASCII
    # characters are all plausible letters and signs decides.
    scored: dict[str, tuple[int, float, str]] = {}
    for match in from_bytes(content, cp_isolation=list(_LEGACY_ENCODINGS)):
        text = str(match)
        odd = sum(1 for char in text if ord(char) > 127 and char not in _PLAUSIBLE)
        scored.setdefault(text, (odd, match.chaos, text))
    ranked = sorted(scored.values(), key=lambda score: score[:2])
    if not ranked:
        raise refused
    if len(ranked) > 1:
        (odd, chaos, _), (rival_odd, rival_chaos, _) = ranked[:2]
        if odd == rival_odd and (odd > 0 or chaos == rival_chaos):
            raise refused  # two different readings, nothing to choose between them
    return ranked[0][2]


def _charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type header, if any."""
    from werkzeug.http import parse_options_header

    return parse_options_header(content_type or "")[1].get("charset")


def _csv_records(content: bytes, messages: Messages, charset: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row, cells) of a CSV file; Excel's ``sep=;`` first line sets the delimiter."""
    text = decode(content, messages, charset)
    hint = _SEP_HINT.match(text)
    if hint:
        delimiter, text = hint.group(1), text[hint.end():]
    else:
        first_line = next((line for line in text.splitlines() if line.strip(",;\t \"")), "")
        if not first_line:  # nothing but blank or ";;;;" lines
            raise BadRequest(messages.text("no_header"))
        delimiter = max(",;\t", key=first_line.count)
    if "\x00" in text:  # Python's csv reads NUL bytes; a text file has none (a database refuses them)
        row = text.count("\n", 0, text.index("\x00")) + 1
        raise BadRequest(messages.text("csv_error", row=row, reason="NUL character"))
    # newline="" lets the csv module see \r, \n and \r\n (old Mac files end lines with \r alone).
    # strict: a quote that opens a cell must close it, or the reader stops with an error instead
    # of reading on to the next quote or the end of the file (which swallows the rows between).
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number, width = 0, 0
    while True:
        first_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num > first_line or "unexpected end of data" in str(exc):
                raise BadRequest(messages.text("unterminated_quote", row=number + 1)) from None
            if "expected after" in str(exc):
                raise BadRequest(messages.text("quote_in_cell", row=number + 1)) from None
            raise BadRequest(messages.text("csv_error", row=number + 1, reason=exc)) from None
        number += 1
        width = width or sum(1 for cell in cells if cell)
        if _swallows_rows(cells, delimiter, width):
            raise BadRequest(messages.text("unterminated_quote", row=number))
        yield number, cells


def _swallows_rows(cells: list[str], delimiter: str, width: int) -> bool:
    """Whether a cell holds what looks like whole rows of the file: a line break followed by a line
    with the delimiter between at least half as many cells as the header has (at least 3). A quote
    left open in one row reads the following rows into that cell; a note spanning lines does not
    look like that."""
    least = max(2, width // 2 - 1)
    return any(line.count(delimiter) >= least
               for cell in cells if "\n" in cell or "\r" in cell
               for line in re.split(r"\r\n|\r|\n", cell)[1:])


# The first bytes of the binary Excel 97-2003 format (.xls, an OLE compound file).
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _excel_records(content: bytes, messages: Messages) -> Iterator[tuple[int, tuple]]:
    """(spreadsheet row, cell values) of the first sheet of an Excel workbook; a formula cell
    without a saved value is ``FORMULA_WITHOUT_VALUE``. The workbook is read twice, for the saved
    values and for the formulas, since openpyxl gives one or the other. A file that is no readable
    workbook is a BadRequest (400) saying what to do, in the language of ``messages``; openpyxl's
    own reason (English, "File is not a zip file") is left out."""
    from openpyxl import load_workbook

    unreadable = BadRequest(messages.text("excel_old_format" if content.startswith(_OLE_SIGNATURE)
                                          else "excel_unreadable"))
    workbooks = []
    try:
        for data_only in (True, False):
            workbooks.append(load_workbook(io.BytesIO(content), read_only=True, data_only=data_only))
    except Exception:  # openpyxl raises many kinds for a broken file
        for workbook in workbooks:
            workbook.close()
        raise unreadable from None
    try:
        values, formulas = (workbook.worksheets[0] for workbook in workbooks)
        # The stored dimension counts formatted empty rows (often to row 1048576):
        # read the rows the file holds; missing ones between them still count.
        values.reset_dimensions()
        formulas.reset_dimensions()
        for number, (cells, sources) in enumerate(zip(values.iter_rows(values_only=True),
                                                      formulas.iter_rows(values_only=True), strict=False), start=1):
            yield number, tuple(FORMULA_WITHOUT_VALUE if cell is None and isinstance(source, str)
                                and source.startswith("=") else cell
                                for cell, source in zip(cells, sources, strict=False))
    except Exception:  # a sheet's XML is read only now, row by row
        raise unreadable from None
    finally:
        for workbook in workbooks:
            workbook.close()


def _list(cell: str, known=None) -> list[str]:
    """The values of a list cell, separated by semicolons. With ``known`` (a test whether a value
    names something: an association, a topic) also by commas, except inside parentheses
    ("Datenräume (Catena-X, Gaia-X)") and where the text with its comma is known as a whole."""
    values = []
    for part in (part.strip() for part in cell.split(";")):
        if known is not None and "," in part and not known(part):
            values.extend(piece.strip() for piece in re.split(r",(?![^()]*\))", part))
        else:
            values.append(part)
    return [value for value in values if value]


def _competencies(cell: str) -> list[dict]:
    items = []
    for part in _list(cell):
        label, _, description = part.partition(":")
        items.append({"label": label.strip(), "description": description.strip() or None})
    return items


_CURRENCY = re.compile(r"^(?:€|eur|euro)|(?:€|eur|euro)$", re.IGNORECASE)
_NUMBER_FORMS = (
    re.compile(r"(?P<whole>\d{1,3}(?:\.\d{3})+)(?:,(?P<fraction>\d+))?"),  # German: 1.200.000,00
    re.compile(r"(?P<whole>\d{1,3}(?:,\d{3})+)(?:\.(?P<fraction>\d+))?"),  # English: 1,200,000.00
    re.compile(r"(?P<whole>\d+)(?:[.,](?P<fraction>\d+))?"),  # 1200000, 12,0 (German), 120.0 (Excel)
)


def _int(cell: str) -> int:
    """A whole number as people write it in a German or English file: digits with thousands
    dots or commas (1.200.000 and 1,200,000 are 1200000), a decimal comma or point with zeros
    after it (12,0; 1.200.000,00; 120.0 as Excel hands over whole numbers), spaces as thousands
    separators, a euro sign or "EUR" before or after. ValueError for anything else, also for
    "12,5", a minus sign, "1e3" and "1_000" (which Python's float() would take)."""
    text = re.sub(r"[\s\u00a0\u202f]", "", cell)
    text = _CURRENCY.sub("", text)
    for form in _NUMBER_FORMS:
        match = form.fullmatch(text)
        if match:
            if (match["fraction"] or "0").strip("0"):
                raise ValueError(cell)  # not a whole number
            return int(re.sub(r"[.,]", "", match["whole"]))
    raise ValueError(cell)


def _negative(cell: str) -> bool:
    """Whether ``cell`` is a whole number with a minus sign ("-3", "− 3", "-1.200"): all the sizes
    of a firm are 0 or more, so it is told as such, not as "not a whole number"."""
    text = re.sub(r"[\s\u00a0\u202f]", "", cell)
    if not text.startswith(("-", "\u2212")):
        return False
    try:
        _int(text[1:])
    except ValueError:
        return False
    return True


def _postcode(cell: str) -> str:
    text = cell.removesuffix(".0")
    return text.zfill(5) if text.isdigit() and len(text) < 5 else text


def _postcode_problem(cell: str, postcode: str, state: str, messages: Messages) -> str | None:
    """Why a five-digit ``postcode`` (``cell`` as the file wrote it) cannot lie in ``state`` (an ISO
    code), or None: its region (``reference.postcode_states``) does not reach the state. A postcode
    whose leading zero was restored says so; "8033" in Bavaria is not "08033" in Saxony."""
    states = reference.postcode_states(postcode)
    if not states or state in states or not postcode.isdigit() or len(postcode) != 5:
        return None
    where = messages.text("or").join(reference.label("state", code, messages.language) for code in states)
    return messages.text("postcode_state_zero" if postcode != cell.removesuffix(".0") else "postcode_state",
                         value=cell, postcode=postcode, postcode_states=where,
                         state=reference.label("state", state, messages.language))


def read_row(row: dict, messages: Messages | None = None) -> tuple[dict, dict[str, list[str]]]:
    """A row as the input of a registration, and the errors of its cells by column.

    Every unreadable cell is reported (not only the first); its text stays
    in the input so that validation can report the row's other fields.
    Empty cells are left out, so a required field reads "required".
    """
    messages = messages or Messages()
    errors: dict[str, list[str]] = {}

    def cell(column: str) -> str:
        return row.get(column) or ""

    def named(kind: str, column: str, text: str) -> str:
        id = reference.resolve(kind, text)
        if id is None:
            choices = ", ".join(reference.label(kind, key, messages.language) for key in reference.NAMES[kind])
            errors.setdefault(column, []).append(messages.text(f"unknown_{kind}", value=text, choices=choices))
            return text
        return id

    def number(column: str) -> int | str | None:
        if not cell(column):
            return None
        try:
            return _int(cell(column))
        except ValueError:
            negative = _negative(cell(column))
            errors.setdefault(column, []).append(messages.text("negative_number" if negative else "not_a_number",
                                                               value=cell(column)))
            return cell(column)

    def yes_no(column: str) -> bool | str:
        answer = reference.resolve("yes_no", cell(column))
        if answer is None:
            errors.setdefault(column, []).append(messages.text("not_yes_no", value=cell(column)))
            return cell(column)
        return answer == "yes"

    def present(**values) -> dict:
        return {key: value for key, value in values.items() if value not in (None, "")}

    data = present(
        name=cell("name"),
        sector=cell("sector") and named("sector", "sector", cell("sector")),
        website=cell("website"),
    )
    data["associations"] = [named("association", "associations", text) for text in
                            _list(cell("associations"), known=lambda text: reference.resolve("association", text))]
    # Spreadsheets drop leading zeros of postcodes such as 01067 (Dresden).
    data["region"] = present(state=cell("state") and named("state", "state", cell("state")),
                             postcode=_postcode(cell("postcode")), city=cell("city"))
    if data["region"].get("state") in reference.STATES and data["region"].get("postcode"):
        problem = _postcode_problem(cell("postcode"), data["region"]["postcode"], data["region"]["state"], messages)
        if problem:
            errors.setdefault("postcode", []).append(problem)
    data["size"] = present(employees=number("employees"), turnover_eur=number("turnover_eur"),
                           balance_sheet_eur=number("balance_sheet_eur"))
    data["contact"] = present(name=cell("contact_name"), email=cell("contact_email"),
                              language=cell("language") and named("language", "language", cell("language")))
    data["offers"] = _competencies(cell("offers"))
    data["needs"] = _competencies(cell("needs"))
    data["topics"] = _list(cell("topics"), known=load_vocabulary().find_topic)
    data["consent"] = {"suggest_as_partner": yes_no("suggest_as_partner"), "email": yes_no("email_consent")}
    for column in sorted(getattr(row, "formulas", ())):
        errors.setdefault(column, []).insert(0, messages.text("formula_without_value"))
    return data, errors


def to_profile(row: dict) -> dict:
    """A row as the input of a registration; RowError naming every unreadable cell."""
    data, errors = read_row(row)
    if errors:
        raise RowError("; ".join(f"{column}: {', '.join(texts)}" for column, texts in errors.items()))
    return data


def column_errors(tree: dict, data: dict, messages: Messages | None = None) -> dict[str, list[str]]:
    """marshmallow's nested field errors of a profile, by the file's column and
    in the language of ``messages``: ``{"region": {"state": [...]}}`` becomes
    ``{"state": [...]}``; an error of a list item names the item."""
    messages = messages or Messages()
    errors: dict[str, list[str]] = {}

    def add(path: tuple, message: str) -> None:
        names = tuple(part for part in path if not isinstance(part, int))
        column = _PATHS.get(names[:2]) or (names[0] if names and names[0] != "_schema" else "_row")
        text = messages.field_error(str(message))
        if len(path) > 1 and isinstance(path[1], int) and isinstance(data.get(path[0]), list) \
                and path[1] < len(data[path[0]]):
            item = data[path[0]][path[1]]
            text = f"{item.get('label') or item.get('term') if isinstance(item, dict) else item}: {text}"
        errors.setdefault(column, []).append(text)

    def walk(node, path: tuple) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for value in node:
                walk(value, path) if isinstance(value, (dict, list)) else add(path, value)
        else:
            add(path, node)

    walk(tree, ())
    return errors
