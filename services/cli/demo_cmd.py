"""`sagas demo`: the whole system on this machine, with orders, failures and a verdict."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    mode: str = typer.Option(
        "orchestrated", help="orchestrated (the coordinator sends commands) or choreography."
    ),
    orders: int = typer.Option(500, min=1, help="Orders to place."),
    rate: float = typer.Option(25.0, min=0.1, help="Orders placed per second (open loop)."),
    seed: int = typer.Option(7, help="Seed of the orders and of which ones fail."),
    run_dir: Path | None = typer.Option(
        None, help="Folder for the processes' logs (default: .demo/<time>-<mode>)."
    ),
    settle_timeout: float = typer.Option(
        90.0, help="Seconds to wait, after the last order, for every saga to end."
    ),
    saga: str = typer.Option(
        "all",
        "--saga",
        help="order, transfer or claim: run only that saga (default: all three side by side).",
    ),
    keep_running: bool = typer.Option(
        False,
        "--keep-running",
        help="After the report, keep the system up (and the saga explorer it prints) until Ctrl-C.",
    ),
) -> None:
    """Start a broker (embedded unless KAFKA_BOOTSTRAP_SERVERS is set), the coordinator and
    the four order services as processes; place orders with injected failures; print
    outcomes, compensations, durations and throughput; check that stock and money balance.
    It prints the saga explorer's URL (``/ui/`` on the coordinator's API).

    Exit code 0 only if every invariant holds.
    """
    from services.demo.main import DemoOptions, main

    if mode not in ("orchestrated", "choreography"):
        typer.echo(f"error: --mode must be orchestrated or choreography, not {mode!r}", err=True)
        raise typer.Exit(2)
    from services.demo.main import SAGAS

    if saga != "all" and saga not in SAGAS:
        typer.echo(
            f"error: --saga must be all or one of {', '.join(SAGAS)}, not {saga!r}", err=True
        )
        raise typer.Exit(2)
    options = DemoOptions(
        mode=mode,  # type: ignore[arg-type]
        orders=orders,
        rate=rate,
        seed=seed,
        run_dir=run_dir,
        settle_timeout=settle_timeout,
        sagas=tuple(SAGAS) if saga == "all" else (saga,),
        keep_running=keep_running,
    )
    raise typer.Exit(main(options))
