"""The import's rules without a service: encodings, the name lookup of the
kit, the message catalogues and marshmallow's messages in both languages."""
import re

import pytest
from marshmallow import ValidationError

from members import importer
from members.messages import LANGUAGES, Messages, catalogue, negotiate
from members.services import validate_profile
from verbund import reference
from verbund.errors import BadRequest

ENCODINGS = ("mac_roman", "cp1252", "cp850", "iso8859_15", "utf-8", "utf-8-sig", "utf-16", "utf-32")
TEXTS = ("Müller Förderbänder GmbH\n", "name\nMüller Förderbänder GmbH\n",
         "Firma;Ort\nMüller Förderbänder GmbH;Göttingen\nStraßenbau Süd;Köln\n", "name\nÖko Ärzte GmbH\n",
         "name;note\nX GmbH;100 € … „gut“\n")


def encodable(encoding: str, text: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize("encoding, text", [(encoding, text) for encoding in ENCODINGS for text in TEXTS
                                            if encodable(encoding, text)])
def test_a_file_is_read_correctly_or_refused_never_garbled(encoding, text):
    try:
        decoded = importer.decode(text.encode(encoding), Messages("en"))
    except BadRequest as refused:
        assert "encoding could not be determined" in refused.message
        assert not encoding.startswith("utf")  # Unicode files are always read
    else:
        assert decoded == text


def test_the_issues_mac_roman_line_is_never_stored_as_mojibake():
    text = "Firma;Bundesland\nMüller Förderbänder GmbH;Niedersachsen\n"
    assert importer.decode(text.encode("mac_roman")) == text  # not "MŸller FšrderbŠnder"


@pytest.mark.parametrize("kind, text, id", [
    ("sector", "Logistik", "logistics"), ("sector", "AUTOMOBIL", "automotive"), ("sector", "it", "it"),
    ("sector", "Informationstechnik", "it"), ("state", "Niedersachsen", "NI"), ("state", "Lower Saxony", "NI"),
    ("state", "ni", "NI"), ("state", "Thueringen", "TH"), ("state", "baden württemberg", "BW"),
    ("language", "Deutsch", "de"), ("language", "german", "de"), ("language", "EN", "en"),
    ("association", "IT-Cluster", "it-cluster"), ("association", "Logistiknetzwerk", "logistics-network"),
    ("yes_no", "ja", "yes"), ("yes_no", "X", "yes"), ("yes_no", "Nein", "no"), ("yes_no", "", "no"),
    ("sector", "Luftfahrt", None), ("state", "Bayern-Süd", None),
])
def test_people_name_reference_values_in_german_or_english(kind, text, id):
    assert reference.resolve(kind, text) == id


def test_every_name_of_an_id_leads_back_to_it():
    """No display name is taken by two ids of one kind (the lookup would keep only one)."""
    for kind, names in reference.NAMES.items():
        for id, labels in names.items():
            assert {reference.resolve(kind, text) for text in (id, *labels.values())} == {id}, (kind, id)
    assert set(reference.NAMES["sector"]) == set(reference.SECTORS)
    assert set(reference.NAMES["state"]) == set(reference.STATES)
    assert set(reference.NAMES["association"]) == set(reference.ASSOCIATIONS)
    assert set(reference.NAMES["language"]) == set(reference.LANGUAGES)
    assert reference.label("state", "NI", "en") == "Lower Saxony"


def test_every_documented_header_is_known_and_means_one_column():
    keys = [reference.name_key(alias) for aliases in importer.COLUMNS.values() for alias in aliases]
    assert len(keys) == len(set(keys))
    assert importer._HEADER[reference.name_key("Partnervorschläge")] == "suggest_as_partner"
    assert importer._HEADER[reference.name_key("E-Mail")] == "contact_email"


def test_both_catalogues_have_the_same_messages_and_placeholders():
    placeholders = {language: {key: set(re.findall(r"{(\w+)}", text)) for key, text in catalogue(language).items()}
                    for language in LANGUAGES}
    assert placeholders["de"] == placeholders["en"]


def test_the_language_follows_accept_language_and_defaults_to_german():
    from werkzeug.datastructures import LanguageAccept
    from werkzeug.http import parse_accept_header

    def language(header):
        return negotiate(parse_accept_header(header, LanguageAccept))

    assert language("en-US,en;q=0.9") == "en"
    assert language("de-CH") == "de"
    assert language("fr-FR, en;q=0.5, de;q=0.7") == "de"
    assert language("fr") == "de" and language(None) == "de"


def schema_messages(data: dict) -> dict:
    """The profile's field errors by column, in German and (keys prefixed "en:") English."""
    with pytest.raises(ValidationError) as error:
        validate_profile(data)
    german = importer.column_errors(error.value.messages, data, Messages("de"))
    english = importer.column_errors(error.value.messages, data, Messages("en"))
    return german | {f"en:{key}": value for key, value in english.items()}


@pytest.mark.parametrize("change, column, german, english", [
    ({"contact": {"name": "X", "email": "kein-mail", "language": "de"}}, "contact_email",
     "keine gültige E-Mail-Adresse", "not a valid e-mail address"),
    ({"contact": {"email": "x@example.org"}}, "contact_name", "Pflichtangabe", "required"),
    ({"name": "x" * 201}, "name", "muss zwischen 1 und 200 Zeichen lang sein",
     "length must be between 1 and 200 characters"),
    ({"sector": "aerospace"}, "sector", "muss einer dieser Werte sein: automotive, it, logistics, research, "
     "public, other", "must be one of: automotive, it, logistics, research, public, other"),
    ({"topics": ["time-travel"]}, "topics", "time-travel: unbekanntes Thema", "time-travel: unknown topic"),
    ({"region": {"state": "BW", "postcode": "7017", "city": "A"}}, "postcode",
     "Eine deutsche Postleitzahl hat fünf Ziffern", "a German postcode has five digits"),
    ({"contact": {"name": "Erika\x0bMuster", "email": "x@example.org"}}, "contact_name",
     "enthält ein Steuerzeichen oder ungültiges Zeichen (U+000B an Stelle 6)",
     "must not contain a control or invalid character (U+000B at position 6)"),
    ({"name": "Muster\nGmbH"}, "name", "darf keinen Tabulator und keinen Zeilenumbruch enthalten (U+000A an Stelle 7)",
     "must not contain a tab or line break (U+000A at position 7)"),
])
def test_marshmallows_common_messages_read_in_both_languages(change, column, german, english, member_input):
    errors = schema_messages(member_input(**change))
    assert errors[column] == [german] and errors[f"en:{column}"] == [english]


def test_two_headers_for_one_column_are_reported_and_the_first_is_read():
    body = b"Firma;Name;E-Mail;email\r\nErste GmbH;Zweite GmbH;a@x.example;b@x.example\r\n"
    table = importer.read_table(body, "text/csv", Messages("en"))
    assert [row["name"] for row in table.rows] == ["Erste GmbH"]
    assert [(warning["code"], warning["columns"]) for warning in table.warnings] == [
        ("duplicate_columns", ["Firma", "Name"]), ("duplicate_columns", ["E-Mail", "email"])]
    assert "only the first is read" in table.warnings[0]["message"]


def test_a_file_with_a_header_only_has_no_rows():
    table = importer.read_table(b"Firma;Notizen\r\n;;\r\n", "text/csv", Messages("en"))
    assert table.rows == [] and table.warnings[0]["columns"] == ["Notizen"]


def test_an_excel_workbook_with_a_broken_sheet_is_a_400():
    import io
    import zipfile

    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["Firma", "Branche"])
    workbook.active.append(["Kaputt GmbH", "IT"])
    intact = io.BytesIO()
    workbook.save(intact)
    broken = io.BytesIO()
    with zipfile.ZipFile(intact) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data[: len(data) // 2] if item.filename.endswith("sheet1.xml") else data)
    with pytest.raises(BadRequest, match="Excel"):
        importer.read_table(broken.getvalue(), importer.EXCEL_TYPES[0], Messages("en"))
