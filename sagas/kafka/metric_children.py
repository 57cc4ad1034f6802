"""Labelled children of Prometheus metrics, each looked up once.

``metric.labels(*values)`` takes a lock and checks the values on every call, and
the coordinator and the participants call it several times per record. The
labels used here are bounded (saga, step, event type, result, topic), so this
cache is too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MetricChildren"]


class MetricChildren:
    """``children(metric, *labels)`` is ``metric.labels(*labels)``, made once."""

    __slots__ = ("_children",)

    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str | None, ...]], Any] = {}

    def __call__(self, metric: Any, *labels: str | None) -> Any:
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found
