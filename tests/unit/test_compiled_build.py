"""The optional compiled build (`sagas.compiled_build`, ``make test-compiled``)."""

from __future__ import annotations

import os
from pathlib import Path

import sagas
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


def test_every_module_listed_is_a_python_file_of_the_checkout() -> None:
    """The build compiles ``name.replace('.', '/') + '.py'``: a module renamed or moved
    without the list must fail here, not in the build."""
    root = Path(sagas.__file__).resolve().parent.parent
    missing = [n for n in COMPILED_MODULES if not (root / (n.replace(".", "/") + ".py")).is_file()]
    assert not missing
    assert len(set(COMPILED_MODULES)) == len(COMPILED_MODULES)
