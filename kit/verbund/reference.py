"""Reference data shared by the services: sectors, associations, German
federal states, languages. Plain constants; the competency and topic
vocabulary lives in ``verbund.vocabulary``."""

SECTORS = ("automotive", "it", "logistics", "research", "public", "other")

# The three partner associations of the cooperation.
ASSOCIATIONS = {
    "automotive-cluster": "Automotive cluster",
    "it-cluster": "IT cluster",
    "logistics-network": "Logistics network",
}

# ISO 3166-2:DE codes of the sixteen federal states.
STATES = {
    "BW": "Baden-Württemberg", "BY": "Bayern", "BE": "Berlin", "BB": "Brandenburg",
    "HB": "Bremen", "HH": "Hamburg", "HE": "Hessen", "MV": "Mecklenburg-Vorpommern",
    "NI": "Niedersachsen", "NW": "Nordrhein-Westfalen", "RP": "Rheinland-Pfalz",
    "SL": "Saarland", "SN": "Sachsen", "ST": "Sachsen-Anhalt", "SH": "Schleswig-Holstein",
    "TH": "Thüringen",
}

LANGUAGES = ("de", "en")

# The German postcode regions (first two digits) and the states they reach, the state holding most
# of the region first. Regions follow postal routes, not state borders, so the mapping is rough at
# the borders: a region lists every state with places in it (01 Dresden reaches into Brandenburg,
# 37 Göttingen into Hesse, Thuringia and North Rhine-Westphalia). A state missing from its region's
# list is a postcode and state that cannot both be right; 00, 05, 11, 43 and 62 are no regions.
POSTCODE_REGIONS = {
    "01": ("SN", "BB"), "02": ("SN", "BB"), "03": ("BB", "SN"), "04": ("SN", "ST", "TH", "BB"),
    "06": ("ST", "SN", "TH"), "07": ("TH", "SN"), "08": ("SN", "TH"), "09": ("SN",),
    "10": ("BE",), "12": ("BE",), "13": ("BE",), "14": ("BB", "BE"), "15": ("BB",), "16": ("BB",),
    "17": ("MV", "BB"), "18": ("MV",), "19": ("MV", "BB", "NI"),
    "20": ("HH",), "21": ("HH", "NI", "SH"), "22": ("HH", "SH"), "23": ("SH", "MV"), "24": ("SH",), "25": ("SH",),
    "26": ("NI",), "27": ("NI", "HB"), "28": ("HB", "NI"), "29": ("NI", "ST"),
    "30": ("NI",), "31": ("NI", "NW"), "32": ("NW", "NI"), "33": ("NW", "NI"), "34": ("HE", "NI", "NW"),
    "35": ("HE", "NW"), "36": ("HE", "TH", "BY"), "37": ("NI", "HE", "TH", "NW"), "38": ("NI", "ST"),
    "39": ("ST", "BB"),
    "40": ("NW",), "41": ("NW",), "42": ("NW",), "44": ("NW",), "45": ("NW",), "46": ("NW",), "47": ("NW",),
    "48": ("NW", "NI"), "49": ("NI", "NW"),
    "50": ("NW",), "51": ("NW", "RP"), "52": ("NW",), "53": ("NW", "RP"), "54": ("RP",), "55": ("RP", "HE"),
    "56": ("RP", "HE"), "57": ("NW", "RP", "HE"), "58": ("NW",), "59": ("NW",),
    "60": ("HE",), "61": ("HE",), "63": ("HE", "BY"), "64": ("HE", "BY", "BW"), "65": ("HE", "RP"),
    "66": ("SL", "RP"), "67": ("RP", "HE", "BW"), "68": ("BW", "HE", "RP"), "69": ("BW", "HE"),
    "70": ("BW",), "71": ("BW",), "72": ("BW",), "73": ("BW",), "74": ("BW", "BY"), "75": ("BW",), "76": ("BW", "RP"),
    "77": ("BW",), "78": ("BW",), "79": ("BW",),
    "80": ("BY",), "81": ("BY",), "82": ("BY",), "83": ("BY",), "84": ("BY",), "85": ("BY",), "86": ("BY",),
    "87": ("BY", "BW"), "88": ("BW", "BY"), "89": ("BW", "BY"),
    "90": ("BY",), "91": ("BY",), "92": ("BY",), "93": ("BY",), "94": ("BY",), "95": ("BY",),
    "96": ("BY", "TH"), "97": ("BY", "BW", "HE", "TH"), "98": ("TH", "BY"), "99": ("TH",),
}


