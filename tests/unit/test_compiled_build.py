"""The optional compiled build (`sagas.compiled_build`, ``make test-compiled``)."""

from __future__ import annotations

import importlib
import os

from sagas.compiled_build import COMPILED_MODULES, describe, loaded


def test_this_process_runs_the_build_it_was_started_for() -> None:
    """``make test-compiled`` sets SAGAS_EXPECT_COMPILED=1 in its copy of the checkout:
    there every listed module must import compiled, or the "tested both ways" is pure
    twice. Anywhere else none may: the checkout stays pure Python, so that no stale
    extension module shadows an edited ``.py``."""
    if os.environ.get("SAGAS_EXPECT_COMPILED") == "1":
        assert loaded() == COMPILED_MODULES
        assert (
            describe() == f"compiled ({len(COMPILED_MODULES)} of {len(COMPILED_MODULES)} modules)"
        )
    else:
        assert loaded() == ()
        assert describe() == "pure Python"


def test_every_module_listed_exists_and_is_one_of_the_engines_pure_layers() -> None:
    """The build compiles the pure core only: nothing that imports aiokafka (the runtime)."""
    for name in COMPILED_MODULES:
        module = importlib.import_module(name)
        assert name.split(".")[0] in {"events", "sagas"}
        assert "aiokafka" not in vars(module), name
