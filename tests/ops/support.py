"""Helpers for the command tests: run `ticket-worker ...` in process and read what it wrote."""

from __future__ import annotations

import pytest

from worker.ops.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`ticket-worker *argv` in this process: its exit code, stdout and stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
