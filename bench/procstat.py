"""CPU and memory of the processes under test, read from /proc (Linux; no dependency).

    sampler = ProcSampler({"coordinator": 1234, "broker": 1200}, interval=0.5)
    task = asyncio.create_task(sampler.run())
    ...
    usage = sampler.window(t0, t1)   # {"coordinator": Usage(cpu_percent=87.5, rss_peak_mib=...)}

CPU% is of one core (100 = one core busy all the time), from utime+stime
deltas between samples; RSS is sampled, so a peak between two samples can be
missed (``VmHWM``, the kernel's own lifetime peak, is reported too).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    cpu_seconds: float  # utime + stime so far
    rss_bytes: int
    hwm_bytes: int


@dataclass(frozen=True)
class Usage:
    cpu_percent: float
    cpu_seconds: float
    span_seconds: float
    rss_peak_mib: float
    rss_end_mib: float
    hwm_mib: float


def read_sample(pid: int) -> Sample | None:
    """One reading of ``pid``; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may hold spaces: split after its closing paren
    fields = stat[stat.rindex(b")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    rss = hwm = 0
    for line in status.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith(b"VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return Sample(time.time(), cpu, rss, hwm)


def rss_bytes(pid: int) -> int:
    sample = read_sample(pid)
    return sample.rss_bytes if sample else 0


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


@dataclass
class ProcSampler:
    """Samples a named set of PIDs every ``interval`` seconds until cancelled."""

    pids: dict[str, int]
    interval: float = 0.5
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def track(self, name: str, pid: int) -> None:
        """Follow ``name`` under a (new) PID, e.g. after a restart."""
        self.pids[name] = pid
        self.samples.setdefault(name, [])

    def sample_now(self) -> None:
        for name, pid in list(self.pids.items()):
            sample = read_sample(pid)
            if sample is not None:
                self.samples.setdefault(name, []).append(sample)

    async def run(self) -> None:
        while True:
            self.sample_now()
            await asyncio.sleep(self.interval)

    def window(self, start: float, end: float) -> dict[str, Usage]:
        """Usage of each process between epoch times ``start`` and ``end``."""
        out: dict[str, Usage] = {}
        for name, samples in self.samples.items():
            inside = [s for s in samples if start <= s.at <= end]
            if len(inside) < 2:
                continue
            cpu = 0.0
            for a, b in zip(inside, inside[1:], strict=False):
                if b.cpu_seconds >= a.cpu_seconds:  # not across a restart (new PID)
                    cpu += b.cpu_seconds - a.cpu_seconds
            span = inside[-1].at - inside[0].at
            out[name] = Usage(
                cpu_percent=round(100 * cpu / span, 1) if span > 0 else 0.0,
                cpu_seconds=cpu,
                span_seconds=span,
                rss_peak_mib=round(max(s.rss_bytes for s in inside) / 2**20, 1),
                rss_end_mib=round(inside[-1].rss_bytes / 2**20, 1),
                hwm_mib=round(max(s.hwm_bytes for s in inside) / 2**20, 1),
            )
        return out
