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
