"""What a run found: a table on the terminal, a JSON file, a latency-vs-throughput plot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from bench.cpu_budget import budget_line, budgets
from bench.report_overload import overload_markdown, overload_table
from bench.targets import issues_of, message_ratio, targets

# -- terminal ---------------------------------------------------------------------------


def print_report(results: dict[str, Any], console: Console) -> None:
    m = results["machine"]
    console.print(
        f"\n[bold]machine[/]: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, "
        f"Python {m['python']} ({m.get('build', 'pure Python')}), git {m['git']}"
    )
    for name, section in results["brokers"].items():
        print_section(name, section, results["options"], console, m["nproc"])
    if len(results["brokers"]) > 1:
        console.print(side_by_side_table(results))


def print_section(
    name: str,
    section: dict[str, Any],
    options: dict[str, Any],
    console: Console,
    cores: int | None,
) -> None:
    broker = section["broker"]
    console.rule(f"[bold]{name}[/]: {broker['version']}")
    c = section["ceiling"]
    console.print(
        f"[bold]broker ceiling[/] (plain aiokafka, one process): "
        f"{c['pipelined_per_s']:,.0f} round trips/s pipelined; one at a time "
        f"p50 {c['single_p50_ms']} ms, p99 {c['single_p99_ms']} ms"
    )
    for system_name, system in section["systems"].items():
        console.print(sweep_table(f"{name} / {system_name}", system, c))
        if system.get("sustained"):
            console.print(
                sweep_table(
                    f"{name} / {system_name} sustained", {"sweep": [system["sustained"]]}, c
                )
            )
        for b in budgets(system, cores):
            console.print(budget_line(b) + ".")
        if system.get("overload"):
            console.print(overload_table(name, system["overload"]))
        if system.get("memory"):
            mem = system["memory"]
            console.print(
                f"[bold]memory[/]: {mem['sagas']:,} parked sagas: coordinator RSS "
                f"{mem['rss_before_mib']} -> {mem.get('rss_after_mib', '?')} MiB = "
                f"{count_text(mem.get('bytes_per_saga'))} bytes per in-flight saga"
                + (f" ({mem['error']})" if mem.get("error") else "")
            )
        if system.get("recovery"):
            r = system["recovery"]
            console.print(
                f"[bold]recovery[/]: SIGKILL with {count_text(r.get('in_flight_at_kill'))} in flight: "
                f"ready after {r.get('ready_s', '?')} s, processing again after "
                f"{r.get('processing_again_s', '?')} s, all {r['sagas']:,} terminal after "
                f"{r.get('all_terminal_s', '?')} s; missing {r.get('missing')}; "
                f"outcomes {r.get('outcomes')}; commands re-sent {r.get('participant_repeated_commands')}"
            )
        if system.get("sustained", {}).get("profile"):
            print_profile(system["sustained"]["profile"], console)
        if system.get("recovery", {}).get("profile"):
            console.print("[bold]after the restart[/], working through the backlog:")
            print_profile(system["recovery"]["profile"], console)
    table = Table(title=f"{name}: targets ({issues_of(section)})")
    for col in ("issue", "target", "measured", "met"):
        table.add_column(col)
    for t in targets(section, options):
        met = "[green]yes[/]" if t["met"] else "[red]no[/]"
        table.add_row(t["issue"], t["target"], t["measured"], met)
    console.print(table)


#: rows of the side-by-side comparison: (label, how to read it from a broker's section)
def _side_rows(section: dict[str, Any]) -> dict[str, str]:
    c = section["ceiling"]
    bench = section["systems"].get("bench", {})
    rows = {
        "ceiling (round trips/s, pipelined)": f"{c['pipelined_per_s']:,.0f}",
        "ceiling round trip p50 / p99 ms": f"{c['single_p50_ms']} / {c['single_p99_ms']}",
    }
    for p in bench.get("sweep", []):
        lat, per = p["latency"], p.get("cpu_us_per_saga") or {}
        rows[f"bench {p['offered_per_s']:,.0f}/s: achieved/s, p50 / p99 ms"] = (
            f"{p['achieved_per_s']:,.0f}; {lat['p50_ms']} / {lat['p99_ms']}"
        )
        rows[f"bench {p['offered_per_s']:,.0f}/s: CPU us/saga coordinator / broker"] = (
            f"{per.get('coordinator', 0):,.0f} / {per.get('broker', 0):,.0f}"
        )
    if bench.get("sustained"):
        sus = bench["sustained"]
        rows["sustained: achieved/s (offered), p99 ms, missing"] = (
            f"{sus['achieved_per_s']:,.0f} ({sus['offered_per_s']:,.0f}), "
            f"{sus['latency']['p99_ms']}, {sus['missing']}"
        )
    if bench.get("memory", {}).get("bytes_per_saga") is not None:
        rows["bytes per parked saga (coordinator RSS)"] = f"{bench['memory']['bytes_per_saga']:,}"
    if bench.get("recovery"):
        r = bench["recovery"]
        rows["SIGKILL: processing again / all terminal s, missing"] = (
            f"{r.get('processing_again_s', '?')} / {r.get('all_terminal_s', '?')}, "
            f"{r.get('missing')}"
        )
    for p in section["systems"].get("order", {}).get("sweep", []):
        rows[f"order {p['offered_per_s']:,.0f}/s: achieved/s, p99 ms"] = (
            f"{p['achieved_per_s']:,.0f}, {p['latency']['p99_ms']}"
        )
    return rows


def side_by_side(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(broker names, rows of [label, value per broker]) from one run."""
    names = list(results["brokers"])
    per = {n: _side_rows(results["brokers"][n]) for n in names}
    labels: list[str] = []
    for n in names:
        labels += [label for label in per[n] if label not in labels]
    return names, [[label, *(per[n].get(label, "-") for n in names)] for label in labels]


