"""What an activity's configuration limits its grants by, free of I/O: the per-user cap of a
prize (referral prize settings), the total quantity of a prize over the activity, and the
activity's total budget (SPEC §1.7, §6 "Budgets").

The database enforces them (``GrantRepository.claim_*`` and the daily run's set-based
statements): a grant is written only in the transaction that took its slots, and a
cancelled reward gives them back (``service.give_back``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from activity_service.tenants.fx import NoRate, RateTable

# Latest outcomes of a grant refused by a limit (the user completed the task).
CAP_REACHED = "cap_reached"
QUANTITY_EXHAUSTED = "quantity_exhausted"
BUDGET_EXHAUSTED = "budget_exhausted"


class NoCost(LookupError):
    """A budgeted grant whose cost is unknown: ``reason`` is ``no_prize_cost`` (the prize
    had no cost when the activity was saved) or ``no_fx_rate`` (it cannot be converted)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    caps: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    budget: Decimal | None = None
    currency: str | None = None
    costs: dict[str, tuple[Decimal, str]] = field(default_factory=dict)

    def guards(self, prize_id: str) -> bool:
        """Whether a grant of this prize takes anything that may run out."""
        return prize_id in self.caps or prize_id in self.totals or self.budget is not None

    def cost(self, prize_id: str, rates: RateTable, at: datetime) -> Decimal:
        """What a grant of the prize takes from the budget, in the budget's currency, at the
        FX rate effective at ``at``. Raises ``NoCost``."""
        assert self.currency is not None
        known = self.costs.get(prize_id)
        if known is None:
            raise NoCost("no_prize_cost", f"prize {prize_id} has no cost")
        amount, currency = known
        try:
            return rates.convert(amount, currency, self.currency, at)
        except NoRate as exc:
            raise NoCost("no_fx_rate", str(exc)) from exc


def limits_of(config: Mapping[str, Any] | None) -> Limits:
    config = config or {}
    budget = config.get("budget") or None
    return Limits(
        caps={
            str(limit["prize_id"]): int(limit["max_per_user"])
            for limit in config.get("prize_limits") or []
        },
        totals={
            str(total["prize_id"]): int(total["total_quantity"])
            for total in config.get("prize_totals") or []
        },
        budget=Decimal(str(budget["amount"])) if budget else None,
        currency=budget.get("currency") if budget else None,
        costs={
            str(prize_id): (Decimal(str(cost["amount"])), str(cost["currency"]))
            for prize_id, cost in (config.get("prize_costs") or {}).items()
        },
    )


def fit_in_budget(
    spent: Decimal, budget: Decimal, costs: list[tuple[str, Decimal]]
) -> tuple[list[str], Decimal]:
    """Of grants asking in this order, the ones the rest of the budget pays for (a grant
    that does not fit is refused; a cheaper later one may still fit, as it would if the
    grants arrived one by one), and what they take together."""
    taken: list[str] = []
    total = Decimal(0)
    for key, cost in costs:
        if spent + total + cost <= budget:
            taken.append(key)
            total += cost
    return taken, total
