"""Model-based test of the state machine (issue 22): random interleavings of starts,
successes, failures, duplicates, early, late and out-of-order events, timer firings and
aborts, orchestrated and choreographed; the rules and invariants are in `machine_model`.

``SAGA_MODEL_EXAMPLES`` sets how many runs (the long fault run, `make test-faults`, runs
many more from tests/faults/test_6_machine_model.py).
"""

from __future__ import annotations

import os

from machine_model import world

TestSagaWorld = world(int(os.environ.get("SAGA_MODEL_EXAMPLES", "150"))).TestCase
