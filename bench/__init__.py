"""The performance benchmark (issue 8): ``python -m bench`` or ``sagas bench``.

Measures the broker's own round-trip ceiling, then the whole system (broker,
coordinator, participants, a load generator, each its own process) under an
open-loop load sweep, its memory per in-flight saga and its recovery from a
SIGKILL; writes JSON to ``bench/results/`` and a latency-vs-throughput plot.
"""
