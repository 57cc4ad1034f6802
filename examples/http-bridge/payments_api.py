"""A payments HTTP API that knows nothing of Kafka or sagas: the other end of the bridge.

    python examples/http-bridge/payments_api.py --port 8080

POST /authorize {customer_id, amount}  -> 200 {authorization_id, amount}
                                         402 {reason, limit, wanted} over the credit limit
POST /capture   {authorization_id}     -> 200 {payment_id, authorization_id, amount}
                                         409 {reason} for an unknown or voided authorization
POST /void      {authorization_id}     -> 200 {authorization_id, voided_amount}
POST /refund    {payment_id}           -> 200 {payment_id, refunded_amount}

Every POST needs an ``Idempotency-Key`` header: a repeated key gets the first
answer again and changes nothing (how the bridge's retries stay harmless).
Money is in integer cents; everything is in memory.

``unavailable_first`` and ``slow_first`` inject failures for tests: the first
N requests of a customer's authorization answer 503, or take that many
seconds.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_LIMITS = {"cust-broke": 500}


@dataclass
class Books:
    limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    default_limit: int = 10**9
    unavailable_first: Mapping[str, int] = field(default_factory=dict)
    slow_first: Mapping[str, float] = field(default_factory=dict)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)  # customer -> cents held or kept

    def authorize(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        customer, amount = str(body.get("customer_id", "")), int(body.get("amount", 0))
        if not customer or amount <= 0:
            return 400, {"reason": "customer_id and a positive amount are required"}
        limit = self.limits.get(customer, self.default_limit)
        if self.held.get(customer, 0) + amount > limit:
            return 402, {"reason": "credit limit exceeded", "limit": limit, "wanted": amount}
        auth_id = f"auth-{key[:12]}"
        self.authorizations[auth_id] = {"customer": customer, "amount": amount, "state": "held"}
        self.held[customer] = self.held.get(customer, 0) + amount
        return 200, {"authorization_id": auth_id, "amount": amount}

    def capture(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        auth_id = str(body.get("authorization_id", ""))
        auth = self.authorizations.get(auth_id)
        if auth is None or auth["state"] != "held":
            return 409, {"reason": f"no authorization {auth_id!r} to capture"}
        auth["state"] = "captured"
        pay_id = f"pay-{key[:12]}"
        self.payments[pay_id] = {"authorization_id": auth_id, **auth, "state": "kept"}
        return 200, {"payment_id": pay_id, "authorization_id": auth_id, "amount": auth["amount"]}

    def void(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        auth_id = str(body.get("authorization_id") or "")
        auth = self.authorizations.get(auth_id)
        if auth is None or auth["state"] != "held":
            return 200, {"authorization_id": auth_id or None, "voided_amount": 0}
        auth["state"] = "voided"
        self.held[auth["customer"]] -= auth["amount"]
        return 200, {"authorization_id": auth_id, "voided_amount": auth["amount"]}

    def refund(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        pay_id = str(body.get("payment_id") or "")
        payment = self.payments.get(pay_id)
        if payment is None or payment["state"] != "kept":
            return 200, {"payment_id": pay_id or None, "refunded_amount": 0}
        payment["state"] = "refunded"
        self.held[payment["customer"]] -= payment["amount"]
        return 200, {"payment_id": pay_id, "refunded_amount": payment["amount"]}

    def kept(self) -> int:
        return sum(p["amount"] for p in self.payments.values() if p["state"] == "kept")


def make_app(books: Books | None = None) -> web.Application:
    books = books or Books()
    actions = {
        "authorize": books.authorize,
        "capture": books.capture,
        "void": books.void,
        "refund": books.refund,
    }
    tries: dict[str, int] = {}

    async def handle(request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in actions:
            return web.json_response({"reason": f"no such action {action!r}"}, status=404)
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"reason": "Idempotency-Key header required"}, status=400)
        body = await request.json()
        books.requests.append((action, key, body))
        customer = str(body.get("customer_id", ""))
        if action == "authorize":
            tries[key] = tries.get(key, 0) + 1
            if tries[key] <= books.unavailable_first.get(customer, 0):
                return web.json_response({"reason": "try again"}, status=503)
            if tries[key] == 1 and customer in books.slow_first:
                await asyncio.sleep(books.slow_first[customer])
        if key not in books.answers:
            books.answers[key] = actions[action](key, body)
        status, answer = books.answers[key]
        return web.json_response(answer, status=status)

    app = web.Application()
    app.router.add_post("/{action}", handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
