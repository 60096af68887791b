"""The member import with real files through POST /members/import of a real
members-service process, on SQLite and PostgreSQL: German office files
(encodings, line endings, Excel's habits), German and English values and
headers, every error of a row, the report in the requester's language."""
import csv
import hashlib
import io
import threading
import time
import uuid
import zipfile

import pytest
import requests

from verbund.testing import bearer, wait_for

pytestmark = pytest.mark.integration

ADMIN = bearer("admin")
EXCEL = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = ["Firma", "Branche", "Verband", "Bundesland", "PLZ", "Ort", "Mitarbeiter", "Ansprechpartner", "E-Mail",
          "Sprache", "Partnervorschläge", "E-Mail-Einwilligung"]


def tag() -> str:
    return uuid.uuid4().hex[:8]


def member_row(name: str, **cells) -> list[str]:
    """A valid row in the columns of HEADER, in the words an office worker types."""
    row = {"Firma": name, "Branche": "Logistik", "Verband": "Logistiknetzwerk", "Bundesland": "Niedersachsen",
           "PLZ": "30159", "Ort": "Hannover", "Mitarbeiter": "40", "Ansprechpartner": "Jörg Weiß",
           "E-Mail": "j.weiss@foerder.example", "Sprache": "Deutsch", "Partnervorschläge": "ja",
           "E-Mail-Einwilligung": "nein"} | cells
    if "E-Mail" not in cells:  # each organisation its own address (a shared one is the row's error)
        row["E-Mail"] = f"kontakt-{hashlib.sha256(name.encode()).hexdigest()[:10]}@foerder.example"
    return [row[column] for column in HEADER]


def csv_text(*rows: list[str], sep: str = ";", newline: str = "\r\n", header: list[str] = HEADER) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=sep, lineterminator=newline).writerows([header, *rows])
    return buffer.getvalue()


def post(api, body: bytes, content_type: str = "text/csv; charset=utf-8", *, dry_run: bool = False,
         language: str | None = None) -> requests.Response:
    headers = {**ADMIN, "Content-Type": content_type} | ({"Accept-Language": language} if language else {})
    return requests.post(f"{api.url}/members/import", data=body, headers=headers,
                         params={"dry_run": "true"} if dry_run else None, timeout=60)


