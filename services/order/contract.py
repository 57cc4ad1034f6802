"""The order an order saga is about: `order.placed` on the `orders` topic."""

from __future__ import annotations

from pydantic import BaseModel, Field

ORDER_PLACED = "order.placed"


class OrderLine(BaseModel):
    sku: str = Field(min_length=1)
    qty: int = Field(gt=0)


class OrderPlaced(BaseModel):
    """A customer's order; ``amount`` is the total in cents. The saga id names the order's saga."""

    order_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    lines: list[OrderLine] = Field(min_length=1)
    amount: int = Field(gt=0, description="Order total in cents.")
