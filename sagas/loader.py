"""Load saga definitions from YAML or JSON files (`sagas worker --definitions FILE|DIR`).

A file holds one saga (a mapping with ``name`` and ``steps``) or several under
``sagas:``. A folder stands for every ``*.yaml``, ``*.yml`` and ``*.json`` file
directly in it (not in subfolders; hidden files skipped), read in name order.
The result is the same model the Python builder produces.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml

from sagas.builder import definition_from_dict
from sagas.definition import SagaDefinition
from sagas.errors import DefinitionError

#: files of a definitions folder that are read
DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")


def load_definitions(
    path: str | Path, *, known_topics: Iterable[str] | None = None
) -> list[SagaDefinition]:
    """Read every saga definition in ``path`` (a file, or a folder of them); raise
    `DefinitionError` naming the file and what is wrong."""
    where = Path(path)
    topics = None if known_topics is None else frozenset(known_topics)
    if not where.is_dir():
        return _load_file(where, topics)
    files = sorted(
        f
        for f in where.iterdir()
        if f.suffix in DEFINITION_SUFFIXES and not f.name.startswith(".") and f.is_file()
    )
    if not files:
        raise DefinitionError(f"{where} is a folder with no *.yaml, *.yml or *.json file in it")
    found: dict[tuple[str, int], Path] = {}
    definitions = []
    for file in files:
        for definition in _load_file(file, topics):
            first = found.setdefault(definition.key, file)
            if first != file:
                name, version = definition.key
                raise DefinitionError(
                    f"saga {name!r} version {version} is defined in both {first} and {file}"
                )
            definitions.append(definition)
    return definitions


def _load_file(file: Path, known_topics: frozenset[str] | None) -> list[SagaDefinition]:
    try:
        text = file.read_text()
    except OSError as exc:
        raise DefinitionError(f"cannot read saga definitions from {file}: {exc.strerror}") from None
    try:
        raw: Any = orjson.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError(
            f"{file} is not valid {file.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from None
    specs = raw.get("sagas") if isinstance(raw, dict) and "sagas" in raw else [raw]
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise DefinitionError(
            f"{file}: expected a saga mapping (name, steps, ...) or 'sagas: [...]', "
            f"got {type(raw).__name__}"
        )
    definitions = []
    for spec in specs:
        try:
            definition = definition_from_dict(spec)
        except DefinitionError as exc:
            raise DefinitionError(f"{file}: {exc}") from None
        if known_topics is not None:
            definition.check_topics(known_topics)
        definitions.append(definition)
    keys = [d.key for d in definitions]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise DefinitionError(f"{file}: saga defined twice: {sorted(duplicates)}")
    return definitions


class DefinitionRegistry:
    """Every loaded definition by (name, version); the newest version starts new sagas."""

    def __init__(self, definitions: Iterable[SagaDefinition] = ()) -> None:
        self._by_key: dict[tuple[str, int], SagaDefinition] = {}
        for definition in definitions:
            self.add(definition)

    def add(self, definition: SagaDefinition) -> None:
        if definition.key in self._by_key and self._by_key[definition.key] != definition:
            raise DefinitionError(
                f"saga {definition.name!r} version {definition.version} is loaded twice with "
                f"different content; bump the version for a changed definition"
            )
        trigger = definition.trigger
        if trigger is not None:
            for other in self._by_key.values():
                if other.name != definition.name and other.trigger == trigger:
                    raise DefinitionError(
                        f"sagas {other.name!r} and {definition.name!r} are both triggered by "
                        f"{trigger.type!r} on {trigger.topic!r}: every such event would start "
                        f"only one of them. Load one of them per coordinator group, or give "
                        f"one another trigger"
                    )
        self._by_key[definition.key] = definition

    def get(self, name: str, version: int | None = None) -> SagaDefinition:
        if version is not None and (name, version) in self._by_key:
            return self._by_key[(name, version)]
        versions = sorted(v for n, v in self._by_key if n == name)
        if not versions or version is not None:
            from sagas.errors import UnknownSagaError

            known = ", ".join(f"{n} v{v}" for n, v in sorted(self._by_key)) or "none"
            wanted = f"{name!r}" + (f" version {version}" if version is not None else "")
            raise UnknownSagaError(f"no saga definition {wanted}; loaded: {known}")
        return self._by_key[(name, versions[-1])]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_key.values())

    def latest(self) -> list[SagaDefinition]:
        names = {n for n, _ in self._by_key}
        return [self.get(n) for n in sorted(names)]

    def topics_read(self) -> set[str]:
        return set().union(*(d.topics_read() for d in self._by_key.values()))

    def triggers(self) -> dict[tuple[str, str], SagaDefinition]:
        """(topic, event type) -> the newest definition it starts."""
        return {
            (d.trigger.topic, d.trigger.type): d for d in self.latest() if d.trigger is not None
        }
