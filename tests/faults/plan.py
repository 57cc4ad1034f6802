"""How big each fault scenario is: short (every `make test`) or long (`make test-faults`).

``SAGAS_FAULTS=long`` selects the long versions; anything else (or unset) the
short ones. The short set shares one running system across every scenario
(where the faults allow) so that `make test` pays for one start-up; the long
set does the same with thousands of sagas per scenario.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV = "SAGAS_FAULTS"


@dataclass(frozen=True)
class Plan:
    name: str
    orders: int  # orders placed per fault scenario
    rate: float  # orders per second while placing (open loop)
    burst: int  # sagas started at once in the backpressure scenario
    fuzz_examples: int  # malformed records the fuzzer publishes
    fuzz_orders: int  # good orders interleaved with them
    pause: float  # seconds a coordinator is SIGSTOPped (> its session timeout)
    slow_for: float  # seconds a service runs throttled
    settle: float  # seconds to wait after the last order for every saga to end
    #: broker faults (tests/faults/test_8_broker_faults.py), on a 3-node Apache Kafka:
    broker_orders: int = 0  # orders placed per broker-fault scenario
    broker_rate: float = 1.0  # orders per second while placing (open loop)
    broker_down: float = 0.0  # seconds a killed or cut-off broker stays out after it is fenced


SHORT = Plan(
    "short",
    orders=80,
    rate=40.0,
    burst=1_000,
    fuzz_examples=60,
    fuzz_orders=40,
    pause=7.0,
    slow_for=7.0,
    settle=90.0,
    broker_orders=120,
    broker_rate=8.0,
    broker_down=0.0,
)
LONG = Plan(
    "long",
    orders=2_000,
    rate=100.0,
    burst=10_000,
    fuzz_examples=600,
    fuzz_orders=1_000,
    pause=10.0,
    slow_for=15.0,
    settle=240.0,
    broker_orders=2_400,
    broker_rate=40.0,
    broker_down=10.0,
)


def current() -> Plan:
    return LONG if os.environ.get(ENV, "").lower() == "long" else SHORT
