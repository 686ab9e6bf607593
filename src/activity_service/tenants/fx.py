"""Deterministic currency conversion (SPEC §1.4): pure, no I/O.

The rule: an amount in currency A is converted to B with the latest rate of the pair A→B
whose ``effective_at`` is at or before the flow's time; if only B→A is maintained, its
inverse is used. Same-currency conversion is the identity. The product is rounded to
``MONEY_PLACES`` decimal places with ROUND_HALF_EVEN, once per flow, so the same flows
always convert to the same numbers whatever the order they are summed in.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

MONEY_PLACES = Decimal("0.000001")


class NoRate(LookupError):
    """No rate of the pair is effective at that time."""

    def __init__(self, source: str, target: str, at: datetime) -> None:
        super().__init__(f"no {source}->{target} rate effective at {at.isoformat()}")
        self.source, self.target, self.at = source, target, at


def quantize(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_EVEN)


@dataclass
class RateTable:
    """The tenant's rates: per pair, the (effective_at, rate) history sorted by time."""

    _pairs: dict[tuple[str, str], list[tuple[datetime, Decimal]]] = field(default_factory=dict)

    def add(self, source: str, target: str, effective_at: datetime, rate: Decimal) -> None:
        history = self._pairs.setdefault((source, target), [])
        bisect.insort(history, (effective_at, rate), key=lambda item: item[0])

    def _latest(self, source: str, target: str, at: datetime) -> Decimal | None:
        history = self._pairs.get((source, target))
        if not history:
            return None
        index = bisect.bisect_right([h[0] for h in history], at)
        return history[index - 1][1] if index else None

    def rate(self, source: str, target: str, at: datetime) -> Decimal:
        if source == target:
            return Decimal(1)
        direct = self._latest(source, target, at)
        if direct is not None:
            return direct
        inverse = self._latest(target, source, at)
        if inverse is not None and inverse != 0:
            return Decimal(1) / inverse
        raise NoRate(source, target, at)

    def convert(self, amount: Decimal, source: str, target: str, at: datetime) -> Decimal:
        if source == target:
            return amount
        return quantize(amount * self.rate(source, target, at))
