"""No import circles in the project's packages: the layers of the README's "Architecture"
only import downward.

Read with the standard library's `ast` (no import graph library: the rule is small and
this reads every import statement, also those inside functions and under
``TYPE_CHECKING``, which a runtime graph would miss). An import names the most specific
module it loads: ``from sagas.api import render`` is an edge to ``sagas.api.render``,
``from sagas.api import HttpApi`` one to ``sagas.api`` (its ``__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("events", "sagas", "services", "bench")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in known else base)
    return {t for t in targets if t in known and t != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_back_into_a_module_that_imports_it() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    found = circles(graph)
    detail = "\n".join(
        " <-> ".join(c) + "\n    " + "; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c)
        for c in found
    )
    assert not found, f"import circles (break them with a Protocol or a lower module):\n{detail}"


def test_the_check_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: The layers of the README's "Architecture", bottom (0) to top, by module prefix; the
#: longest matching prefix decides. A module imports only its own layer or those below.
LAYERS = {
    "events": 0,  # the wire contract
    "sagas.kafka": 1,  # the Kafka runtime: settings, producers, commits, the brokers we start
    "sagas.process": 1,  # process tuning: gc, parent death, heap trim
    "sagas.participants": 1,  # the participant runtime and its store
    "sagas": 2,  # the engine: definitions, decide, the batch step, the coordinator shell
    "sagas.participants.bridge": 3,  # apps of the engine: the HTTP bridge, API, CLI
    "sagas.api": 3,
    "sagas.cli": 3,
    "sagas.__main__": 3,  # `python -m sagas`: the CLI
    "services": 4,  # the reference services, their demo and launcher
    "bench": 5,  # the benchmark
}


def layer_of(module: str) -> tuple[str, int]:
    prefix = max(
        (p for p in LAYERS if module == p or module.startswith(p + ".")),
        key=len,
    )
    return prefix, LAYERS[prefix]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        here, level = layer_of(module)
        for target in sorted(targets):
            there, above = layer_of(target)
            if above > level:
                found.append(f"{module} ({here}) imports {target} ({there})")
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    found = upward_imports(graph)
    assert not found, "imports up the layers:\n" + "\n".join(found)


def test_the_layer_check_finds_an_upward_import() -> None:
    graph = {
        "events.codec": {"sagas.kafka.admin"},
        "sagas.machine": {"events.codec"},
        "sagas.cli.start_cmd": {"services.config"},
    }
    assert upward_imports(graph) == [
        "events.codec (events) imports sagas.kafka.admin (sagas.kafka)",
        "sagas.cli.start_cmd (sagas.cli) imports services.config (services)",
    ]


def test_the_engine_finds_services_and_the_benchmark_through_entry_points() -> None:
    """``sagas bench``, ``demo``, ``service`` and ``load`` come from entry points
    (pyproject.toml, ``sagas.commands``): the engine imports neither package."""
    known = modules()
    for name, path in known.items():
        if name.split(".")[0] in ("events", "sagas"):
            hits = {
                t for t in imports(name, path, known) if t.split(".")[0] in ("services", "bench")
            }
            assert not hits, f"{name} imports {sorted(hits)}"
