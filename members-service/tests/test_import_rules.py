"""The import's rules without a service: encodings, the name lookup of the
kit, the message catalogues and marshmallow's messages in both languages."""
import re

import pytest
from marshmallow import ValidationError, validate

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


def test_a_file_encoded_as_utf8_twice_is_refused_with_the_cell_and_its_repair():
    text = "Firma;Ort\nMüller Förderbänder GmbH;Köln\nStraßenbau Nord;Kiel\n"
    garbled = text.encode("utf-8").decode("cp1252").encode("utf-8")  # "MÃ¼ller FÃ¶rderbÃ¤nder"
    with pytest.raises(BadRequest) as refused:
        importer.decode(garbled, Messages("de"))
    assert "Zeile 2" in refused.value.message
    assert "„Müller Förderbänder GmbH“" in refused.value.message  # the likely repair is named


@pytest.mark.parametrize("text", ["Ärzte für Außendienst – „Qualität“ · 5 €; naïve Café", "Renée Æsir; Ørsted; Œuvre"])
def test_legitimate_accents_and_typography_are_not_taken_for_mojibake(text):
    assert importer.decode(text.encode("utf-8"), Messages("en")) == text


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


def _message(validator, value) -> str:
    with pytest.raises(ValidationError) as error:
        validator(value)
    [message] = error.value.messages
    return message


@pytest.mark.parametrize("validator, value, de, en", [
    (validate.Range(min=0, max=5_000_000), 9_000_000, "muss zwischen 0 und 5.000.000 liegen",
     "must be between 0 and 5,000,000"),
    (validate.Range(min=0), -1, "muss mindestens 0 sein", "must be at least 0"),
    (validate.Range(max=500), 501, "darf höchstens 500 sein", "must be at most 500"),
    (validate.Range(min=0, min_inclusive=False), 0, "muss größer als 0 sein", "must be greater than 0"),
    (validate.Range(max=5, max_inclusive=False), 5, "muss kleiner als 5 sein", "must be less than 5"),
    (validate.Range(min=0, max=5, min_inclusive=False), 9, "muss größer als 0 und höchstens 5 sein",
     "must be greater than 0 and at most 5"),
    (validate.Range(min=0, max=5, max_inclusive=False), 9, "muss mindestens 0 und kleiner als 5 sein",
     "must be at least 0 and less than 5"),
    (validate.Range(min=0, max=5, min_inclusive=False, max_inclusive=False), 9,
     "muss größer als 0 und kleiner als 5 sein", "must be greater than 0 and less than 5"),
    (validate.Range(min=0.5, max=1500.25), 9_999, "muss zwischen 0,5 und 1.500,25 liegen",
     "must be between 0.5 and 1,500.25"),
    (validate.Range(min=-10), -11, "muss mindestens -10 sein", "must be at least -10"),
    (validate.Length(min=1, max=200), "", "muss zwischen 1 und 200 Zeichen lang sein",
     "length must be between 1 and 200 characters"),
    (validate.Length(min=2), "a", "kürzer als 2 Zeichen", "shorter than 2 characters"),
    (validate.Length(max=1), "ab", "länger als 1 Zeichen", "longer than 1 characters"),
    (validate.Length(equal=5), "a", "muss genau 5 Zeichen lang sein", "must be exactly 5 characters long"),
])
def test_every_range_and_length_message_is_translated(validator, value, de, en):
    message = _message(validator, value)
    assert (Messages("de").field_error(message), Messages("en").field_error(message)) == (de, en)


def test_the_new_field_messages_are_translated(member_input):
    data = member_input(size={"employees": 1, "turnover_eur": 10**20},
                        contact={"name": "J", "email": "jürgen@baecker.example", "language": "de"})
    with pytest.raises(ValidationError) as error:
        validate_profile(data)
    errors = importer.column_errors(error.value.messages, data, Messages("de"))
    assert errors == {"turnover_eur": ["muss zwischen 0 und 10.000.000.000.000 liegen"],
                      "contact_email": [catalogue("de")["email_non_ascii"]]}


@pytest.mark.parametrize("kind, text, id", [
    ("state", "NRW", "NW"), ("state", "Nds.", "NI"), ("state", "BaWü", "BW"), ("state", "Freistaat Bayern", "BY"),
    ("state", "Freie und Hansestadt Hamburg", "HH"), ("state", "Freie Hansestadt Bremen", "HB"),
    ("state", "RLP", "RP"), ("state", "LSA", "ST"), ("state", "Meck-Pomm", "MV"), ("state", "DE-SN", "SN"),
    ("state", "Freistaat Thüringen", "TH"), ("state", "Land Berlin", "BE"),
    ("yes_no", "☑", "yes"), ("yes_no", "✅", "yes"), ("yes_no", "✓", "yes"), ("yes_no", "✔", "yes"),
    ("yes_no", "✔️", "yes"), ("yes_no", "✗", "no"), ("yes_no", "☐", "no"), ("yes_no", "❌", "no"),
    ("yes_no", "-", "no"), ("yes_no", "–", "no"), ("yes_no", "?", None), ("yes_no", "☒", None), ("yes_no", "??", None),
    ("yes_no", "vielleicht", None),
])
def test_abbreviations_long_names_and_check_symbols(kind, text, id):
    assert reference.resolve(kind, text) == id


def test_no_spelling_means_two_ids():
    for kind in reference.NAMES:
        keys: dict[str, str] = {}
        for id, labels in reference.NAMES[kind].items():
            for spelling in (id, *labels.values(), *reference._ALIASES.get(kind, {}).get(id, ())):
                assert keys.setdefault(reference.name_key(spelling), id) == id, (kind, spelling)


@pytest.mark.parametrize("cell, number", [
    ("1.200.000,00", 1_200_000), ("1.500.000 €", 1_500_000), ("12,0", 12), ("1.500.000 EUR", 1_500_000),
    ("EUR 2.000", 2_000), ("1,200,000.00", 1_200_000), ("1 200", 1_200), ("120.0", 120), ("40", 40),
    ("1e3", None), ("1_000", None), ("12,5", None), ("1.2.3", None), ("viele", None), ("∞", None), ("0x10", None),
])
def test_numbers_as_german_and_english_offices_write_them(cell, number):
    if number is None:
        with pytest.raises(ValueError):
            importer._int(cell)
    else:
        assert importer._int(cell) == number


@pytest.mark.parametrize("cell, values", [
    ("IT-Cluster, Logistiknetzwerk", ["it-cluster", "logistics-network"]),
    ("IT-Cluster; Logistiknetzwerk", ["it-cluster", "logistics-network"]),
])
def test_associations_are_separated_by_commas_or_semicolons(cell, values):
    data, errors = importer.read_row({"associations": cell})
    assert data["associations"] == values and "associations" not in errors


def test_competencies_are_separated_by_semicolons_only():
    """A comma belongs to the text of a competency ("Fräsen, Drehen und Schleifen")."""
    data, _ = importer.read_row({"offers": "Fräsen, Drehen und Schleifen; Lackieren: Pulver, nass"})
    assert data["offers"] == [{"label": "Fräsen, Drehen und Schleifen", "description": None},
                              {"label": "Lackieren", "description": "Pulver, nass"}]
