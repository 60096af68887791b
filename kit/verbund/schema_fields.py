"""marshmallow fields the services' schemas share."""
from marshmallow import ValidationError, fields, validate

# Beyond this the offset would overflow a database integer; no list is that long.
MAX_PAGE = 100_000


def page_field() -> fields.Integer:
    return fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))


class StrictBoolean(fields.Boolean):
    """JSON true or false only, for request bodies: consent given as 1 or "yes"
    is not consent. (Query strings, which are text, keep fields.Boolean.)"""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value
