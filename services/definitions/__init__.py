"""The saga definitions shipped with the reference services, as files and as models.

    sagas worker -d services/definitions/order_orchestrated.yaml

`write` renders one with every business topic prefixed, for a deployment (or
a test) that shares a cluster: ``write("order_orchestrated", "t1.", tmp)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sagas.definition import SagaDefinition
from sagas.loader import load_definitions

HERE = Path(__file__).parent
NAMES = ("order_orchestrated", "order_choreographed", "bank_transfer", "insurance_claim")
_TOPIC_FIELDS = ("observes", "reply_topic")


def path(name: str) -> Path:
    """The YAML file of a shipped definition."""
    if name not in NAMES:
        raise ValueError(f"no shipped definition {name!r}; choose one of: {', '.join(NAMES)}")
    return HERE / f"{name}.yaml"


def render(name: str, prefix: str = "") -> dict[str, Any]:
    """The definition as a dict, with ``prefix`` put before every business topic."""
    spec: dict[str, Any] = yaml.safe_load(path(name).read_text())
    if not prefix:
        return spec
    if spec.get("trigger"):
        spec["trigger"]["topic"] = prefix + spec["trigger"]["topic"]
    for step in spec["steps"]:
        for field in _TOPIC_FIELDS:
            if step.get(field):
                step[field] = prefix + step[field]
        for part in ("command", "compensation", "awaits"):
            if step.get(part):
                step[part]["topic"] = prefix + step[part]["topic"]
                if step[part].get("reply_topic"):
                    step[part]["reply_topic"] = prefix + step[part]["reply_topic"]
    return spec


def write(name: str, prefix: str, directory: Path) -> Path:
    """Write the prefixed definition to ``directory``; returns the file for `--definitions`."""
    out = directory / f"{name}.yaml"
    out.write_text(yaml.safe_dump(render(name, prefix), sort_keys=False))
    return out


def load(name: str, prefix: str = "") -> SagaDefinition:
    """The shipped definition as a validated model."""
    if not prefix:
        return load_definitions(path(name))[0]
    from sagas.builder import definition_from_dict

    return definition_from_dict(render(name, prefix))
