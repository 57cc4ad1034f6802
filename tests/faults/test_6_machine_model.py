"""The state machine's model-based test (tests/unit/machine_model.py), at length.

`make test` runs it with bounded examples from tests/unit; the long fault run
(``SAGAS_FAULTS=long``, `make test-faults`) runs many more here. No broker needed.
"""

from __future__ import annotations

import pytest

from tests.faults import plan
from tests.unit.machine_model import world

LONG = plan.current().name == "long"

pytestmark = pytest.mark.skipif(not LONG, reason="tests/unit runs the bounded version")

TestSagaWorldLong = world(5_000, steps=60).TestCase
