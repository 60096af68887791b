"""The kit's text field and the JSON depth guard: no service, no broker."""
import json

import pytest
from marshmallow import Schema, ValidationError, fields, validate

from verbund.schema_fields import MAX_DB_INTEGER, NON_ASCII_LOCAL_PART, Email, Text, Url, search_key
from verbund.web import MAX_JSON_DEPTH, json_depth


class Contact(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=6))
    note = Text(load_default=None, allow_none=True, multiline=True)
    kind = Text(validate=validate.OneOf(["a", "b"]))
    email = Email()
    website = Url()


def load(**data):
    return Contact().load({"name": "Anna", **data})


def test_surrounding_whitespace_is_trimmed():
    assert load(name="  Anna ")["name"] == "Anna"
    # What a copy from a spreadsheet cell or a file brings along: tab, line end, no-break space, BOM.
    assert load(name="\ufeff\u00a0Anna\t\r\n")["name"] == "Anna"


def test_controls_at_the_ends_are_refused_not_trimmed():
    with pytest.raises(ValidationError) as error:
        load(name="Anna\x0b")
    assert "U+000B" in error.value.messages["name"][0]


def test_decomposed_text_is_stored_composed():
    name = load(name="Mu\u0308ller")["name"]
    assert name == "M\u00fcller" and len(name) == 6


def test_lengths_count_the_normalised_text():
    # Six characters once composed and trimmed, although nine code points were sent.
    assert load(name=" Mu\u0308ller ")["name"] == "Müller"
    with pytest.raises(ValidationError):
        load(name="Mu\u0308llers")
    with pytest.raises(ValidationError) as error:
        load(name="   ")
    assert "name" in error.value.messages


@pytest.mark.parametrize("char", ["\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f", "\ud800", "\udfff",
                                  "\ufffe", "\uffff", "\ufdd0", "\U0010ffff", "\u202e", "\u2066",
                                  "\t", "\n", "\r", "\u2028"])
def test_a_single_line_field_refuses_control_and_invalid_characters(char):
    with pytest.raises(ValidationError) as error:
        load(name=f"A{char}b")
    [message] = error.value.messages["name"]
    assert f"U+{ord(char):04X}" in message and "position 2" in message


@pytest.mark.parametrize("char", ["\x0b", "\x00", "\x85", "\u202e", "\ud800"])
def test_a_multi_line_field_refuses_them_too(char):
    with pytest.raises(ValidationError) as error:
        load(note=f"Zeile 1\nZeile{char}2")
    assert "note" in error.value.messages


def test_a_multi_line_field_keeps_tabs_and_newlines_and_unifies_line_ends():
    assert load(note="  Zeile 1\r\nZeile 2\rZeile\t3\n\n")["note"] == "Zeile 1\nZeile 2\nZeile\t3"


def test_ordinary_international_text_passes():
    text = "Ærø Šťastný – “Ölanalytik” 株式会社 \u200fשלום\u200e 👩\u200d🔧"
    assert load(note=text)["note"] == text


def test_choices_email_and_urls_see_the_normalised_text():
    data = load(kind=" a ", email=" a@example.org ", website=" https://example.org ")
    assert (data["kind"], data["email"], data["website"]) == ("a", "a@example.org", "https://example.org")
    with pytest.raises(ValidationError) as error:
        load(email="a\x0b@example.org")
    assert "email" in error.value.messages


@pytest.mark.parametrize("url, where", [("https://example.org/a<script>", "'<' at position 22"),
                                        ("https://example.org/50%", "'%' at position 23"),
                                        ("https://example.org/%zz", "'%' at position 21"),
                                        ('https://example.org/"x', "position 21"),
                                        ("https://example.org/a|b", "'|' at position 22")])
def test_a_url_refuses_what_rfc_3986_leaves_out(url, where):
    with pytest.raises(ValidationError) as error:
        load(website=url)
    assert where in error.value.messages["website"][0]


@pytest.mark.parametrize("url", ["https://example.org/a%20b?x=1&y=%C3%BC#teil", "https://müller.de/über-uns",
                                 "http://example.org/(c)/~name;v=1,2+3*4!'$@:"])