def side_by_side_table(results: dict[str, Any]) -> Table:
    names, rows = side_by_side(results)
    table = Table(title="the brokers side by side (one run)", title_justify="left")
    table.add_column("figure")
    for n in names:
        table.add_column(f"{n}: {results['brokers'][n]['broker']['version']}", justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def sweep_table(name: str, system: dict[str, Any], ceiling: dict[str, Any]) -> Table:
    table = Table(title=f"{name}: {system.get('workload', '')}", title_justify="left")
    cols = (
        "offered/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms", "missing", "rec/saga",
        "vs ceiling", "CPU% coord", "CPU% broker", "CPU% parts", "CPU% loadgen",
        "us/saga coord", "us/saga broker", "RSS coord MiB", "load",
    )  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right")
    for p in system.get("sweep", []):
        cpu = _cpu_by_role(p.get("cpu_percent", {}))
        per = p.get("cpu_us_per_saga") or {}
        lat = p["latency"]
        table.add_row(
            f"{p['offered_per_s']:,.0f}",
            f"{p['achieved_per_s']:,.1f}",
            f"{lat['p50_ms']}",
            f"{lat['p95_ms']}",
            f"{lat['p99_ms']}",
            f"{p['missing']}",
            f"{p.get('records_per_saga', 0)}",
            f"{100 * message_ratio(p, ceiling):.1f}%",
            f"{cpu['coordinator']:.0f}",
            f"{cpu['broker']:.0f}",
            f"{cpu['participants']:.0f}",
            f"{cpu['loadgen']:.0f}",
            f"{per.get('coordinator', 0):,.0f}",
            f"{per.get('broker', 0):,.0f}",
            f"{p.get('rss_peak_mib', {}).get('coordinator', 0)}",
            f"{p['load_before'][0]}",
        )
    return table


def count_text(value: Any) -> str:
    """A figure with thousands separators; "?" for one a phase did not measure."""
    return "?" if value is None else f"{value:,}"


def _cpu_by_role(cpu: dict[str, float]) -> dict[str, float]:
    """CPU% by role: the broker's nodes summed, the coordinator's replicas summed, every
    participant summed."""
    broker = sum(v for k, v in cpu.items() if k.startswith("broker"))
    coordinator = sum(v for k, v in cpu.items() if k.startswith("coordinator"))
    parts = sum(
        v for k, v in cpu.items()
        if not k.startswith(("broker", "coordinator")) and k not in ("loadgen", "bench")
    )  # fmt: skip
    return {
        "coordinator": coordinator,
        "broker": broker,
        "participants": parts,
        "loadgen": cpu.get("loadgen", 0.0),
    }


def print_profile(profile: dict[str, Any], console: Console) -> None:
    if "error" in profile:
        console.print(f"[bold]profile[/]: {profile['error']}")
        return
    console.print(
        f"[bold]coordinator profile[/] (py-spy, {profile['samples']:,} samples, idle excluded)"
    )
    table = Table("own time", "%", "package", "%")
    own = profile["own"][:12]
    packages = profile["packages"][:12]
    for i in range(max(len(own), len(packages))):
        o = own[i] if i < len(own) else {"function": "", "percent": ""}
        g = packages[i] if i < len(packages) else {"package": "", "percent": ""}
        table.add_row(o["function"], str(o["percent"]), g["package"], str(g["percent"]))
    console.print(table)


# -- files ------------------------------------------------------------------------------


def write_json(results: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kind = "smoke" if results["options"].get("smoke") else "full"
    path = directory / f"bench-{kind}-{stamp}.json"
    data = orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    path.write_bytes(data)
    (directory / f"latest-{kind}.json").write_bytes(data)
    return path


# -- markdown (for the README) -----------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, "
        f"Python {m['python']} ({m.get('build', 'pure Python')}); git {m['git']}; run {results.get('started', '')}, "
        f"{results.get('elapsed_s', '?')} s. Everything (broker, coordinator, participants, "
        f"load generator) on this one machine.",
        "",
    ]
    if len(results["brokers"]) > 1:
        names, rows = side_by_side(results)
        versions = [results["brokers"][n]["broker"]["version"] for n in names]
        lines += [
            "The brokers side by side, from this one run:",
            "",
            "| figure | " + " | ".join(versions) + " |",
            "|---|" + "---:|" * len(names),
            *("| " + " | ".join(row) + " |" for row in rows),
            "",
        ]
    for name, section in results["brokers"].items():
        lines += section_markdown(name, section, results["options"], m["nproc"])
    return "\n".join(lines) + "\n"


def section_markdown(
    name: str, section: dict[str, Any], options: dict[str, Any], cores: int | None
) -> list[str]:
    broker, c = section["broker"], section["ceiling"]
    how = (
        "Each sweep point and phase below ran on a system started for it alone (fresh "
        "broker and topics)"
        if broker["fresh_per_phase"]
        else "One broker for the whole section; one system (topics, processes) for the sweep "
        "and the sustained run, fresh processes and topics for park-and-crash"
    )
    lines = [
        f"#### {name}: {broker['version']}",
        "",
        f"Broker ceiling (plain aiokafka, one process, {c['record_bytes']}-byte records, "
        f"{c['topic_partitions']} partitions): **{c['pipelined_per_s']:,.0f} round trips/s** "
        f"pipelined; one at a time p50 {c['single_p50_ms']} ms, p99 {c['single_p99_ms']} ms "
        f"(load average {c['load_before'][0]}).",
        "",
        f"{how}; {broker['partitions']} partition(s) per topic, acks=all, one coordinator "
        f"replica; client settings {broker.get('client_env') or 'as configured'}.",
        "",
    ]
    for system_name, system in section["systems"].items():
        lines += [f"**{system_name}**: {system.get('workload', '')}", ""]
        points = list(system.get("sweep", []))
        if system.get("sustained"):
            points.append({**system["sustained"], "_label": "sustained"})
        lines += [
            "| offered/s | achieved/s | p50 ms | p95 ms | p99 ms | missing | records/saga "
            "| vs ceiling | CPU% coordinator | CPU% broker | CPU% participants | CPU% loadgen "
            "| CPU us/saga coordinator | CPU us/saga broker | coordinator RSS MiB | load avg |",
            "|" + "---:|" * 16,
        ]
        for p in points:
            cpu = _cpu_by_role(p.get("cpu_percent", {}))
            per = p.get("cpu_us_per_saga") or {}
            lat = p["latency"]
            label = f"{p['offered_per_s']:,.0f}" + (
                f" ({p['_label']} {p['send_end'] - p['send_start']:.0f} s)" if "_label" in p else ""
            )
            lines.append(
                f"| {label} | {p['achieved_per_s']:,.1f} | {lat['p50_ms']} | {lat['p95_ms']} "
                f"| {lat['p99_ms']} | {p['missing']} | {p.get('records_per_saga', 0)} "
                f"| {100 * message_ratio(p, c):.1f}% | {cpu['coordinator']:.0f} "
                f"| {cpu['broker']:.0f} | {cpu['participants']:.0f} | {cpu['loadgen']:.0f} "
                f"| {per.get('coordinator', 0):,.0f} | {per.get('broker', 0):,.0f} "
                f"| {p.get('rss_peak_mib', {}).get('coordinator', 0)} | {p['load_before'][0]} |"
            )
        lines.append("")
        if any(p.get("latency_by_outcome") for p in points):
            lines += [outcome_line(points), ""]
        if found := budgets(system, cores):
            lines += [*(f"{budget_line(b)}." for b in found), ""]
        if system.get("overload"):
            lines += overload_markdown(system["overload"])
        if system.get("memory"):
            mem = system["memory"]
            lines.append(
                f"Memory: {mem['sagas']:,} sagas parked on a participant that does not answer: "
                f"coordinator RSS {mem['rss_before_mib']} -> {mem.get('rss_after_mib', '?')} MiB "
                f"= **{count_text(mem.get('bytes_per_saga'))} bytes per in-flight saga**"
                + (f" ({mem['error']})." if mem.get("error") else ".")
            )
        if system.get("recovery"):
            r = system["recovery"]
            lines.append(
                f"Recovery: coordinator SIGKILLed with {count_text(r.get('in_flight_at_kill'))} sagas in "
                f"flight and restarted at once: ready after {r.get('ready_s', '?')} s, "
                f"**processing again after {r.get('processing_again_s', '?')} s**, all "
                f"{r['sagas']:,} terminal after {r.get('all_terminal_s', '?')} s, "
                f"{r.get('missing')} not terminal by the end of the wait; outcomes {r.get('outcomes')}."
            )
        lines.append("")
    lines += [f"| issue | target ({name}) | measured | met |", "|---|---|---|---|"]
    for t in targets(section, options):
        met = "yes" if t["met"] else "no"
        lines.append(f"| {t['issue']} | {t['target']} | {t['measured']} | {met} |")
    bench = section["systems"].get("bench", {})
    for when, profile in (
        ("the sustained run", bench.get("sustained", {}).get("profile")),
        (
            "recovery (restarted, working through the backlog)",
            bench.get("recovery", {}).get("profile"),
        ),
    ):
        if profile and "own" in profile:
            lines += [
                "",
                f"Coordinator profile during {when} (py-spy, {profile['samples']:,} samples, "
                "idle excluded), own time by package:",
                "",
                ", ".join(f"{p['package']} {p['percent']}%" for p in profile["packages"][:10]),
                "",
                "Top own time: "
                + "; ".join(f"{f['function']} {f['percent']}%" for f in profile["own"][:8]),
                "",
                "Engine code, inclusive: "
                + "; ".join(f"{f['function']} {f['percent']}%" for f in profile["inclusive"][:8]),
            ]
    lines.append("")
    return lines


def outcome_line(points: list[dict[str, Any]]) -> str:
    """p50/p99 by how the sagas ended, per point: compensating ones take more hops."""
    parts = []
    for p in points:
        by = p.get("latency_by_outcome") or {}
        said = ", ".join(
            f"{outcome} {lat['p50_ms']}/{lat['p99_ms']}" for outcome, lat in sorted(by.items())
        )
        if said:
            parts.append(f"{p['offered_per_s']:,.0f}/s: {said}")
    return "p50/p99 ms by outcome: " + "; ".join(parts) + "."


def write_markdown(results: dict[str, Any], json_path: Path) -> Path:
    path = json_path.with_suffix(".md")
    path.write_text(markdown(results))
    return path
