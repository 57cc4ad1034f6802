"""The `sagas` command line: one module per command group, registered here."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import typer

app = typer.Typer(
    name="sagas",
    help="sagastream: event-driven sagas on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


#: entry-point group of commands that packages above the engine add to `sagas`
PLUGIN_GROUP = "sagas.commands"
#: The command modules: each adds its commands to `app` (and imports it, so they are
#: named here rather than imported, which would make an import circle).
COMMANDS = (
    "acl_cmd",
    "bridge_cmd",
    "broker_cmd",
    "ops_cmd",
    "schema_cmd",
    "start_cmd",
    "topics_cmd",
    "worker_cmd",
)


def _register() -> None:
    # Imported here so that `sagas --help` lists them all. Keep heavy imports inside the
    # commands.
    for name in COMMANDS:
        importlib.import_module(f"sagas.cli.{name}")
    # Commands of the packages above the engine (`bench`, the services' `demo`,
    # `service` and `load`), declared in their
    # distribution's entry points: the engine does not import them.
    for entry in entry_points(group=PLUGIN_GROUP):
        if entry.name not in _plugins:
            _plugins.add(entry.name)
            app.command(name=entry.name)(entry.load())


_plugins: set[str] = set()


def main() -> None:
    """``sagas``: a mistake in a setting or a flag ends in one line and exit code 2."""
    from sagas.cli.exits import main as run_main

    _register()
    run_main(app)
