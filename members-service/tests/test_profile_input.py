"""Profile validation and the CSV/Excel reader: no database, no broker."""
import io

import pytest
from marshmallow import ValidationError

from members import importer
from members.services import validate_profile


def test_a_valid_profile_is_linked_to_the_vocabulary(member_input):
    profile = validate_profile(member_input())
    needs = {item["label"]: item["term"] for item in profile["needs"]}
    assert needs["Rückverfolgbarkeit"] == "traceability-software"
    assert needs["Etwas ganz Eigenes"] is None  # free text stays free text
    assert profile["offers"][1] == {"term": "battery-cell-manufacturing", "label": "Battery cell manufacturing",
                                    "description": None}
    assert profile["consent"] == {"suggest_as_partner": True, "email": True}


@pytest.mark.parametrize("change, field", [
    ({"sector": "aerospace"}, "sector"),
    ({"contact": {"name": "X", "email": "not-an-email", "language": "de"}}, "contact"),
    ({"offers": "Druckguss"}, "offers"),
    ({"name": "x" * 201}, "name"),
    ({"name": ""}, "name"),
    ({"region": {"state": "XX", "postcode": "7017", "city": "A"}}, "region"),
    ({"size": {"employees": -1}}, "size"),
    ({"size": {"employees": "many"}}, "size"),
    ({"topics": ["time-travel"]}, "topics"),
    ({"topics": ["ai", "ai"]}, "topics"),
    ({"associations": ["chess-club"]}, "associations"),
    ({"offers": [{"term": "no-such-term"}]}, "offers"),
    ({"offers": [{"description": "neither term nor label"}]}, "offers"),
    ({"contact": {"name": "X", "email": "x@example.org", "language": "fr"}}, "contact"),
    ({"website": "javascript:alert(1)"}, "website"),
    ({"hobby": "golf"}, "hobby"),
])
def test_bad_input_names_the_field(change, field, member_input):
    with pytest.raises(ValidationError) as error:
        validate_profile(member_input(**change))
    assert field in error.value.messages


def test_consent_is_opt_in(member_input):
    member = member_input()
    del member["consent"]
    assert validate_profile(member)["consent"] == {"suggest_as_partner": False, "email": False}


CSV = "\n".join([
    "name;sector;associations;state;postcode;city;employees;contact_name;contact_email;language;"
    "offers;needs;topics;suggest_as_partner;email_consent",
    "Datenwerk Dresden GmbH;it;it-cluster;SN;1067;Dresden;1.200;Tom Berg;tom@datenwerk.example;de;"
    "Track-and-Trace-Software: Echtzeit;Batterietransport;Elektromobilität;ja;nein",
]) + "\n"


def test_csv_with_semicolons_german_numbers_and_topic_labels():
    [row] = importer.read_table(CSV.encode("utf-8"), "text/csv").rows
    profile = importer.to_profile(row)
    assert profile["region"]["postcode"] == "01067"  # the leading zero a spreadsheet dropped
    assert profile["size"]["employees"] == 1200
    assert profile["offers"] == [{"label": "Track-and-Trace-Software", "description": "Echtzeit"}]
    assert profile["consent"] == {"suggest_as_partner": True, "email": False}
    assert profile["topics"] == ["Elektromobilität"]


def test_excel_rows_read_like_csv_rows():
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Firma", "Branche", "PLZ", "Ort", "Bundesland", "Mitarbeiter", "E-Mail", "Kontakt"])
    sheet.append(["Spedition Nord KG", "logistics", 20095, "Hamburg", "HH", 40.0, "info@nord.example", "Ole"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    [row] = importer.read_table(buffer.getvalue(), importer.EXCEL_TYPES[0]).rows
    profile = importer.to_profile(row)
    assert (profile["name"], profile["region"]["postcode"], profile["size"]["employees"]) == \
        ("Spedition Nord KG", "20095", 40)


@pytest.mark.parametrize("cell, column", [("viele", "employees"), ("1,5", "employees")])
def test_unreadable_numbers_are_row_errors(cell, column):
    with pytest.raises(importer.RowError, match=column):
        importer.to_profile({"name": "X", column: cell})


def test_files_that_are_not_tables_are_refused():
    from verbund.errors import BadRequest, UnsupportedMediaType

    with pytest.raises(UnsupportedMediaType):
        importer.read_table(b"%PDF-1.7", "application/pdf")
    with pytest.raises(BadRequest):
        importer.read_table(b"not a workbook", importer.EXCEL_TYPES[0])
    with pytest.raises(BadRequest, match="name"):
        importer.read_table(b"foo,bar\n1,2\n", "text/csv")