def imported(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def stored(api, report: dict) -> list[dict]:
    """The profiles an import stored, read back through the API."""
    return [requests.get(f"{api.url}/members/{item['id']}", headers=ADMIN, timeout=10).json()
            for item in report["imported"]]


def test_blank_csv_lines_do_not_count_toward_the_row_limit(members_api):
    name = f"Förderbänder {tag()}"
    body = csv_text(member_row(f"{name} Nord GmbH"), member_row(f"{name} Süd GmbH", PLZ="30161"))
    body += ";;;;;;;;;;;\r\n" * 12_000
    report = imported(post(members_api, body.encode("utf-8")))
    assert report["rows"] == 2 and [item["row"] for item in report["imported"]] == [2, 3]


def test_rows_after_blank_lines_keep_their_spreadsheet_numbers(members_api):
    body = csv_text(member_row(f"Vorn {tag()} GmbH"), [""] * len(HEADER), [""] * len(HEADER),
                    member_row(f"Hinten {tag()} GmbH", **{"E-Mail": "kaputt"}))
    report = imported(post(members_api, body.encode("utf-8"), dry_run=True))
    assert [(error["row"], list(error["errors"])) for error in report["errors"]] == [(5, ["contact_email"])]


def test_more_rows_with_content_than_the_limit_are_refused(members_api):
    body = csv_text(*[member_row(f"Firma {index}") for index in range(10_001)])
    response = post(members_api, body.encode("utf-8"), dry_run=True, language="en")
    assert response.status_code == 400 and "10000 rows" in response.json()["error"]


def test_formatted_empty_excel_rows_do_not_count(members_api):
    from openpyxl import Workbook
    from openpyxl.styles import PatternFill

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    name = f"Formatiert {tag()}"
    sheet.append(member_row(f"{name} Eins GmbH", Mitarbeiter=40, PLZ=30159))
    sheet.append(member_row(f"{name} Zwei GmbH", Mitarbeiter=12.0, PLZ=30161))
    fill = PatternFill("solid", fgColor="FFFF00")
    for number in range(4, 12_004):  # what Excel leaves after a row was formatted and emptied
        for column in (1, 2, 12):
            sheet.cell(row=number, column=column).fill = fill
    sheet.cell(row=12_004, column=1).value = "   "
    buffer = io.BytesIO()
    workbook.save(buffer)
    report = imported(post(members_api, buffer.getvalue(), EXCEL))
    assert report["rows"] == 2 and [item["row"] for item in report["imported"]] == [2, 3]
    assert [profile["size"]["employees"] for profile in stored(members_api, report)] == [40, 12]


@pytest.mark.parametrize("encoding, sep", [
    ("utf-8", ";"), ("utf-8-sig", ";"), ("cp1252", ";"), ("utf-16", "\t"), ("mac_roman", ";")])
def test_encodings_of_office_files_are_read_correctly(members_api, encoding, sep):
    """UTF-8 with and without BOM, Windows-1252 (Excel "CSV"), UTF-16 with tabs
    (Excel "Unicode text") and Mac Roman (old Mac Excel) all give the same text."""
    name = f"Müller Förderbänder {tag()} GmbH"
    body = csv_text(member_row(name), member_row(f"Schön & Söhne {tag()} KG", Ort="Göttingen", PLZ="37073"),
                    sep=sep).encode(encoding)
    report = imported(post(members_api, body, "text/csv"))
    assert report["errors"] == []
    profiles = stored(members_api, report)
    assert profiles[0]["name"] == name and profiles[0]["contact"]["name"] == "Jörg Weiß"
    assert profiles[1]["region"]["city"] == "Göttingen"


def ambiguous_mac_roman(name: str) -> bytes:
    """In Mac Roman, Ä and Ö are the bytes of "€" and "…" in Windows-1252 and of "Ç" and "à" in DOS 850:
    in a file without other letters beyond ASCII, every reading looks plausible."""
    return (f"name;sector;state;postcode;city;employees;contact_name;contact_email\r\n"
            f"{name};IT;NI;30159;Hannover;4;Olaf Ohm;o@ohm.example\r\n").encode("mac_roman")


def test_a_file_whose_encoding_is_ambiguous_is_refused_never_stored_as_mojibake(members_api):
    body = ambiguous_mac_roman(f"Öko Ärzte {tag()} GmbH")
    for language, words in (("en", "encoding could not be determined"), ("de", "Zeichenkodierung")):
        response = post(members_api, body, language=language)
        assert response.status_code == 400 and words in response.json()["error"], response.text


def test_a_declared_charset_is_used_when_the_bytes_decode_with_it(members_api):
    name = f"Öko Ärzte {tag()} GmbH"
    report = imported(post(members_api, ambiguous_mac_roman(name), "text/csv; charset=macintosh"))
    assert [profile["name"] for profile in stored(members_api, report)] == [name]
    # a label the bytes contradict (not UTF-8) is ignored and the file detected
    mislabelled = csv_text(member_row(f"Müller {tag()} GmbH")).encode("cp1252")
    assert imported(post(members_api, mislabelled, dry_run=True))["valid"] == 1


def test_old_mac_line_endings_are_read(members_api):
    name = f"Zeilenende {tag()} GmbH"
    body = csv_text(member_row(name), member_row(f"{name} Zwei", PLZ="30161"), newline="\r")
    report = imported(post(members_api, body.encode("utf-8")))
    assert [profile["name"] for profile in stored(members_api, report)] == [name, f"{name} Zwei"]


@pytest.mark.parametrize("body, reason", [
    (b"Firma;Branche\r\nNull\x00Byte GmbH;IT\r\n", "NUL"),
    (b"Firma;Branche\r\n\"" + b"x" * 200_000 + b"\";IT\r\n", "field larger than field limit"),
])
def test_a_csv_the_parser_cannot_read_is_a_400_with_the_reason(members_api, body, reason):
    response = post(members_api, body, language="en")
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"] and "row 2" in response.json()["error"]


def test_excels_sep_hint_sets_the_delimiter_and_the_header_follows(members_api):
    name = f"Trenner {tag()} GmbH"
    body = "sep=,\r\n" + csv_text(member_row(name), member_row(f"{name} Zwei", **{"E-Mail": "nein"}), sep=",")
    report = imported(post(members_api, body.encode("utf-8-sig")))
    assert [item["name"] for item in report["imported"]] == [name]
    assert [error["row"] for error in report["errors"]] == [3]  # the header is row 1, as Excel shows it


@pytest.mark.parametrize("dry_run", [True, False])
def test_unknown_columns_are_reported_and_partner_suggestions_are_read(members_api, dry_run):
    """A dry run and an import both warn about unknown columns and go on (documented)."""
    header = [*HEADER, "Notizen", "", "Mitgliedsnummer"]
    body = csv_text(member_row(f"Spalten {tag()} GmbH") + ["Messe 2025", "ohne Kopf", ""], header=header)
    report = imported(post(members_api, body.encode("utf-8"), dry_run=dry_run, language="en"))
    [warning] = report["warnings"]
    assert warning["code"] == "unknown_columns" and warning["columns"] == ["Notizen", "N (-)", "Mitgliedsnummer"]
    assert "Notizen" in warning["message"] and "not imported" in warning["message"]
    assert report["valid"] == 1 and len(report["imported"]) == (0 if dry_run else 1)
    if not dry_run:
        [profile] = stored(members_api, report)
        assert profile["consent"] == {"suggest_as_partner": True, "email": False}


def test_german_and_english_values_are_accepted_regardless_of_case(members_api):
    name = f"Werte {tag()}"
    rows = [
        member_row(f"{name} A GmbH"),
        member_row(f"{name} B GmbH", Branche="AUTOMOBIL", Verband="Automotive Cluster", Bundesland="Lower Saxony",
                   Sprache="German", **{"Partnervorschläge": "x", "E-Mail-Einwilligung": "Ja"}),
        member_row(f"{name} C GmbH", Branche="it", Verband="IT-Cluster; Logistik-Netzwerk", Bundesland="ni",
                   Sprache="en", **{"Partnervorschläge": "Nein", "E-Mail-Einwilligung": "yes"}),
        member_row(f"{name} D GmbH", Branche="Forschung", Verband="", Bundesland="Thüringen", PLZ="99084", Ort="Erfurt",
                   Sprache="Englisch", **{"Partnervorschläge": "", "E-Mail-Einwilligung": "X"}),
    ]
    report = imported(post(members_api, csv_text(*rows).encode("utf-8")))
    assert report["errors"] == []
    assert [(p["sector"], p["associations"], p["region"]["state"], p["contact"]["language"],
             p["consent"]["suggest_as_partner"], p["consent"]["email"]) for p in stored(members_api, report)] == [
        ("logistics", ["logistics-network"], "NI", "de", True, False),
        ("automotive", ["automotive-cluster"], "NI", "de", True, True),
        ("it", ["it-cluster", "logistics-network"], "NI", "en", False, True),
        ("research", [], "TH", "en", False, True),
    ]


def test_every_error_of_a_row_is_reported(members_api):
    row = member_row(f"Fehler {tag()} GmbH", Branche="Luftfahrt", **{"E-Mail": "kein-mail"}, Mitarbeiter="viele",
                     Bundesland="Bayern-Süd", Ort="")
    report = imported(post(members_api, csv_text(row).encode("utf-8"), dry_run=True, language="en"))
    [error] = report["errors"]
    assert error["row"] == 2
    assert sorted(error["errors"]) == ["city", "contact_email", "employees", "sector", "state"]
    assert error["errors"]["sector"] == [
        "'Luftfahrt' is not a known sector (Automotive, IT, Logistics, Research, Public sector, Other)"]


@pytest.mark.parametrize("language, expected", [
    ("en-GB,en;q=0.9", {"contact_email": ["not a valid e-mail address"], "city": ["required"],
                        "name": ["length must be between 1 and 200 characters"],
                        "language": ["'Französisch' is not a known language (German, English)"]}),
    ("de-DE,de;q=0.9,en;q=0.5", {"contact_email": ["keine gültige E-Mail-Adresse"], "city": ["Pflichtangabe"],
                                 "name": ["muss zwischen 1 und 200 Zeichen lang sein"],
                                 "language": ["„Französisch“ ist keine bekannte Sprache (Deutsch, Englisch)"]}),
    (None, {"contact_email": ["keine gültige E-Mail-Adresse"], "city": ["Pflichtangabe"],
            "name": ["muss zwischen 1 und 200 Zeichen lang sein"],
            "language": ["„Französisch“ ist keine bekannte Sprache (Deutsch, Englisch)"]}),
])
def test_the_report_follows_the_requesters_language(members_api, language, expected):
    row = member_row("X" * 201, Ort="", Sprache="Französisch", **{"E-Mail": "kein-mail"})
    response = post(members_api, csv_text(row).encode("utf-8"), dry_run=True, language=language)
    assert response.headers["Content-Language"] == ("en" if language and language.startswith("en") else "de")
    assert response.headers["Vary"] == "Accept-Language"
    [error] = imported(response)["errors"]
    assert error["errors"] == expected


def test_refusals_follow_the_requesters_language_too(members_api):
    body = b"foo;bar\r\n1;2\r\n"
    assert "name" in post(members_api, body, language="en").json()["error"]
    assert "Kopfzeile" in post(members_api, body, language="de").json()["error"]
    assert "Kopfzeile" in post(members_api, body).json()["error"]
    assert "Excel" in post(members_api, b"%PDF", "application/pdf", language="en").json()["error"]


# --- the tester's findings (issue 11's classes) ------------------------------------------------------

@pytest.mark.parametrize("dry_run", [True, False])
def test_a_turnover_beyond_the_database_is_a_row_error_in_a_dry_run_and_an_import_alike(members_api, dry_run):
    header = [*HEADER, "Umsatz", "Bilanzsumme"]
    row = member_row(f"Riesig {tag()} GmbH") + [str(10**20), "100000000000000000000"]
    report = imported(post(members_api, csv_text(row, header=header).encode("utf-8"), dry_run=dry_run,
                           language="de"))
    [error] = report["errors"]
    assert error["errors"] == {"turnover_eur": ["muss zwischen 0 und 10.000.000.000.000 liegen"],
                               "balance_sheet_eur": ["muss zwischen 0 und 10.000.000.000.000 liegen"]}
    assert report["valid"] == 0 and report["imported"] == []


def test_an_excel_turnover_beyond_the_database_is_a_row_error(members_api):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append([*HEADER, "Umsatz"])
    workbook.active.append([*member_row(f"Excel Riesig {tag()} GmbH"), 1e20])
    buffer = io.BytesIO()
    workbook.save(buffer)
    [error] = imported(post(members_api, buffer.getvalue(), EXCEL, language="en"))["errors"]
    assert error["errors"] == {"turnover_eur": ["must be between 0 and 10,000,000,000,000"]}


def test_a_contact_address_the_platform_cannot_mail_is_a_row_error(members_api):
    rows = [member_row(f"Bäcker {tag()} GmbH", **{"E-Mail": "jürgen@baecker.example"}),
            member_row(f"Bäcker {tag()} GmbH", **{"E-Mail": "juergen@bäcker.example"})]
    report = imported(post(members_api, csv_text(*rows).encode("utf-8"), language="en"))
    [error] = report["errors"]
    assert error["row"] == 2 and "before the @" in error["errors"]["contact_email"][0]
    assert [profile["contact"]["email"] for profile in stored(members_api, report)] == ["juergen@bäcker.example"]


def stray_quote_file() -> str:
    """29 rows; row 11 opens a quote it never closes."""
    name = f"Quote {tag()}"
    rows = [member_row(f"{name} {number} GmbH", PLZ=f"{30100 + number}") for number in range(2, 30)]
    lines = csv_text(*rows).split("\r\n")
    lines[10] = '"' + lines[10]  # row 11 as the spreadsheet counts, header = 1
    return "\r\n".join(lines)


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize("language, expected", [("en", "Unterminated quote in row 11"),
                                                ("de", "Nicht geschlossenes Anführungszeichen in Zeile 11")])
def test_a_stray_quote_is_a_400_naming_its_row_never_rows_swallowed(members_api, dry_run, language, expected):
    response = post(members_api, stray_quote_file().encode("utf-8"), dry_run=dry_run, language=language)
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]
    assert response.headers["Content-Language"] == language


