"""Where the coordinator's CPU goes under load: py-spy, summarised.

`record` samples a running process with ``py-spy record --format raw`` (one
line per distinct stack: ``frame;frame;... count``, idle time left out) and
`summarise` turns that into the top functions by own time and by inclusive
time, and the share of each package. py-spy must be installed (it is in the
dev environment); without it the profile is skipped with a note.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

#: package share, first match wins (matched against the frame's file path)
GROUPS: tuple[tuple[str, str], ...] = (
    ("sagas/machine", "sagas.machine (decide)"),
    ("sagas/state_codec", "sagas.state_codec"),
    ("sagas/coordinator", "sagas.coordinator"),
    ("sagas/", "sagas (other)"),
    ("events/codec", "events.codec"),
    ("events/", "events (other)"),
    ("pydantic", "pydantic"),
    ("aiokafka", "aiokafka"),
    ("aiohttp", "aiohttp"),
    ("prometheus_client", "prometheus_client"),
    ("logging", "logging"),
    ("asyncio", "asyncio"),
    ("selectors.py", "epoll (selectors)"),
    ("<frozen", "python runtime"),
)


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path) -> Path | None:
    """Sample ``pid`` for ``seconds``; the raw profile file, or None if py-spy failed."""
    exe = py_spy()
    if exe is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--duration", str(int(seconds)),
        "--format", "raw", "--function", "--nonblocking", "--rate", "200",
        "--output", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        out.with_suffix(".error.txt").write_bytes(output)
        return None
    return out


def _parse(frame: str) -> tuple[str, str]:
    """(function label, file) of one raw frame ``func (path/file.py:line)``."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    path = m.group("file")
    short = "/".join(path.split("/")[-2:])
    return f"{m.group('func')} ({short}:{m.group('line') or '?'})", path


def _ours(path: str) -> bool:
    """A frame of the engine's own code (not its entry point): worth an inclusive figure."""
    return (
        ("sagas/" in path or "events/" in path) and "/cli/" not in path and ("__main__" not in path)
    )


def _group(path: str) -> str:
    for needle, name in GROUPS:
        if needle in path:
            return name
    return "other"


def summarise(raw: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by own samples, the engine's own functions by inclusive samples, and
    each package's share of own time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_parse(f) for f in stack.split(";")]
        leaf, leaf_path = frames[-1]
        own[leaf] += count
        groups[_group(leaf_path)] += count
        for label in {label for label, path in frames if _ours(path)}:
            inclusive[label] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "percent": round(100 * n / total, 1)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "own": share(own),
        "inclusive": share(inclusive),
        "packages": [
            {"package": name, "percent": round(100 * n / total, 1)}
            for name, n in groups.most_common()
        ]
        if total
        else [],
    }