def postcode_states(postcode: str) -> tuple[str, ...]:
    """The states (ISO 3166-2:DE codes, the likeliest first) that places with this five-digit
    ``postcode`` lie in, by its region (``POSTCODE_REGIONS``); empty for no known region."""
    return POSTCODE_REGIONS.get(postcode[:2], ())


# English names of the states whose German name is not also the English one.
_STATES_EN = {"BY": "Bavaria", "HE": "Hesse", "MV": "Mecklenburg-Western Pomerania", "NI": "Lower Saxony",
              "NW": "North Rhine-Westphalia", "RP": "Rhineland-Palatinate", "SN": "Saxony", "ST": "Saxony-Anhalt",
              "TH": "Thuringia"}

# Names a person types for the ids above, in German and English: one lookup
# for every place that takes them from people (the member import, the portal).
# ``NAMES[kind][id]`` holds the display name per language; ``_ALIASES`` more
# spellings that are accepted but never shown.
NAMES = {
    "sector": {
        "automotive": {"de": "Automobil", "en": "Automotive"},
        "it": {"de": "IT", "en": "IT"},
        "logistics": {"de": "Logistik", "en": "Logistics"},
        "research": {"de": "Forschung", "en": "Research"},
        "public": {"de": "Öffentliche Hand", "en": "Public sector"},
        "other": {"de": "Sonstige", "en": "Other"},
    },
    "association": {
        "automotive-cluster": {"de": "Automobilcluster", "en": "Automotive cluster"},
        "it-cluster": {"de": "IT-Cluster", "en": "IT cluster"},
        "logistics-network": {"de": "Logistiknetzwerk", "en": "Logistics network"},
    },
    "state": {code: {"de": name, "en": _STATES_EN.get(code, name)} for code, name in STATES.items()},
    "language": {
        "de": {"de": "Deutsch", "en": "German"},
        "en": {"de": "Englisch", "en": "English"},
    },
    "yes_no": {
        "yes": {"de": "ja", "en": "yes"},
        "no": {"de": "nein", "en": "no"},
    },
}

# Symbols a person uses for yes and no in a cell (emoji forms with U+FE0F are the same).
_CHECK_MARKS = ("✓", "✔", "☑", "✅", "🗸")
_CROSSES = ("✗", "✘", "❌", "☐", "❎", "✕", "✖")
_SYMBOLS = frozenset("".join(_CHECK_MARKS + _CROSSES) + "☒")

