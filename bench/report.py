"""BENCHMARKS.md: each benchmark rewrites its own `## Title` section and keeps the others."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\nSpeed targets, measured on demand with `make bench` (see `bench/`); each "
    "figure is a ratio against a baseline measured in the same run.\n"
)


def write_section(section: str, path: Path = BENCHMARKS) -> None:
    """Replace the section whose `## ` heading `section` starts with, or append it."""
    title = section.splitlines()[0]
    if not title.startswith("## "):
        raise ValueError("a section starts with its '## ' heading")
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def median_run(runs: Sequence[T], key: Callable[[T], float]) -> T:
    """The run of median `key` (the lower middle one for an even count): a real run, whose
    other figures belong with it, rather than a mix of medians."""
    return sorted(runs, key=key)[(len(runs) - 1) // 2]