def test_a_stray_quote_closed_rows_later_is_found_by_the_swallowed_rows(members_api):
    body = stray_quote_file().replace("Quote", "Schluss", 1)
    lines = body.split("\r\n")
    lines[20] = lines[20].replace(";", '";', 1)  # a quote that closes the open one, rows later
    response = post(members_api, "\r\n".join(lines).encode("utf-8"), language="en")
    assert response.status_code == 400 and "row 11" in response.json()["error"]


def test_a_quote_at_the_start_of_an_unquoted_cell_is_reported_not_dropped(members_api):
    row = csv_text(member_row("X")).split("\r\n")[1].replace("X", '"Zur Linde" Gasthaus GmbH', 1)
    body = csv_text(member_row(f"Linde {tag()} GmbH")) + row + "\r\n"
    response = post(members_api, body.encode("utf-8"), language="en")
    assert response.status_code == 400, response.text
    assert "row 3" in response.json()["error"] and '"""Zur Linde"" Gasthaus GmbH"' in response.json()["error"]
    # written as Excel writes it, the quotes are kept
    name = f'"Zur Linde" Gasthaus {tag()} GmbH'
    [profile] = stored(members_api, imported(post(members_api, csv_text(member_row(name)).encode("utf-8"))))
    assert profile["name"] == name


