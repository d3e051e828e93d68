"""The example rules' regression cases (rules/tests/*.yaml) all pass: CI runs them here."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.engine import load_ruleset
from worker.engine.case_files import find_case_files, load_cases
from worker.engine.cases import Case, run_case

RULES = Path(__file__).resolve().parent.parent / "rules"
CASES = [case for file in find_case_files(RULES / "tests") for case in load_cases(file)]


def test_the_example_rules_ship_with_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[f"{Path(c.file).name}:{c.line}" for c in CASES])
def test_case(case: Case) -> None:
    result = run_case(load_ruleset(RULES), case)

    assert result.passed, [a.kind for a in result.decision.actions]
