"""The JSON Schema shipped for editors: generated, committed, and agreeing with the loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from tests.engine.support import EXAMPLE_RULES, FIXTURES
from worker.engine import load_ruleset
from worker.engine.json_schema import render, rules_schema
from worker.engine.yaml_source import to_plain
from worker.errors import RulesError

COMMITTED = Path(__file__).resolve().parents[2] / "worker" / "rules.schema.json"
GOOD = sorted(EXAMPLE_RULES.glob("*.yaml")) + sorted((FIXTURES / "rules" / "good").glob("*.yaml"))
GOOD += sorted((FIXTURES / "rules" / "duplicate").glob("*.yaml"))  # each is good alone
# Bad fixtures whose problem the schema can express; the others need the loader (a regex's
# syntax, a timezone, an event-name typo, YAML syntax).
SCHEMA_REFUSES = (
    "bad_cooldown",
    "bad_time",
    "bad_version",
    "many_problems",
    "unknown_action",
    "unknown_key",
    "unknown_operator",
    "wrong_type",
)
BAD = sorted((FIXTURES / "rules" / "bad").glob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(rules_schema())


def schema_errors(path: Path) -> list[str]:
    document = to_plain(YAML(typ="rt", pure=True).load(path.read_text(encoding="utf-8")))
    return [error.message for error in VALIDATOR.iter_errors(document)]


def loader_accepts(path: Path) -> bool:
    try:
        load_ruleset(path)
    except RulesError:
        return False
    return True


def test_the_committed_schema_is_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render()


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(render()))


def test_the_example_files_point_editors_at_the_schema() -> None:
    for path in EXAMPLE_RULES.glob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../worker/rules.schema.json", path


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_files_are_valid_under_both(path: Path) -> None:
    assert loader_accepts(path)
    assert schema_errors(path) == []


@pytest.mark.parametrize("path", [p for p in BAD if p.stem != "yaml_syntax"], ids=lambda p: p.name)
def test_bad_files_the_schema_can_express_are_refused_by_both(path: Path) -> None:
    assert not loader_accepts(path)
    assert bool(schema_errors(path)) == (path.stem in SCHEMA_REFUSES)


@pytest.mark.parametrize(
    ("rule", "valid"),
    [
        ({"name": "a", "on": "message.received", "when": {"data.body": {"contains": "x"}}}, True),
        ({"name": "a", "on": "*", "when": {"not": {"ticket": "open"}}, "then": None}, True),
        ({"name": "a", "on": "x", "then": [{"helpwave.add_comment": {"text": " "}}]}, False),
        ({"name": "a", "on": "x", "then": ["helpwave.add_comment"]}, False),
        ({"name": "a", "on": "x", "then": [{"open_ticket": {"phone_number_id": 42}}]}, True),
        ({"name": "a", "on": "x", "when": {"time": {"days": ["Mon"]}}}, True),
        ({"name": "a", "on": "x", "when": {"data.n": {"gt": "5"}}}, False),
        ({"name": "a", "on": "x", "when": {"any": []}}, False),
        ({"name": "a", "on": "x", "cooldown": "1h30m"}, True),
        ({"name": "", "on": "x"}, False),
        ({"name": "a", "on": "x", "after": "1h30m", "unless": ["conversation.updated"]}, True),
        ({"name": "a", "on": "x", "after": "10x"}, False),
        ({"name": "a", "on": "x", "after": {"busines": "4h"}}, False),
        ({"name": "a", "on": "x", "after": {"business": "4q"}}, False),
        ({"name": "a", "on": "x", "when": {"session": "expired"}}, True),
        ({"name": "a", "on": "x", "when": {"session": "opne"}}, False),
    ],
)
def test_rules_under_the_schema_and_the_loader(rule: dict[str, Any], valid: bool) -> None:
    document = {"version": 1, "rules": [rule]}
    errors = list(VALIDATOR.iter_errors(document))
    text = json.dumps(document)  # JSON is YAML

    try:
        load_ruleset_text(text)
        loaded = True
    except RulesError:
        loaded = False

    assert (not errors, loaded) == (valid, valid)


@pytest.mark.parametrize(
    ("hours", "valid"),
    [
        (
            {"days": ["sun", "mon"], "between": ["22:00", "06:00:30"], "holidays": ["2026-12-18"]},
            True,
        ),
        ({"timezone": "Europe/Berlin", "between": ["00:00", "24:00"]}, True),
        ({"between": ["09:00", "25:00"]}, False),
        ({"days": ["mon"]}, False),
        ({"day": ["mon"], "between": ["09:00", "17:00"]}, False),
        ({"holidays": ["christmas"], "between": ["09:00", "17:00"]}, False),
    ],
)
def test_business_hours_under_the_schema_and_the_loader(hours: dict[str, Any], valid: bool) -> None:
    rule = {"name": "a", "on": "x", "after": {"business": "4h"}}
    document = {"version": 1, "business_hours": hours, "rules": [rule]}
    errors = list(VALIDATOR.iter_errors(document))

    try:
        load_ruleset_text(json.dumps(document))
        loaded = True
    except RulesError:
        loaded = False

    assert (not errors, loaded) == (valid, valid)


def load_ruleset_text(text: str) -> None:
    from worker.engine import load_ruleset_from_texts

    load_ruleset_from_texts({"rules.yaml": text})
