"""Fault tests share one running system per pytest session (package scope).

Every scenario module uses the ``faults`` fixture: the whole order system
(`tests.faults.system.FaultSystem`) started on first use and stopped after
the last test of this package, so `make test` pays for one start-up. The
scenario table (`tests.faults.checker.table`) is printed at the end of the
session and written next to the run's logs.

``SAGAS_FAULTS=long`` runs the long versions (`tests.faults.plan`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.faults import plan
from tests.faults.checker import TABLE_FILES, VERDICTS, table
from tests.faults.system import FaultSystem, load_average, new_run_dir

_HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection scenario on the whole system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="package")
def fault_plan() -> plan.Plan:
    return plan.current()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def faults(fault_plan: plan.Plan) -> AsyncIterator[FaultSystem]:
    run_dir = new_run_dir(fault_plan.name)
    system = await FaultSystem.start(run_dir, fault_plan)
    try:
        yield system
    finally:
        await system.close()
        if VERDICTS:
            path = run_dir / "fault-table.md"
            path.write_text(table(VERDICTS) + "\n")
            TABLE_FILES.append(path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not VERDICTS:
        return
    terminalreporter.section(f"fault scenarios ({plan.current().name})")
    terminalreporter.write_line(table(VERDICTS))
    terminalreporter.write_line(f"load average at the end: {load_average()}")
    for path in TABLE_FILES:
        terminalreporter.write_line(f"table and logs: {path.parent}")