def test_libreoffices_quoted_sep_hint_sets_the_delimiter(members_api):
    name = f"Libre {tag()} GmbH"
    body = '"sep=,",,,,,,\r\n' + csv_text(member_row(name), sep=",")
    assert [item["name"] for item in imported(post(members_api, body.encode("utf-8")))["imported"]] == [name]


@pytest.mark.parametrize("body", [b";;;;\r\n;;;;\r\n", b"\r\n\r\n", b",,,\n", b"sep=;\r\n;;;\r\n"])
def test_a_file_of_blank_lines_has_no_header_row(members_api, body):
    response = post(members_api, body, language="en")
    assert response.status_code == 400 and response.json()["error"] == "the file has no header row"


@pytest.mark.parametrize("language", ["de", "en"])
def test_refusals_carry_their_language(members_api, language):
    texts = {"de": ("Kopfzeile", "Excel", "größer"), "en": ("header", "Excel", "larger")}[language]
    too_large = b"Firma\r\n" + b"x" * (10 * 1024 * 1024 + 1)
    for (body, content_type), text in zip([(b"foo;bar\r\n1;2\r\n", "text/csv"), (b"%PDF", "application/pdf"),
                                           (too_large, "text/csv")], texts, strict=True):
        response = post(members_api, body, content_type, language=language)
        assert response.status_code in (400, 413, 415)
        assert text in response.json()["error"], response.text
        assert response.headers["Content-Language"] == language


