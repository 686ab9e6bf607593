from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer

Money = Annotated[
    Decimal,
    PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json"),
    Field(examples=["1000.00"]),
]


class DailyFlow(BaseModel):
    day: date = Field(description="Local day in the tenant's time zone")
    deposits: Money
    withdrawals: Money
    stock_in: Money = Field(description="Stock transfers in, at market value")
    stock_out: Money = Field(description="Stock transfers out, at market value")
    net: Money = Field(description="deposits + stock in − withdrawals − stock out")


class UserFlows(BaseModel):
    user_id: str = Field(examples=["u-2002"])
    currency: str = Field(description="What every amount was converted into", examples=["HKD"])
    time_zone: str = Field(examples=["Asia/Hong_Kong"])
    first_deposit_day: date | None = Field(description="Over the user's whole history")
    first_transfer_day: date | None = Field(
        description="First stock transfer in, over the whole history"
    )
    days: list[DailyFlow]
