"""The reference services' commands of `sagas` (`demo`, `service`, `load`).

Declared as entry points of the `sagas.commands` group in pyproject.toml, so the engine's
CLI finds them without importing the services: the services sit above the engine.
"""

from __future__ import annotations

from sagas.cli.exits import register_settings
from services.config import ServicesConfig

register_settings(ServicesConfig)