def test_german_office_values_are_read(members_api):
    header = [*HEADER, "Umsatz", "Bilanzsumme", "Themen"]
    name = f"Bürowerte {tag()}"
    rows = [
        member_row(f"{name} A GmbH", Bundesland="NRW", PLZ="40213", Ort="Düsseldorf",
                   Verband="IT-Cluster, Logistiknetzwerk", Mitarbeiter="12,0",
                   **{"Partnervorschläge": "☑", "E-Mail-Einwilligung": "✗"})
        + ["1.200.000,00", "1.500.000 €", "Künstliche Intelligenz, Wasserstoff"],
        member_row(f"{name} B GmbH", Bundesland="Nds.", **{"Partnervorschläge": "✅", "E-Mail-Einwilligung": "☐"})
        + ["1.500.000 EUR", "EUR 2.000", "Datenräume (Catena-X, Gaia-X), KI"],
        member_row(f"{name} C GmbH", Bundesland="BaWü", PLZ="70173", Ort="Stuttgart",
                   **{"Partnervorschläge": "✔", "E-Mail-Einwilligung": "❌"}) + ["", "", ""],
        member_row(f"{name} D GmbH", Bundesland="Freistaat Bayern", PLZ="80331", Ort="München",
                   **{"Partnervorschläge": "✓"}) + ["", "", ""],
        member_row(f"{name} E GmbH", Bundesland="Freie und Hansestadt Hamburg", PLZ="20095",
                   Ort="Hamburg") + ["", "", ""],
    ]
    report = imported(post(members_api, csv_text(*rows, header=header).encode("utf-8")))
    assert report["errors"] == []
    profiles = stored(members_api, report)
    assert [(p["region"]["state"], p["consent"]["suggest_as_partner"], p["consent"]["email"]) for p in profiles] \
        == [("NW", True, False), ("NI", True, False), ("BW", True, False), ("BY", True, False), ("HH", True, False)]
    assert profiles[0]["associations"] == ["it-cluster", "logistics-network"]
    assert (profiles[0]["size"]["employees"], profiles[0]["size"]["turnover_eur"],
            profiles[0]["size"]["balance_sheet_eur"]) == (12, 1_200_000, 1_500_000)
    assert profiles[0]["topics"] == ["ai", "hydrogen"]
    assert (profiles[1]["size"]["turnover_eur"], profiles[1]["size"]["balance_sheet_eur"]) == (1_500_000, 2_000)
    assert profiles[1]["topics"] == ["data-spaces", "ai"]


