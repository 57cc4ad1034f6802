"""`sagas schema ...`: publish the event contract as JSON Schema for services in any language."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from sagas.cli import app

if TYPE_CHECKING:
    from events.catalog import EventCatalog

DEFAULT_CATALOG = "events.catalog:default_catalog"
#: Modules that register the reference services' event types into the default catalog.
SERVICE_CATALOG_MODULES = ("services", "services.catalog")

schema_app = typer.Typer(
    help="The event contract (wire contract v1) as JSON Schema.", no_args_is_help=True
)
app.add_typer(schema_app, name="schema")


@schema_app.command("export")
def export(
    directory: Path = typer.Argument(
        ..., metavar="DIR", help="Where to write the schemas (created if missing)."
    ),
    catalog: str = typer.Option(
        DEFAULT_CATALOG,
        "--catalog",
        metavar="MODULE:ATTR",
        help="The EventCatalog to export. The default also loads the lifecycle events "
        "(saga.*) and the services' event types.",
    ),
) -> None:
    """Write one <type>.schema.json (JSON Schema 2020-12) per event type, plus index.json."""
    # Like `python -m`, let --catalog name a module in the current directory.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    selected = load_catalog(catalog)
    written = write_schemas(selected, directory)
    schemas = len(written) - 1
    typer.echo(
        f"wrote {_plural(len(written), 'file')} ({_plural(schemas, 'event schema')} "
        f"+ index.json) to {directory}"
    )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def load_catalog(spec: str) -> EventCatalog:
    """The catalog named by ``module:attr``; exits with a clear message when it cannot."""
    from events.catalog import EventCatalog

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        _fail(f"--catalog must look like 'module:attr' (e.g. {DEFAULT_CATALOG}), got {spec!r}")
    if spec == DEFAULT_CATALOG:
        importlib.import_module("events.lifecycle")  # the coordinator's saga.* events
        _import_service_catalogs()
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        _fail(f"cannot import module {module_name!r} for --catalog {spec!r}: {exc!r}")
    obj: Any = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        _fail(f"module {module_name!r} has no attribute {attr!r} (--catalog {spec!r})")
    if not isinstance(obj, EventCatalog):
        _fail(f"--catalog {spec!r} is a {type(obj).__name__}, not an events.catalog.EventCatalog")
    return obj


def _import_service_catalogs() -> None:
    for name in SERVICE_CATALOG_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == "services":
                return
            # Only "that module does not exist" is fine; a broken import is an error.
            if exc.name != name:
                _fail(f"importing {name!r} to load the services' event types failed: {exc!r}")
        except Exception as exc:
            _fail(f"importing {name!r} to load the services' event types failed: {exc!r}")


def schema_filename(event_type: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", event_type) + ".schema.json"


def write_schemas(catalog: EventCatalog, directory: Path) -> list[Path]:
    """Write the schemas and ``index.json``; returns the paths written."""
    schemas = catalog.json_schemas()
    names: dict[str, str] = {}
    for event_type in schemas:
        name = schema_filename(event_type)
        clash = [t for t, n in names.items() if n == name]
        if clash:
            _fail(f"event types {clash[0]!r} and {event_type!r} would both be written to {name}")
        names[event_type] = name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for event_type, schema in schemas.items():
            written.append(_write_json(directory / names[event_type], schema))
        index = {
            "contract": "sagastream wire contract v1",
            "specversion": "1.0",
            "jsonschema": "https://json-schema.org/draft/2020-12/schema",
            "strict": catalog.strict,
            "types": {
                t: {
                    "schema": names[t],
                    "payload": f"{m.__module__}.{m.__qualname__}",
                }
                for t in schemas
                for m in [catalog.model_for(t)]
            },
        }
        written.append(_write_json(directory / "index.json", index))
    except OSError as exc:
        _fail(f"cannot write schemas to {directory}: {exc}")
    return written


def _write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code=2)
