import pytest


@pytest.fixture
def member_input():
    def make(**overrides):
        return {
            "name": "Elbe Logistik GmbH", "sector": "logistics", "associations": ["logistics-network"],
            "region": {"state": "HH", "postcode": "20457", "city": "Hamburg"}, "size": {"employees": 140},
            "contact": {"name": "Lena Hansen", "email": "l.hansen@elbe-logistik.example", "language": "de"},
            "offers": [{"label": "Gefahrgutlogistik"}], "needs": [{"label": "Tourenplanung"}],
            "topics": ["digital-logistics"], "consent": {"suggest_as_partner": True, "email": True},
            **overrides,
        }
    return make