@pytest.mark.parametrize("cell, column, message", [
    ("?", "Partnervorschläge", "'?' is neither yes nor no"),
    ("☒", "E-Mail-Einwilligung", "'☒' is neither yes nor no"),
    ("1e3", "Mitarbeiter", "'1e3' is not a whole number"),
    ("1_000", "Mitarbeiter", "'1_000' is not a whole number"),
    ("12,5", "Mitarbeiter", "'12,5' is not a whole number"),
])
def test_unknown_symbols_and_programmers_numbers_are_row_errors(members_api, cell, column, message):
    row = member_row(f"Zeichen {tag()} GmbH", **{column: cell})
    [error] = imported(post(members_api, csv_text(row).encode("utf-8"), dry_run=True, language="en"))["errors"]
    assert message in str(error["errors"])


# --- a tester's findings: whom an organizer imports, postcodes in another state, numbers below zero,
# broken workbooks, formulas without a saved value, unknown columns, names without a visible character

AUTOMOTIVE = bearer("organizer", association="automotive-cluster")


def post_as(api, headers: dict, body: bytes, *, dry_run: bool, language: str = "de") -> requests.Response:
    return requests.post(f"{api.url}/members/import", data=body, timeout=60,
                         headers={**headers, "Content-Type": "text/csv; charset=utf-8", "Accept-Language": language},
                         params={"dry_run": "true" if dry_run else "false"})


# --- 1. who imports whom ----------------------------------------------------------------------------

@pytest.mark.parametrize("dry_run", [True, False])
def test_an_organizer_imports_members_of_its_own_association_only(members_api, dry_run):
    name = f"Verband {tag()}"
    rows = [member_row(f"{name} Fremd GmbH", Verband="Logistiknetzwerk"),
            member_row(f"{name} Ohne GmbH", Verband=""),
            member_row(f"{name} Eigen GmbH", Verband="Automobilcluster"),
            member_row(f"{name} Beide GmbH", Verband="Automobilcluster; IT-Cluster"),
            member_row(f"{name} Zwei Fremde GmbH", Verband="IT-Cluster, Logistiknetzwerk")]
    report = imported(post_as(members_api, AUTOMOTIVE, csv_text(*rows).encode("utf-8"), dry_run=dry_run))
    assert [(error["row"], error["errors"]) for error in report["errors"]] == [
        (2, {"associations": ["Sie importieren als Organisator nur Mitglieder Ihres Verbands (Automobilcluster); "
                              "diese Zeile nennt nur Logistiknetzwerk. Bitte Automobilcluster in der Spalte Verband "
                              "ergänzen oder die Zeile vom anderen Verband importieren lassen"]}),
        (6, {"associations": ["Sie importieren als Organisator nur Mitglieder Ihres Verbands (Automobilcluster); "
                              "diese Zeile nennt nur IT-Cluster und Logistiknetzwerk. Bitte Automobilcluster in der "
                              "Spalte Verband ergänzen oder die Zeile vom anderen Verband importieren lassen"]})]
    assert report["valid"] == 3
    if not dry_run:
        assert [profile["associations"] for profile in stored(members_api, report)] == [
            ["automotive-cluster"], ["automotive-cluster"], ["automotive-cluster", "it-cluster"]]
        # The organizer finds them in the directory of its association and may correct them.
        found = requests.get(f"{members_api.url}/members", headers=AUTOMOTIVE, timeout=10,
                             params={"q": name, "association": "automotive-cluster"}).json()
        assert sorted(item["name"] for item in found["items"]) == sorted(
            f"{name} {which} GmbH" for which in ("Ohne", "Eigen", "Beide"))
        first = report["imported"][0]["id"]
        changed = requests.patch(f"{members_api.url}/members/{first}", json={"region": {"city": "Celle"}},
                                 headers=AUTOMOTIVE, timeout=10)
        assert changed.status_code == 200, changed.text