def test_percent_encodings_and_iris_stay_urls(url):
    assert load(website=url)["website"] == url


def test_null_and_non_text_keep_their_answers():
    assert load(note=None)["note"] is None
    with pytest.raises(ValidationError) as error:
        load(name=42)
    assert error.value.messages["name"] == ["Not a valid string."]


@pytest.mark.parametrize("stored, query", [("Überlingen", "überlingen"), ("Ärztehaus", "ärztehaus"),
                                           ("Ölanalytik-Software", "ÖLANALYTIK"), ("Mu\u0308ller", "MÜLLER"),
                                           ("Gießerei", "GIESSEREI")])
def test_search_keys_meet_regardless_of_case_and_composition(stored, query):
    assert search_key(query) in search_key(stored)


@pytest.mark.parametrize("stored, query", [("Alpha\u200bLogistik", "alphalogistik"), ("Spedi\u00adtion", "Spedition"),
                                           ("Daten\u2060Werk", "DATENWERK"), ("\ufeffBeta", "beta")])
def test_invisible_characters_in_a_stored_name_do_not_hide_it_from_a_search(stored, query):
    assert search_key(query) == search_key(stored)


@pytest.mark.parametrize("text, depth", [
    ('{"a": 1}', 1), ("[]", 1), ("3", 0), ('"[[[["', 0), ('{"a": "]]]\\"[[[", "b": [[{}]]}', 4),
    ("[" * 5000 + "]" * 5000, 5000), ('{"a":' * 100 + "1" + "}" * 100, 100),
    ('["\\\\", [[]]]', 3), ('["\\\\\\"[", [[]]]', 3), ('"' + '\\"[' * 100_000, 0),
])
def test_json_depth_is_found_without_recursion(text, depth):
    assert json_depth(text.encode()) == depth


def test_the_depth_limit_leaves_room_for_every_real_body():
    body = json.dumps({"a": [{"b": [{"c": "[" * 1000}]}]})
    assert json_depth(body.encode()) < MAX_JSON_DEPTH


@pytest.mark.parametrize("address", ["jürgen@baecker.example", "ßtefan@example.org", "émile@exemple.fr"])
def test_an_address_the_platform_cannot_mail_is_refused(address):
    with pytest.raises(ValidationError) as error:
        load(email=address)
    assert error.value.messages["email"] == [NON_ASCII_LOCAL_PART]


def test_an_internationalised_domain_is_accepted():
    assert load(email="juergen@bäcker.example")["email"] == "juergen@bäcker.example"


def _input_schemas():
    """Every body and query schema of every service's HTTP entrypoints."""
    import importlib

    from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

    for module in ("members.service", "events.service", "matching.service", "notifications.service"):
        service = importlib.import_module(module)
        for cls in vars(service).values():
            for method in vars(cls).values() if isinstance(cls, type) else ():
                for factory in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()):
                    for name in ("body", "query"):
                        schema = getattr(factory, name, None)
                        if isinstance(schema, type) and issubclass(schema, Schema):
                            yield f"{module}.{cls.__name__}.{method.__name__}", schema()


def _integer_fields(schema, path=""):
    for name, field in schema.fields.items():
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            yield from _integer_fields(inner.schema, f"{path}{name}.")
        elif isinstance(inner, fields.Integer) and not field.dump_only:
            yield f"{path}{name}", inner


def test_every_integer_input_of_every_service_fits_a_database_integer():
    """A value beyond 64 bits is a 500 from the database, not a 422 (issue 11, the tester's 10^20)."""
    seen = set()
    for where, schema in _input_schemas():
        for name, field in _integer_fields(schema):
            seen.add(f"{where}:{name}")
            bounds = [v for v in field.validators if isinstance(v, validate.Range) and v.max is not None]
            assert bounds and max(v.max for v in bounds) <= MAX_DB_INTEGER, f"{where}: {name} has no upper bound"
            assert all(v.min is not None and v.min >= -MAX_DB_INTEGER - 1 for v in bounds), f"{where}: {name}"
    assert any(key.endswith("size.turnover_eur") for key in seen)  # the walk reaches nested schemas