_ALIASES = {
    "sector": {
        "automotive": ("Automobilindustrie", "Automobilzulieferer", "Automobilwirtschaft", "Fahrzeugbau", "Kfz",
                       "Auto", "Automotive industry"),
        "it": ("Informationstechnik", "Informationstechnologie", "IT-Dienstleister", "Software",
               "Information technology"),
        "logistics": ("Logistikdienstleister", "Spedition", "Transport", "Logistics services"),
        "research": ("Forschungseinrichtung", "Wissenschaft", "Hochschule", "Research institute"),
        "public": ("Öffentlich", "Öffentlicher Sektor", "Verwaltung", "Public", "Public administration"),
        "other": ("Andere", "Sonstiges"),
    },
    "association": {
        "automotive-cluster": ("Automotive-Cluster", "Automobil-Cluster"),
        "it-cluster": ("IT-Verband",),
        "logistics-network": ("Logistik-Netzwerk", "Logistiknetz"),
    },
    # The usual abbreviations (Duden, the states' own), the official long names ("Freistaat
    # Bayern", "Freie und Hansestadt Hamburg"), "Land X" and the ISO codes with their "DE-".
    "state": {code: (f"DE-{code}", f"Land {name}", *more) for code, name, more in (
        ("BW", STATES["BW"], ("Baden-Wurttemberg", "BaWü", "Ba-Wü", "Bad.-Württ.", "Baden-Württ.")),
        ("BY", STATES["BY"], ("Freistaat Bayern", "Bay.", "Bayer.")),
        ("BE", STATES["BE"], ("Bln.", "Berlin (Land)")),
        ("BB", STATES["BB"], ("Brandenb.", "Bbg.", "Brbg.")),
        ("HB", STATES["HB"], ("Freie Hansestadt Bremen", "Brem.", "Bremen (Land)")),
        ("HH", STATES["HH"], ("Freie und Hansestadt Hamburg", "Hbg.", "Hmb.")),
        ("HE", STATES["HE"], ("Hess.",)),
        ("MV", STATES["MV"], ("Meck-Pomm", "Meckpomm", "Mecklenb.-Vorp.", "M-V", "Mecklenburg-West Pomerania")),
        ("NI", STATES["NI"], ("Nds.", "Niedersachs.")),
        ("NW", STATES["NW"], ("NRW", "Nordrh.-Westf.", "North Rhine Westfalia")),
        ("RP", STATES["RP"], ("RLP", "Rheinl.-Pf.", "Rheinland-Pf.")),
        ("SL", STATES["SL"], ("Saar", "Saarl.")),
        ("SN", STATES["SN"], ("Freistaat Sachsen", "Sachs.")),
        ("ST", STATES["ST"], ("LSA", "Sachs.-Anh.", "Sachsen-Anh.")),
        ("SH", STATES["SH"], ("Schlesw.-Holst.", "Schl.-H.", "SchlH")),
        ("TH", STATES["TH"], ("Thuringen", "Freistaat Thüringen", "Thür.")),
    )},
    "language": {"de": ("deu", "ger", "Deutsch (de)"), "en": ("eng", "Englisch (en)")},
    # "x" and check marks are how a spreadsheet ticks a box; crosses and empty boxes say no,
    # as does an empty cell (consent is opt-in). Anything else ("?", "☒", which is a ticked box
    # in Word but a cross to others) names nothing and is the row's error, never a silent "no".
    "yes_no": {"yes": ("j", "y", "x", "1", "true", "wahr", *_CHECK_MARKS),
               "no": ("n", "0", "false", "falsch", "-", "–", "—", "", *_CROSSES)},
}


def name_key(text: str) -> str:
    """A spelling reduced to what tells names apart: case-folded, umlauts as
    their two-letter forms (Thüringen = Thueringen), only letters and digits
    ("E-Mail" = "email"), besides the yes/no symbols (✓, ✗, ☐). A text of
    signs alone ("-", "?") keeps its signs, so it is not taken for an empty
    cell. For matching names and headers people type."""
    import unicodedata

    text = unicodedata.normalize("NFC", str(text)).casefold()
    for umlaut, spelled in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, spelled)
    key = "".join(char for char in text if char.isalnum() or char in _SYMBOLS)
    return key or "".join(text.split())


def _index() -> dict[str, dict[str, str]]:
    index: dict[str, dict[str, str]] = {}
    for kind, names in NAMES.items():
        lookup = index.setdefault(kind, {})
        for id, labels in names.items():
            for spelling in (id, *labels.values(), *_ALIASES.get(kind, {}).get(id, ())):
                lookup.setdefault(name_key(spelling), id)
    return index


_INDEX = _index()


def resolve(kind: str, text: str) -> str | None:
    """The id a person means by ``text``, or None when it names nothing.

    ``kind`` is one of ``NAMES`` (sector, association, state, language,
    yes_no). Case, umlaut spelling, spaces and hyphens do not matter:
    "Niedersachsen", "lower saxony" and "NI" are all ``"NI"``; "ja", "x"
    and "Yes" are ``"yes"``. Raises KeyError for an unknown kind.
    """
    return _INDEX[kind].get(name_key(text))


def label(kind: str, id: str, language: str = "de") -> str:
    """The display name of an id in ``language`` ("de" or "en"); the id itself when it has none."""
    return NAMES[kind].get(id, {}).get(language) or id
