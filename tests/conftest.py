"""Suite-wide pytest setup: the Kafka fixtures, and markers by folder."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.kafka_fixtures"]

_HERE = Path(__file__).parent
_MARK_BY_FOLDER = {"integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration and tests/e2e needs a broker; marking by
    # folder keeps `-m "not integration"` right even when a module forgets.
    for item in items:
        try:
            folder = Path(str(item.path)).relative_to(_HERE).parts[0]
        except ValueError:
            continue
        marker = _MARK_BY_FOLDER.get(folder)
        if marker is not None:
            item.add_marker(marker)
