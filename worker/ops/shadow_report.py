"""`ticket-worker shadow-report`: what each shadow rule would have done on live traffic.

    build_shadow_report(client, ruleset, since=..., now=...) -> list[ShadowRuleReport]
    render_shadow_report(reports, since=...) -> str

The rows come from the workers' hour counters (`storage.shadow_log`): per shadow rule of
`ruleset`, the items its world decided, how often the rule matched and would have acted (per
action kind), and where its world's actions differ from what the live rules decided on the
same items, with a few example conversations and delivery ids per kind of disagreement.
Counted in whole hours: `--since 24h` covers the current hour and the 24 before it. The
console renders the same rows.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import redis

from worker.engine import Ruleset, load_ruleset, load_ruleset_from_texts
from worker.engine.model import ACTION_KINDS
from worker.engine.shadow import describe_difference
from worker.engine.timing import parse_duration
from worker.errors import ConfigError
from worker.ops.admin_commands import connect
from worker.settings import Settings
from worker.storage.keys import SHADOW_EXAMPLES, SHADOW_REPORT_RETENTION
from worker.storage.rules_publication import read_publication
from worker.storage.shadow_log import HOUR, ShadowLog

MAX_SINCE = timedelta(seconds=SHADOW_REPORT_RETENTION) - timedelta(days=1)


@dataclass(frozen=True)
class Disagreement:
    """One kind of difference between a shadow world and live (`shadow_only:open_ticket`)."""

    label: str
    description: str  # "shadow would open_ticket where live did not"
    count: int
    examples: tuple[tuple[str, str], ...]  # (conversation, delivery id), a few


@dataclass(frozen=True)
class ShadowRuleReport:
    """One shadow rule over the period."""

    rule: str
    file: str
    line: int
    decided: int  # items its world decided
    matched: int  # of which the rule matched
    acted: int  # of which it would have carried out an action
    would: Mapping[str, int] = field(default_factory=dict)  # action kind -> would-have count
    disagreements: tuple[Disagreement, ...] = ()


def build_shadow_report(
    client: redis.Redis, ruleset: Ruleset, *, since: timedelta, now: float
) -> list[ShadowRuleReport]:
    """A row per shadow rule of `ruleset` (in ruleset order), counted from `now - since`."""
    names = ruleset.shadow_rules
    last = int(now // HOUR)
    first = int((now - since.total_seconds()) // HOUR)
    hours = ShadowLog(client).hours(names, first, last)
    rules = ruleset.plan.by_name
    return [_row(name, rules[name].file, rules[name].line, hours[name]) for name in names]


def _row(name: str, file: str, line: int, hours: list[Mapping[str, str]]) -> ShadowRuleReport:
    totals: Counter[str] = Counter()
    examples: dict[str, list[tuple[str, str]]] = {}
    for fields in reversed(hours):  # newest first: its examples come first
        for key, value in sorted(fields.items()):
            if key.startswith("ex:"):
                label = key[3:].rsplit(":", 1)[0]
                conversation, _, delivery = value.partition(" ")
                examples.setdefault(label, []).append((conversation, delivery))
            elif key != "rule":
                totals[key] += int(value)
    disagreements = tuple(
        Disagreement(
            label,
            describe_difference(label),
            totals[f"disagree:{label}"],
            tuple(examples.get(label, ())[:SHADOW_EXAMPLES]),
        )
        for label in sorted(k[9:] for k in totals if k.startswith("disagree:"))
    )
    would = {kind: totals[f"would:{kind}"] for kind in ACTION_KINDS if totals[f"would:{kind}"]}
    return ShadowRuleReport(
        name,
        file,
        line,
        totals["decided"],
        totals["matched"],
        totals["acted"],
        would,
        disagreements,
    )


def render_shadow_report(reports: list[ShadowRuleReport], *, since: timedelta) -> str:
    """The report as `ticket-worker shadow-report` prints it."""
    if not reports:
        return "no shadow rules in the ruleset (add `shadow: true` to a rule)"
    hours = int(since.total_seconds() // HOUR)
    lines = []
    for report in reports:
        lines.append(f"{report.rule}  [{report.file}:{report.line}]  (last {hours}h)")
        lines.append(
            f"  decided {report.decided}, matched {report.matched}, "
            f"would have acted on {report.acted}"
        )
        for kind, count in report.would.items():
            lines.append(f"    would have {kind}: {count}")
        if not report.disagreements:
            lines.append("  agrees with the live rules on every item")
        for item in report.disagreements:
            lines.append(f"  disagrees {item.count}x: {item.description}")
            for conversation, delivery in item.examples:
                lines.append(f"    e.g. conversation {conversation}, delivery {delivery}")
    return "\n".join(lines)


def running_ruleset(client: redis.Redis, settings: Settings) -> Ruleset:
    """The version the deployment runs (published in Redis), else RULES_PATH's files."""
    publication = read_publication(client)
    if publication is not None:
        return load_ruleset_from_texts(publication.files)
    return load_ruleset(settings.rules_path)


def _shadow_report(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_duration(args.since)
    if since is None or since > MAX_SINCE:
        raise ConfigError(
            f"--since {args.since!r}: expected a duration like 24h or 7d (at most "
            f"{MAX_SINCE.days}d: the counters are kept {SHADOW_REPORT_RETENTION // 86400} days)"
        )
    client = connect(settings)
    ruleset = running_ruleset(client, settings)
    reports = build_shadow_report(client, ruleset, since=since, now=time.time())
    print(render_shadow_report(reports, since=since))
    return 0


def add_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `shadow-report` on the main parser."""
    report = add(
        "shadow-report",
        _shadow_report,
        "what each shadow: true rule would have done on live traffic, and where it differs",
    )
    report.add_argument(
        "--since", default="24h", help="how far back, e.g. 24h, 90m or 7d (default 24h)"
    )