def test_an_admin_imports_every_row_as_it_is(members_api):
    name = f"Admin {tag()}"
    rows = [member_row(f"{name} Fremd GmbH", Verband="Logistiknetzwerk"), member_row(f"{name} Ohne GmbH", Verband="")]
    report = imported(post_as(members_api, ADMIN, csv_text(*rows).encode("utf-8"), dry_run=False))
    assert report["errors"] == []
    assert [profile["associations"] for profile in stored(members_api, report)] == [["logistics-network"], []]


def test_the_refusal_names_the_associations_in_english_too(members_api):
    rows = [member_row(f"Englisch {tag()} GmbH", Verband="Logistiknetzwerk")]
    report = imported(post_as(members_api, AUTOMOTIVE, csv_text(*rows).encode("utf-8"), dry_run=True,
                              language="en"))
    assert report["errors"][0]["errors"]["associations"] == [
        "as an organizer you import members of your own association only (Automotive cluster); this row names "
        "only Logistics network. Add Automotive cluster in the association column or have the other association "
        "import the row"]


# --- 2. a postcode in another state -------------------------------------------------------------------

@pytest.mark.parametrize("cells, expected", [
    ({"PLZ": "8033", "Ort": "München", "Bundesland": "Bayern"},
     "„8033“ ergibt mit der ergänzten führenden Null die Postleitzahl 08033, und die liegt in Sachsen oder "
     "Thüringen, das Bundesland ist aber Bayern; bitte die vollständige fünfstellige Postleitzahl eintragen"),
    ({"PLZ": "80331", "Ort": "München", "Bundesland": "Sachsen"},
     "die Postleitzahl 80331 liegt in Bayern, das Bundesland ist aber Sachsen; bitte Postleitzahl oder "
     "Bundesland berichtigen"),
])
def test_a_postcode_in_another_state_is_a_row_error_naming_both(members_api, cells, expected):
    report = imported(post(members_api, csv_text(member_row(f"PLZ {tag()} GmbH", **cells)).encode("utf-8"),
                           dry_run=True, language="de"))
    assert report["valid"] == 0
    assert report["errors"][0]["errors"] == {"postcode": [expected]}


def test_a_saxon_postcode_without_its_leading_zero_is_still_restored(members_api):
    rows = [member_row(f"Dresden {tag()} GmbH", PLZ="1067", Ort="Dresden", Bundesland="Sachsen"),
            member_row(f"Grenze {tag()} GmbH", PLZ="37308", Ort="Heilbad Heiligenstadt", Bundesland="Thüringen")]
    report = imported(post(members_api, csv_text(*rows).encode("utf-8")))
    assert report["errors"] == []
    assert [profile["region"]["postcode"] for profile in stored(members_api, report)] == ["01067", "37308"]


# --- 3. a number below zero ---------------------------------------------------------------------------

@pytest.mark.parametrize("language, expected", [
    ("de", "„-3“ ist negativ; die Zahl muss 0 oder größer sein"),
    ("en", "'-3' is negative; the number must be 0 or more"),
])
def test_a_negative_number_of_employees_says_it_must_be_zero_or_more(members_api, language, expected):
    row = member_row(f"Negativ {tag()} GmbH", Mitarbeiter="-3")
    report = imported(post(members_api, csv_text(row).encode("utf-8"), dry_run=True, language=language))
    assert report["errors"][0]["errors"] == {"employees": [expected]}


# --- 4. a broken workbook -----------------------------------------------------------------------------

@pytest.mark.parametrize("body, expected", [
    (b"PK\x03\x04 not really a workbook", "Die Datei lässt sich nicht als Excel-Arbeitsmappe lesen"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "im alten Excel-Format .xls"),
])
def test_a_broken_workbook_is_explained_in_the_users_language_with_what_to_do(members_api, body, expected):
    response = post(members_api, body, EXCEL, language="de")
    assert response.status_code == 400
    message = response.json()["error"]
    assert expected in message and "„CSV UTF-8“" in message and "(.xlsx)" in message
    assert "zip" not in message.lower()  # openpyxl's English reason stays out of the German sentence


# --- 5. unknown columns -------------------------------------------------------------------------------

