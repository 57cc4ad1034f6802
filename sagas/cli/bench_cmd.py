"""`sagas bench`: the performance benchmark (`bench/`): the same as ``python -m bench``."""

from __future__ import annotations

from bench.cli import bench
from sagas.cli import app

app.command(name="bench")(bench)
