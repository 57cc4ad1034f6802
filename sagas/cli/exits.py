"""How the `sagas` command ends on a mistake: one line on stderr and exit code 2.

Every command reads its settings from the environment (``KAFKA_*``, ``SAGAS_*``,
``SERVICES_*``) and its flags from the command line. A bad value of either
must not end in a traceback or a usage box: the line names the variable or
flag, the value given and what is allowed, e.g.

    error: SAGAS_BATCH_MAX='abc': expected an integer (Input should be a valid integer, ...)

Secrets (``*PASSWORD*``, ``*TOKEN*``) are never echoed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from typer._click import exceptions as click_exceptions

#: exit status of a usage or configuration mistake (as click uses for usage errors)
EXIT_USAGE = 2


def run(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the CLI; the exit status, with configuration mistakes shown as one line."""
    try:
        result = app(args=args, standalone_mode=False, prog_name="sagas")
    except click_exceptions.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx else ""
        return _error(f"{where}{exc.format_message()}")
    except click_exceptions.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        return 130
    except ValidationError as exc:
        return _error(settings_problem(exc))
    return result if isinstance(result, int) else 0


def _error(message: str) -> int:
    line = " ".join(message.split())
    typer.echo(f"error: {line}", err=True)
    return EXIT_USAGE


def settings_problem(exc: ValidationError) -> str:
    """One line for every problem of a settings model: variable, value, what is allowed."""
    model = _model_named(exc.title)
    parts = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = tuple(str(part) for part in error["loc"])
        if not loc:
            parts.append(message)
            continue
        name = _variable(model, loc)
        parts.append(f"{name}={_shown(name, error.get('input'))}: {message}")
    return "; ".join(parts)


#: settings models of the packages above the engine (the services' `ServicesConfig`),
#: added by their commands so a bad value names its variable
REGISTERED_SETTINGS: list[type[BaseModel]] = []


def register_settings(model: type[BaseModel]) -> None:
    """Let `settings_problem` name the environment variables of ``model``."""
    if model not in REGISTERED_SETTINGS:
        REGISTERED_SETTINGS.append(model)


def _model_named(title: str) -> type[BaseModel] | None:
    from sagas.kafka.kafka_settings import KafkaSettings
    from sagas.participants.bridge.config import BridgeProcessSettings
    from sagas.settings import CoordinatorSettings

    models: list[type[BaseModel]] = [
        KafkaSettings,
        CoordinatorSettings,
        BridgeProcessSettings,
        *REGISTERED_SETTINGS,
    ]
    return next((m for m in models if m.__name__ == title), None)


def _variable(model: type[BaseModel] | None, loc: tuple[str, ...]) -> str:
    """The environment variable behind a field path (``batch_max`` -> ``SAGAS_BATCH_MAX``)."""
    if model is None or loc[0].isupper():
        return loc[0]  # an alias already (KAFKA_*), or a model we do not know
    config: Any = model.model_config
    prefix = config.get("env_prefix", "") or ""
    delimiter = config.get("env_nested_delimiter") or "__"
    return f"{prefix}{delimiter.join(loc)}".upper()


def _shown(name: str, given: Any) -> str:
    if ("PASSWORD" in name or "TOKEN" in name) and not name.endswith("_FILE"):
        return "<hidden>"
    raw = _environment(name)
    value = raw if raw is not None else given
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _environment(name: str) -> str | None:
    wanted = name.upper()
    return next((v for k, v in os.environ.items() if k.upper() == wanted), None)


def main(app: typer.Typer) -> None:
    sys.exit(run(app))
