"""Money: ``Decimal`` with an ISO currency, never float; amounts travel as JSON strings."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer

Currency = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", examples=["HKD"], description="ISO 4217 currency code"),
]

Amount = Annotated[
    Decimal,
    Field(gt=0, max_digits=20, decimal_places=6, examples=["1000.00"]),
    PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json"),
]
"""A positive amount; accepted as a string or number, always returned as a string."""
