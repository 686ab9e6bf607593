"""Money: ``Decimal`` with an ISO currency, never float; amounts travel as JSON strings."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

Currency = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", examples=["HKD"], description="ISO 4217 currency code"),
]

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_DECIMAL = re.compile(DECIMAL_PATTERN)


def decimal_text(value: Any) -> Any:
    """A JSON number is refused: a float may already have lost the amount (0.1 + 0.2), and
    clients of every language can send the exact digits as a string."""
    if isinstance(value, bool | int | float):
        raise ValueError('a decimal is sent as a string, e.g. "1000.00", never as a JSON number')
    if isinstance(value, str) and not _DECIMAL.match(value):
        raise ValueError('a decimal is digits with an optional sign and point, e.g. "1000.00"')
    return value


def decimal_string(example: str, description: str | None = None) -> WithJsonSchema:
    """The schema of a decimal carried as a string, in requests and responses alike."""
    schema: dict[str, Any] = {"type": "string", "pattern": DECIMAL_PATTERN, "examples": [example]}
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)


def _plain(value: Decimal) -> str:
    return format(value, "f")


Amount = Annotated[
    Decimal,
    BeforeValidator(decimal_text),
    Field(gt=0, max_digits=20, decimal_places=6),
    PlainSerializer(_plain, return_type=str, when_used="json"),
    decimal_string("1000.00"),
]
"""A positive amount; accepted only as a string, always returned as a string."""
