"""Run the whole system on one machine as separate OS processes (demo, e2e tests, benchmarks).

    from services.launch import Launcher, SystemConfig

    config = SystemConfig(mode="orchestrated", services_config={"shipping": {"failure_rate": 0.1}})
    async with Launcher(config, run_dir="runs/1") as system:
        kafka = system.kafka                   # bootstrap servers + this run's topic prefix
        await system.get_json("inventory", "/invariants")
        system.kill("payment")                 # SIGKILL: a crash
        await system.start_process("payment")  # same port and log file; waits until ready
        await system.restart("coordinator")    # both in one call (crash=False: SIGTERM first)
        system.metrics_urls()                  # {"coordinator": "http://127.0.0.1:...", ...}

Leaving the ``async with`` block (normally, by an exception, or by Ctrl-C
cancelling the task) stops every child by PID: SIGTERM, then SIGKILL after
``stop_timeout``; the embedded broker last. Logs stay in ``run_dir``.
"""

from services.launch.child import ChildProcess, LaunchError
from services.launch.system import (
    DEFINITION_FOR_MODE,
    EMBEDDED_GROUP_TIMING,
    SERVICES,
    Launcher,
    Mode,
    Restarted,
    SystemConfig,
)

__all__ = [
    "DEFINITION_FOR_MODE",
    "EMBEDDED_GROUP_TIMING",
    "SERVICES",
    "ChildProcess",
    "LaunchError",
    "Launcher",
    "Mode",
    "Restarted",
    "SystemConfig",
]
