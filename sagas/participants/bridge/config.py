"""The bridge's config file: which command types go to which HTTP endpoints.

```yaml
name: payment-bridge            # consumer group, changelog <name>.changelog, metrics label
topic_prefix: ""                # put before every topic below
defaults:                       # merged into every route
  timeout: 5                    # seconds per HTTP attempt
  retry: {attempts: 5, initial: 0.2, multiplier: 2, maximum: 5}
  headers: {Authorization: "Bearer ${PAYMENTS_TOKEN}"}
routes:
  - command: payment.authorize  # the command type
    topic: payment.commands     # where it arrives
    url: http://payments:8080/authorize
    reply_topic: payment.replies
    success: payment.authorized # 2xx
    failure: payment.declined   # 4xx
```

``${NAME}`` and ``${NAME:-default}`` in ``url`` and header values are read
from the environment when the file is loaded (a missing variable is an error
naming it), so secrets stay out of the file.

``on_exhausted`` says what happens when every attempt failed with a retriable
error: ``silent`` (default) publishes nothing, so the saga's step deadline
decides (the call may have taken effect: the bridge does not claim a "no" it
did not hear); ``failure`` publishes the failure type with the last error as
``reason``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sagas.retry import RetryPolicy

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

DEFAULT_RETRY = RetryPolicy(attempts=5, initial=0.2, multiplier=2.0, maximum=5.0)


class BridgeProcessSettings(BaseSettings):
    """The bridge's own environment: the metrics port, read from the variable the
    reference services use (``SERVICES_METRICS_PORT``), so a bridge deploys like one."""

    model_config = SettingsConfigDict(env_prefix="SERVICES_", extra="ignore", frozen=True)

    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve /metrics and /health on this port."
    )


class BridgeConfigError(ValueError):
    """The bridge config file cannot be used (names the file and what is wrong)."""


class RouteDefaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: float = Field(default=10.0, gt=0, description="Seconds per HTTP attempt.")
    retry: RetryPolicy = Field(
        default=DEFAULT_RETRY, description="Attempts and backoff for 5xx, timeouts, errors."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request.")
    on_exhausted: Literal["silent", "failure"] = "silent"


class Route(RouteDefaults):
    """One command type -> one HTTP endpoint, and the reply types for its outcomes."""

    command: str = Field(min_length=1, description="The command type this route serves.")
    topic: str = Field(min_length=1, description="Topic the command arrives on.")
    url: str = Field(pattern=r"^https?://", description="POSTed the command data.")
    reply_topic: str = Field(min_length=1)
    success: str = Field(min_length=1, description="Reply type for a 2xx answer.")
    failure: str = Field(min_length=1, description="Reply type for a 4xx answer.")


class BridgeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="bridge", pattern=r"^[A-Za-z0-9._-]+$")
    topic_prefix: str = ""
    routes: tuple[Route, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_route_per_type(self) -> BridgeConfig:
        seen: set[str] = set()
        for route in self.routes:
            if route.command in seen:
                raise ValueError(f"command type {route.command!r} has more than one route")
            seen.add(route.command)
        return self

    @classmethod
    def from_dict(cls, raw: dict[str, Any], env: dict[str, str] | None = None) -> BridgeConfig:
        """Routes with ``defaults`` merged in and ``${VAR}`` expanded; topics prefixed."""
        raw = dict(raw)
        defaults = raw.pop("defaults", None) or {}
        if not isinstance(defaults, dict):
            raise ValueError("'defaults' must be a mapping")
        prefix = raw.get("topic_prefix", "") or ""
        variables = dict(os.environ if env is None else env)
        routes = []
        for n, route in enumerate(raw.get("routes") or []):
            if not isinstance(route, dict):
                raise ValueError(f"routes[{n}] must be a mapping")
            merged = {**defaults, **route}
            merged["headers"] = {**defaults.get("headers", {}), **route.get("headers", {})}
            merged["url"] = expand(str(merged.get("url", "")), variables, f"routes[{n}].url")
            merged["headers"] = {
                k: expand(str(v), variables, f"routes[{n}].headers.{k}")
                for k, v in merged["headers"].items()
            }
            for field in ("topic", "reply_topic"):
                if merged.get(field):
                    merged[field] = prefix + merged[field]
            routes.append(merged)
        raw["routes"] = routes
        return cls.model_validate(raw)

    @classmethod
    def load(cls, path: str | Path, env: dict[str, str] | None = None) -> BridgeConfig:
        file = Path(path)
        try:
            raw = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise BridgeConfigError(f"cannot read bridge config {file}: {exc}") from None
        if not isinstance(raw, dict):
            raise BridgeConfigError(f"{file}: expected a mapping, got {type(raw).__name__}")
        try:
            return cls.from_dict(raw, env)
        except (ValidationError, ValueError) as exc:
            raise BridgeConfigError(f"invalid bridge config {file}:\n{exc}") from None

    def route_for(self, command_type: str) -> Route | None:
        return next((r for r in self.routes if r.command == command_type), None)

    @property
    def input_topics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.topic for r in self.routes))

    @property
    def output_topics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.reply_topic for r in self.routes))


def expand(text: str, env: dict[str, str], where: str) -> str:
    """``${NAME}`` / ``${NAME:-default}`` replaced from ``env``; a missing one is an error."""

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ValueError(f"{where}: environment variable {name} is not set")

    return _VARIABLE.sub(value, text)
