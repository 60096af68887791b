"""Download file names after RFC 6266 / RFC 8187 (verbund.downloads)."""
import pytest
from werkzeug.http import parse_options_header

from verbund.downloads import ascii_name, content_disposition, file_response, safe_name


def test_a_german_name_keeps_its_letters_next_to_an_ascii_stand_in():
    assert content_disposition("Gießerei.csv") == \
        "attachment; filename=\"giesserei.csv\"; filename*=UTF-8''Gie%C3%9Ferei.csv"
    assert parse_options_header(content_disposition("Gießerei.csv")) == ("attachment", {"filename": "Gießerei.csv"})
    assert ascii_name("Über Ärztehaus Öl Straße.xlsx") == "ueber-aerztehaus-oel-strasse.xlsx"
    assert ascii_name("Café Łódź.ics") == "cafe-odz.ics"  # accents dropped, what has no ASCII form goes


def test_a_plain_ascii_name_needs_no_filename_star():
    assert content_disposition("event-1234.ics", "inline") == 'inline; filename="event-1234.ics"'


@pytest.mark.parametrize("name, saved", [
    ('../../etc/passwd', "-..-etc-passwd"),            # no path, no hidden file
    ('a"b\\c:d*e?f<g>h|i.csv', "a-b-c-d-e-f-g-h-i.csv"),  # what Windows refuses, and quotes
    ("Zeile\r\nX-Evil: 1.csv", "Zeile-X-Evil- 1.csv"),   # no header injection
    ("", "download"),
])
def test_unsafe_characters_never_reach_the_header(name, saved):
    assert safe_name(name) == saved
    value = content_disposition(name)
    assert "\r" not in value and "\n" not in value and value.isascii()
    assert parse_options_header(value)[1]["filename"] == saved


def test_long_names_are_cut_keeping_the_extension():
    name = safe_name("Ä" * 300 + ".xlsx")
    assert len(name) == 150 and name.endswith("Ä.xlsx")


def test_file_response_sets_type_and_disposition():
    response = file_response(b"x", "text/csv; charset=utf-8", "Müller.csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "filename*=UTF-8''M%C3%BCller.csv" in response.headers["Content-Disposition"]
