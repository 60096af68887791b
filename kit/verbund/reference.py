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
