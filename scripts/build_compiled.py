"""Build the optional compiled coordinator: a copy of the checkout with its hot modules
compiled by mypyc (`sagas.compiled_build`).

    .venv/bin/python scripts/build_compiled.py [DEST]     # default: .compiled
    PYTHONPATH=.compiled .venv/bin/sagas coordinator ...   # then run from it

The copy holds every file git tracks or would track (or, outside git, the ``events`` and ``sagas``
packages), so tests run in it too (``make test-compiled``). The checkout is left pure
Python: an extension module next to its ``.py`` would shadow every later edit of it.
DEST is replaced on each build, but only if it is a build of this script's (it holds
``MARKER``). Needs a C compiler and Python's headers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = ".sagastream-compiled-build"


def tracked_files(root: Path) -> list[Path]:
    """What to copy: the files git tracks or would (new ones not ignored), or the two
    packages outside a git checkout. Missing from the copy, a module would still import,
    from the checkout (the editable install's finder), pure and maybe of another version."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
        return [Path(os.fsdecode(p)) for p in out.split(b"\0") if p]
    except (OSError, subprocess.CalledProcessError):
        return [
            p.relative_to(root)
            for package in ("events", "sagas")
            for p in (root / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]


def fresh_copy(root: Path, dest: Path) -> None:
    if dest.exists():
        if not (dest / MARKER).exists():
            sys.exit(f"error: {dest} exists and is not a compiled build (no {MARKER}); remove it")
        shutil.rmtree(dest)
    print(f"build_compiled: copying the checkout to {dest}", flush=True)
    dest.mkdir(parents=True)
    # first, so that a copy cut short (Ctrl-C, a full disk) is still replaced next time
    (dest / MARKER).write_text("built by scripts/build_compiled.py\n")
    for rel in tracked_files(root):
        source = root / rel
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    from bench.run import git_revision  # what the bench reports of a run from the copy

    (dest / ".git-revision").write_text(git_revision(root) + "\n")


def compile_in(dest: Path, modules: tuple[str, ...]) -> None:
    from mypyc.build import mypycify  # the dev extra's mypy; imported late: slow
    from setuptools import Distribution

    paths = [m.replace(".", "/") + ".py" for m in modules]
    os.chdir(dest)
    dist = Distribution({"name": "sagastream-compiled", "ext_modules": mypycify(paths)})
    build = dist.get_command_obj("build_ext")
    build.inplace = True  # type: ignore[attr-defined]
    build.build_temp = str(dest / "build" / "temp")  # type: ignore[attr-defined]
    dist.run_command("build_ext")


def check(dest: Path, modules: tuple[str, ...]) -> None:
    """Import the copy in a new process: the engine from the copy, every module compiled."""
    env = {**os.environ, "PYTHONPATH": str(dest)}
    probe = "import sagas.compiled_build as c; print(c.__file__); print(' '.join(c.loaded()))"
    got = subprocess.run(  # -P: the current directory (dest) is not put on the path
        [sys.executable, "-P", "-c", probe], cwd=dest, env=env, capture_output=True, text=True
    )
    lines = got.stdout.splitlines()
    if got.returncode != 0 or len(lines) != 2:
        why = got.stderr.strip().splitlines()[-1] if got.stderr.strip() else "no output"
        sys.exit(f"error: the build in {dest} does not import: {why}")
    if not lines[0].startswith(str(dest)):
        sys.exit(f"error: with PYTHONPATH={dest}, sagas still imports from {lines[0]}")
    if tuple(lines[1].split()) != modules:
        missing = sorted(set(modules) - set(lines[1].split()))
        sys.exit(f"error: the build in {dest} does not import compiled: missing {missing}")


def main(argv: list[str]) -> None:
    dest = Path(argv[0] if argv else ROOT / ".compiled").resolve()
    sys.path.insert(0, str(ROOT))
    from sagas.compiled_build import COMPILED_MODULES

    began = time.monotonic()
    fresh_copy(ROOT, dest)
    print(
        f"build_compiled: compiling {len(COMPILED_MODULES)} modules with mypyc (~20 s on 2 cores)",
        flush=True,
    )
    compile_in(dest, COMPILED_MODULES)
    check(dest, COMPILED_MODULES)
    print(
        f"build_compiled: done in {time.monotonic() - began:.0f} s; run from it with "
        f"PYTHONPATH={dest}",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
