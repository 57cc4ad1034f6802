"""The benchmark's smoke run still works end to end and produces sane numbers.

Not a performance test: the machine running the suite may be busy. It checks
that every phase ran and that its figures make sense (positive rates, every
saga terminal, memory measured, recovery completed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson


def test_bench_smoke_run_produces_sane_numbers(tmp_path: Path) -> None:
    env = dict(os.environ)
    # An admission bound below the sagas parked here (1,000): the park phase measures them
    # in flight, so it must lift the bound (at the bound their starts would wait in
    # saga.starts behind a participant that answers nothing, and no figure would come).
    # Above the 450 sagas a sweep point starts in all (150/s for 3 s), so the sweep itself
    # never reaches it.
    env["SAGAS_MAX_IN_FLIGHT"] = "700"
    # the benchmark starts brokers of its own unless a cluster is configured
    results_dir = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--park", "1000",
         "--results-dir", str(results_dir),
         "--run-dir", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = orjson.loads((results_dir / "latest-smoke.json").read_bytes())

    (section,) = results["brokers"].values()  # the embedded broker, or the suite's cluster
    ceiling = section["ceiling"]
    assert ceiling["pipelined_per_s"] > 0 and ceiling["single_p50_ms"] > 0

    bench = section["systems"]["bench"]
    assert bench["sweep"], "no sweep point ran"
    for point in bench["sweep"]:
        assert point["achieved_per_s"] > 0
        assert point["missing"] == 0, point
        assert point["terminal"] == point["sagas"]
        # every tenth saga is refused at step 3 and compensated
        assert point["outcomes"].get("compensated", 0) > 0
        assert point["records_per_saga"] > 10
        assert 0 < point["latency"]["p50_ms"] <= point["latency"]["p99_ms"]
        assert point["cpu_percent"].get("coordinator", 0) > 0
        assert point["cpu_us_per_saga"]["coordinator"] > 0

    memory = bench["memory"]
    assert "error" not in memory, memory
    assert memory["rss_after_mib"] > 0 and "bytes_per_saga" in memory

    recovery = bench["recovery"]
    assert recovery["missing"] == 0, recovery
    assert recovery["processing_again_s"] > 0
    assert recovery["all_terminal_s"] >= recovery["processing_again_s"]
