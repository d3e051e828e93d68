"""The `## End to end` section of BENCHMARKS.md, from `bench.e2e`'s runs."""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import dataclass

from bench.report import median_run

PROCESSES = ("worker", "redis-server", "fake provider")
OURS_NAME = "ours (`ticket-worker work --concurrency 4`)"
QUIET_NAME = "ours, events no rule listens to"


@dataclass(frozen=True)
class Run:
    """One variant: events finished and the seconds it took from first take to empty."""

    name: str
    events: int
    seconds: float
    calls: int = 0
    duplicates: int = 0
    missing: int = 0
    cpu: tuple[tuple[str, float], ...] = ()  # CPU seconds per process over the timed span

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def cpu_ms(self, process: str) -> float:
        """CPU milliseconds per event that `process` spent over the timed span."""
        return dict(self.cpu).get(process, 0.0) * 1000 / self.events


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


@dataclass(frozen=True)
class Round:
    """One round: the four runs, interleaved in this order."""

    ours: Run
    plain: Run
    noop: Run
    quiet: Run


def median(runs: list[Run]) -> Run:
    """The run of median rate."""
    return median_run(runs, key=lambda run: run.rate)


def render(args: argparse.Namespace, rounds: list[Round]) -> str:
    ours = median([r.ours for r in rounds])
    plain = median([r.plain for r in rounds])
    noop = median([r.noop for r in rounds])
    quiet = median([r.quiet for r in rounds])
    rows = "\n".join(
        f"| {r.name} | {r.events} | {r.seconds:.2f} s | {r.rate:.0f}/s | "
        f"{r.duplicates} | {r.missing if r is not noop else '-'} |"
        for r in (ours, plain, noop)
    )
    cpu_rows = "\n".join(
        f"| {r.name} | "
        + " | ".join(f"{r.cpu_ms(p):.2f}" for p in PROCESSES)
        + f" | {sum(r.cpu_ms(p) for p in PROCESSES):.2f} |"
        for r in (ours, plain, noop, quiet)
    )
    each = "\n".join(
        f"| {n} | {r.ours.rate:.0f}/s | {r.plain.rate:.0f}/s | {r.noop.rate:.0f}/s | "
        f"{r.quiet.rate:.0f}/s | {r.ours.rate / r.plain.rate:.2f}x | "
        f"{r.ours.rate / r.noop.rate:.2f}x |"
        for n, r in enumerate(rounds, 1)
    )
    vs_plain, vs_noop = ours.rate / plain.rate, ours.rate / noop.rate
    return f"""## End to end

`.venv/bin/python -m bench.e2e --events {args.events} --quiet {args.quiet} --rounds {args.rounds}`
on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. A backlog of
{args.events} `message.received` events of as many conversations (one open each), one worker
process with 4 threads, a fake provider answering at once; each variant on its own
redis-server, timed from the first message taken to an empty queue. {len(rounds)} rounds,
the variants interleaved in each; the tables show each variant's median run.

| variant | events | time | events/s | opened twice | never opened |
|---|---|---|---|---|---|
{rows}

CPU time per event over the same span (user + system, from `/proc`; it counts each
process's own work whatever else the shared machine runs):

| variant | worker ms | redis-server ms | fake provider ms | all ms |
|---|---|---|---|---|
{cpu_rows}

Each round:

| round | ours | plain | no-op | quiet | ours / plain | ours / no-op |
|---|---|---|---|---|---|---|
{each}

- ours / plain (medians): **{vs_plain:.2f}x** (goal ≥ 1.5x: {verdict(vs_plain >= 1.5)})
- ours / Celery no-op (medians): **{vs_noop:.2f}x** (goal ≥ 0.5x: {verdict(vs_noop >= 0.5)})
- events no rule listens to (`message.status.updated`, still recorded for the decision
  log): {quiet.events} in {quiet.seconds:.2f} s = **{quiet.rate:.0f}/s** (goal ≥ 2,000/s:
  {verdict(quiet.rate >= 2000)})

The plain design leaves out what ours guarantees: per-conversation order, a decision stored
once before any action, exactly-once effects across redeliveries, recovery of a killed
worker's work, the shared rate budget, and the decision log.
"""
