"""`sagas demo`: start the system, push orders through it, print what happened, check it.

Exit code 0 only if every invariant holds (`services.demo.checks`); 1 if one is
broken; 2 if the system could not be started; 130 after Ctrl-C, which stops
every child process (SIGTERM, then SIGKILL after a deadline) before exiting.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.demo.domains import DomainResult, DomainScenario, drive_domains, print_domains
from services.demo.drive import RunResult, drive
from services.demo.report import ProcessInfo, print_report
from services.demo.scenario import Scenario
from services.launch import Launcher, LaunchError, Mode, SystemConfig
from services.launch.system import DEFINITION_FOR_MODE, SERVICES

#: what `--saga` chooses from: the saga, its shipped definition and its services
SAGAS = {
    "order": ((), SERVICES),
    "transfer": (("bank_transfer",), ("bank",)),
    "claim": (("insurance_claim",), ("claims", "triage")),
}


@dataclass(frozen=True)
class DemoOptions:
    mode: Mode = "orchestrated"
    orders: int = 500
    rate: float = 25.0
    seed: int = 7
    run_dir: Path | None = None
    settle_timeout: float = 90.0
    #: which sagas run side by side (`SAGAS`)
    sagas: tuple[str, ...] = ("order", "transfer", "claim")

    #: after the report, keep the system up (explorer included) until Ctrl-C
    keep_running: bool = False

    def system_config(
        self, services_config: dict[str, object], coordinator_env: dict[str, str]
    ) -> SystemConfig:
        names: list[str] = []
        services: list[str] = []
        for saga in self.sagas:
            definitions, needs = SAGAS[saga]
            names += definitions or (DEFINITION_FOR_MODE[self.mode],)
            services += needs
        return SystemConfig(
            mode=self.mode,
            definitions=tuple(names),
            services=tuple(services),
            services_config=services_config,
            awaits_deadline=DomainScenario().deadline,
            coordinator_env=coordinator_env,
        )


def default_run_dir(mode: str) -> Path:
    return Path(".demo") / f"{datetime.now():%Y%m%d-%H%M%S}-{mode}"


async def run_demo(options: DemoOptions, console: Console) -> int:
    began = time.monotonic()
    scenario = Scenario(orders=options.orders, rate=options.rate, seed=options.seed)
    run_dir = options.run_dir or default_run_dir(options.mode)
    domains = DomainScenario(seed=options.seed)
    # A token of the run's own: the explorer's actions (abort, retry, ...) ask for it.
    token = secrets.token_urlsafe(12)
    config = options.system_config(
        {**scenario.services_config(), **domains.services_config()}, {"SAGAS_API_TOKEN": token}
    )
    launcher = Launcher(config, run_dir=run_dir)
    where = "embedded broker" if launcher.embedded else launcher.kafka.bootstrap_servers
    orders = "order" in options.sagas
    console.print(
        f"[bold]sagastream demo[/]: {', '.join(options.sagas)}"
        + (f"; {options.orders} orders at {options.rate:g}/s" if orders else "")
        + f", mode [bold]{options.mode}[/], seed {options.seed}, {where}; logs in {run_dir}/"
    )
    try:
        with console.status(
            f"starting the broker, topics, coordinator and {len(config.services)} services..."
        ):
            await launcher.start()
        console.print(f"system ready in {time.monotonic() - began:.1f} s")
        explorer = explorer_url(launcher)
        if explorer is not None:
            console.print(
                f"saga explorer: [bold]{explorer}[/] (API token for its actions: {token})"
            )
        side = asyncio.create_task(
            drive_domains(launcher, domains, options.sagas, options.settle_timeout)
        )
        result = await _run(launcher, scenario, options, console) if orders else None
        domain_results: list[DomainResult] = await side
        wall = time.monotonic() - began
        processes = await _processes(launcher)
        if launcher.broker is not None:
            console.print(
                f"broker: embedded Tansu at {launcher.bootstrap_servers} "
                f"(pid {launcher.broker.pid}, log {run_dir / 'broker.log'})"
            )
        if result is not None:
            print_report(console, result, wall=wall, processes=processes)
        print_domains(console, domain_results)
        if options.keep_running:
            _verdict(console, _all_ok(result, domain_results), began)
            await _keep_running(console, explorer, token)
    except LaunchError as exc:
        console.print(f"[bold red]error:[/] could not start the system: {exc}")
        return 2
    finally:
        with console.status("stopping every process..."):
            await launcher.aclose()
    ok = _all_ok(result, domain_results)
    _verdict(console, ok, began)
    return 0 if ok else 1


def _all_ok(result: RunResult | None, domain_results: list[DomainResult]) -> bool:
    return (result is None or result.ok) and all(r.ok for r in domain_results)


def _verdict(console: Console, ok: bool, began: float) -> None:
    verdict = "all invariants hold" if ok else "INVARIANTS BROKEN"
    style = "bold green" if ok else "bold red"
    console.print(f"[{style}]{verdict}[/] ({time.monotonic() - began:.1f} s in all)")


async def _run(
    launcher: Launcher, scenario: Scenario, options: DemoOptions, console: Console
) -> RunResult:
    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        placed = bar.add_task("orders placed", total=scenario.orders)
        ended = bar.add_task("sagas terminal", total=scenario.orders)

        def show(n_placed: int, n_ended: int, total: int) -> None:
            bar.update(placed, completed=n_placed)
            bar.update(ended, completed=n_ended)

        return await drive(launcher, scenario, progress=show, settle_timeout=options.settle_timeout)


def explorer_url(launcher: Launcher) -> str | None:
    """The saga explorer of the first coordinator replica (every replica serves one)."""
    for name in launcher.coordinator_names:
        url = launcher[name].url("/ui/")
        if url is not None:
            return url
    return None


async def _keep_running(console: Console, explorer: str | None, token: str) -> None:
    console.print(
        f"[bold]the system keeps running[/] (--keep-running): explorer at {explorer}, "
        f"token {token}; Ctrl-C stops every process"
    )
    await asyncio.Event().wait()


async def _processes(launcher: Launcher) -> list[ProcessInfo]:
    """Each process, and whether its /metrics answers (the status code) right now."""
    out = []
    for child in launcher:
        url = child.url("/metrics")
        status = None
        if url is not None:
            try:
                status, _ = await launcher.http.get(url)
            except (aiohttp.ClientError, TimeoutError, OSError):
                status = None
        out.append(ProcessInfo(child.name, child.pid, url, status))
    return out


def main(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo in a fresh event loop; Ctrl-C or SIGTERM stops it cleanly."""
    console = console or Console()

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await run_demo(options, console)
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("[yellow]interrupted: every process of the demo was stopped[/]")
        return 130
