"""Errors raised by the saga engine.

    SagaError
    ├── DefinitionError          a saga definition is wrong (user mistake, at load)
    ├── UnknownSagaError         no saga with that id (or no definition with that name)
    ├── InvalidSagaIdError       a saga id outside the grammar of `events.saga_ids`
    ├── OperatorCommandError     retry/skip/resolve/abort does not apply to the saga's state
    └── CoordinatorConfigError   the coordinator cannot start as configured (topics, partitions)

A participant saying no is not an error: it is an event (``payment.declined``)
that the state machine handles. These exceptions are for people: each message
names the saga, step, topic or field involved and what to do about it.
"""

from __future__ import annotations


class SagaError(Exception):
    """Root of the engine's errors."""

    retriable: bool = False


class DefinitionError(SagaError, ValueError):
    """A saga definition is invalid; the message names the saga, step and field."""


class UnknownSagaError(SagaError, LookupError):
    """No saga (or saga definition) matches what was asked for."""


class InvalidSagaIdError(SagaError, ValueError):
    """A saga id given to start a saga breaks the grammar of `events.saga_ids`."""


class OperatorCommandError(SagaError):
    """An operator command does not apply to the saga in its current state."""


class CoordinatorConfigError(SagaError):
    """The coordinator cannot start with this configuration."""