def test_unknown_columns_point_to_the_portals_import_page(members_api):
    body = csv_text(member_row(f"Spalte {tag()} GmbH") + ["x"], header=[*HEADER, "Notizen"])
    [warning] = imported(post(members_api, body.encode("utf-8"), dry_run=True, language="de"))["warnings"]
    assert "README" not in warning["message"]
    assert "Seite „Mitgliederliste importieren“ im Portal" in warning["message"]


# --- 7. a formula without a saved value ---------------------------------------------------------------

def workbook_with_a_formula(name: str) -> bytes:
    """A workbook of one member row whose city is a formula, as openpyxl writes it: without a saved
    value, as some exporters do (Excel itself saves the value it calculated)."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(HEADER)
    row = member_row(name)
    row[HEADER.index("Ort")] = "=PROPER(\"hannover\")"
    workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_a_formula_without_a_saved_value_is_named_as_such(members_api):
    report = imported(post(members_api, workbook_with_a_formula(f"Formel {tag()} GmbH"), EXCEL, dry_run=True,
                           language="de"))
    assert report["errors"][0]["errors"] == {"city": [
        "die Zelle enthält eine Formel ohne gespeicherten Wert; bitte die Datei in Excel öffnen und speichern "
        "(dann steht der berechnete Wert darin) oder als „CSV UTF-8“ speichern und erneut senden"]}


def test_a_formula_with_its_saved_value_is_read(members_api):
    # What Excel stores after calculating: the formula and its value.
    saved = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook_with_a_formula(f"Berechnet {tag()} GmbH"))) as source, \
            zipfile.ZipFile(saved, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("sheet1.xml"):
                formula = b'><f>PROPER("hannover")</f><v /></c>'
                assert formula in data
                data = data.replace(formula, b' t="str"><f>PROPER("hannover")</f><v>Hannover</v></c>')
            target.writestr(item, data)
    report = imported(post(members_api, saved.getvalue(), EXCEL))
    assert report["errors"] == []
    assert [profile["region"]["city"] for profile in stored(members_api, report)] == ["Hannover"]


# --- 8. a name without a visible character --------------------------------------------------------------

@pytest.mark.parametrize("name", ["\u200b\u200b\u200b", "\u200b \u2060\u00ad"])
def test_a_name_of_invisible_characters_only_is_refused_in_the_api_and_the_import(members_api, member_input,
                                                                                   name):
    response = requests.post(f"{members_api.url}/members", json=member_input(name=name), timeout=10)
    assert response.status_code == 422
    assert "visible character" in str(response.json()["fields"]["name"])
    row = member_row(name)
    report = imported(post(members_api, csv_text(row).encode("utf-8"), dry_run=True, language="de"))
    assert report["errors"][0]["errors"] == {"name": [
        "enthält kein sichtbares Zeichen, nur unsichtbare (etwa U+200B); bitte den Text eintippen"]}


def test_a_name_with_a_zero_width_space_among_letters_is_kept(members_api, member_input):
    response = requests.post(f"{members_api.url}/members", json=member_input(name=f"Müller\u200bBau {tag()}"),
                             timeout=10)
    assert response.status_code == 201, response.text


def test_the_service_keeps_answering_while_a_large_import_runs(members_api):
    """A 1,000-row import is one long transaction; the process must not stop serving meanwhile. Under
    eventlet a handler that never yields starves every other green thread: health checks, RPC replies
    to the consuming services, and the broker handshakes of those replies, which the broker then resets,
    after which nameko kills the whole container (and the next import got a 500)."""
    body = csv_text(*(member_row(f"Dauerlast {tag()} {number} Logistik GmbH") for number in range(1000))).encode()
    answered: list[float] = []  # when each /health answer arrived (time.monotonic)
    stop = threading.Event()

    def probe():
        with requests.Session() as session:
            while not stop.is_set():
                if session.get(f"{members_api.url}/health", timeout=120).status_code == 200:
                    answered.append(time.monotonic())

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        wait_for(lambda: answered, timeout=10, message="a first /health answer")
        started = time.monotonic()
        report = imported(post(members_api, body))
        finished = time.monotonic()
    finally:
        stop.set()
        prober.join(timeout=120)
    assert report["valid"] == 1000 and len(report["imported"]) == 1000, report["errors"][:3]
    quarter = (finished - started) / 4
    during = [moment for moment in answered if started + quarter < moment < finished - quarter]
    assert during, (f"no /health answer in the middle half of a {finished - started:.1f} s import: "
                    "the import held the whole process")
