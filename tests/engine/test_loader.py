"""Loading rule files: what is accepted, and how a refusal points at each problem."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from tests.engine.support import EXAMPLE_RULES, FIXTURES, ruleset
from worker.engine import load_ruleset, load_ruleset_from_texts
from worker.errors import RulesError

BAD = FIXTURES / "rules" / "bad"

MINIMAL = """\
version: 1
rules:
  - name: open
    on: message.received
    then: [open_ticket]
"""


def problems_of(text: str, name: str = "rules.yaml") -> list[str]:
    """Each problem of a refused file as 'line:column: message'."""
    with pytest.raises(RulesError) as caught:
        load_ruleset_from_texts({name: textwrap.dedent(text)})
    return [f"{p.line}:{p.column}: {p.message}" for p in caught.value.problems]


def rule_with(lines: str) -> str:
    """A file with one rule `r` whose body is `lines` (already indented by 4)."""
    return "version: 1\nrules:\n  - name: r\n" + textwrap.indent(lines, "    ")


def test_the_example_rules_load_in_file_name_order() -> None:
    rules = load_ruleset(EXAMPLE_RULES)

    assert [Path(f).name for f in rules.files] == [
        "10-helpwave-mirror.yaml",
        "20-awalchat-tickets.yaml",
        "30-time.yaml",
    ]
    assert rules.rules[0].name == "helpwave-ticket-on-new-conversation"
    assert rules.uses_awalchat
    assert rules.uses_helpwave


def test_a_folder_loads_only_visible_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(MINIMAL.replace("name: open", "name: second"))
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / ".a.yaml.swp.yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("not rules")

    rules = load_ruleset(tmp_path)

    assert [r.name for r in rules.rules] == ["open", "second"]
    assert rules.files == (str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))


def test_a_single_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "only.yaml"
    path.write_text(MINIMAL)

    assert [r.name for r in load_ruleset(path).rules] == ["open"]


@pytest.mark.parametrize("make", ["missing", "empty-folder"])
def test_a_path_without_rule_files_is_refused(tmp_path: Path, make: str) -> None:
    path = tmp_path / "nothing-here" if make == "missing" else tmp_path

    with pytest.raises(RulesError):
        load_ruleset(path)


def test_the_version_is_a_short_hash_of_names_and_texts(tmp_path: Path) -> None:
    first = load_ruleset_from_texts({"a.yaml": MINIMAL})
    (tmp_path / "a.yaml").write_text(MINIMAL)

    assert len(first.version) == 12
    assert int(first.version, 16) >= 0
    assert load_ruleset(tmp_path).version == first.version  # wherever the folder lives
    assert load_ruleset_from_texts({"b.yaml": MINIMAL}).version != first.version
    assert load_ruleset_from_texts({"a.yaml": MINIMAL + "\n"}).version != first.version


def test_the_key_on_is_text_and_the_schema_comment_is_accepted() -> None:
    rules = ruleset(
        """\
        # yaml-language-server: $schema=../worker/rules.schema.json
        version: 1
        rules:
          - name: r
            on: message.received
        """
    )

    assert rules.rules[0].events == frozenset({"message.received"})


def test_a_compiled_rule_keeps_what_the_file_says() -> None:
    rules = ruleset(
        """\
        version: 1
        mode: first_match
        timezone: Asia/Riyadh
        rules:
          - name: first
            description: Says hello.
            on: [message.received, order.updated]
            then: [open_ticket]
            stop: true
            cooldown: 1h30m
            enabled: false
          - name: second
            on: "*"
        """
    )
    first, second = rules.rules

    assert (first.name, first.description, first.file, first.line) == (
        "first",
        "Says hello.",
        "rules.yaml",
        5,
    )
    assert first.events == frozenset({"message.received", "order.updated"})
    assert (first.stop, first.cooldown, first.enabled) == (True, timedelta(minutes=90), False)
    assert second.events == "*"
    assert (second.stop, second.cooldown, second.enabled, second.actions) == (
        False,
        None,
        True,
        (),
    )
    assert rules.file("rules.yaml").mode == "first_match"
    assert rules.file("rules.yaml").timezone == "Asia/Riyadh"


def test_file_options_default_to_all_and_utc() -> None:
    options = ruleset(MINIMAL).file("rules.yaml")

    assert (options.mode, options.timezone) == ("all", "UTC")


def test_action_parameters_keep_their_yaml_types_and_get_defaults() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - name: r
            on: message.received
            then:
              - open_ticket: {phone_number_id: 123456}
              - helpwave.create_ticket: {isOpenedTicket: true, unReadChatCount: 1, tags: [a]}
              - helpwave.add_comment: {text: "{{ data.body }}"}
        """
    )
    open_ticket, create, comment = rules.rules[0].actions

    assert open_ticket.params == {"phone_number_id": "123456"}
    assert create.params == {
        "Channel": "Helpwave",
        "isOpenedTicket": True,
        "unReadChatCount": 1,
        "tags": ["a"],
    }
    assert comment.params == {"text": "{{ data.body }}", "isFromShop": False}


@pytest.mark.parametrize(
    ("actions", "awalchat", "helpwave"),
    [
        ("[open_ticket]", True, False),
        ("[close_ticket]", True, False),
        ("[{helpwave.add_comment: {text: hi}}]", False, True),
        ("[helpwave.create_ticket]", False, True),
        ("[]", False, False),
    ],
)
def test_the_ruleset_says_which_helpdesks_its_rules_use(
    actions: str, awalchat: bool, helpwave: bool
) -> None:
    rules = ruleset(rule_with(f"on: '*'\nthen: {actions}\n"))
    disabled = ruleset(rule_with(f"on: '*'\nthen: {actions}\nenabled: false\n"))

    assert (rules.uses_awalchat, rules.uses_helpwave) == (awalchat, helpwave)
    assert (disabled.uses_awalchat, disabled.uses_helpwave) == (False, False)


@pytest.mark.parametrize(
    ("fixture", "where", "message"),
    [
        ("unknown_key", "5:5", "unknown key 'thne' in a rule; did you mean 'then'?"),
        ("unknown_operator", "6:19", "unknown operator 'contain'; did you mean 'contains'?"),
        ("unknown_action", "6:9", "unknown action 'open_tickets'; did you mean 'open_ticket'?"),
        ("event_typo", "4:9", "unknown event 'message.recieved'; did you mean 'message.received'?"),
        ("bad_regex", "6:28", "bad regular expression '(?<=order )\\\\d+'"),
        ("wrong_type", "5:11", "'stop': found 'yes'; expected true or false"),
        ("yaml_syntax", "5:9", "YAML syntax error: expected ',' or ']'"),
        ("bad_cooldown", "6:15", "'cooldown': found '10 minutes'; expected a duration"),
        ("bad_time", "6:21", "unknown day 'monday'; did you mean 'mon'?"),
        ("unknown_timezone", "2:11", "unknown timezone 'Asia/Riyad'; did you mean 'Asia/Riyadh'?"),
        ("bad_version", "1:10", "unsupported version 2; expected 1"),
    ],
)
def test_a_bad_file_is_refused_at_the_offending_line_and_column(
    fixture: str, where: str, message: str
) -> None:
    path = BAD / f"{fixture}.yaml"

    with pytest.raises(RulesError) as caught:
        load_ruleset(path)

    found = [f"{p.line}:{p.column}: {p.message}" for p in caught.value.problems]
    assert any(f.startswith(f"{where}: {message}") for f in found), found
    assert all(p.file == str(path) for p in caught.value.problems)
    assert str(caught.value).startswith(f"{path}:{where}: error: ")


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    with pytest.raises(RulesError) as caught:
        load_ruleset(BAD / "many_problems.yaml")

    assert [(p.line, p.column) for p in caught.value.problems] == [
        (3, 7),  # mode: first-match
        (6, 9),  # on: message.recieved
        (8, 19),  # contain
        (9, 12),  # open_tickets
        (10, 5),  # a rule without a name
    ]


def test_a_duplicate_name_is_reported_at_its_second_occurrence_naming_the_first() -> None:
    folder = FIXTURES / "rules" / "duplicate"

    with pytest.raises(RulesError) as caught:
        load_ruleset(folder)

    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.column) == (str(folder / "b.yaml"), 6, 11)
    assert problem.message == (
        f"duplicate rule name 'open-on-message'; first defined at {folder / 'a.yaml'}:3:11"
    )


def test_one_bad_file_refuses_the_whole_ruleset() -> None:
    with pytest.raises(RulesError) as caught:
        load_ruleset_from_texts({"good.yaml": MINIMAL, "bad.yaml": "version: 1\nrules: 5\n"})

    assert [p.file for p in caught.value.problems] == ["bad.yaml"]


def test_the_good_fixtures_load() -> None:
    rules = load_ruleset(FIXTURES / "rules" / "good")

    assert len(rules.rules) == 6


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("on: 5\n", "4:9: 'on': found 5; expected an event name"),
        ("on: []\n", "4:9: 'on': found an empty list; expected an event name"),
        ("on: [message.received, 5]\n", "4:28: 'on': found 5"),
        ("on: '*'\nthen: open_ticket\n", "5:11: 'then': found 'open_ticket'; expected a list"),
        ("on: '*'\nthen: [{open_ticket: 1}]\n", "5:26: 'open_ticket' takes a mapping of fields"),
        (
            "on: '*'\nthen: [{open_ticket: {}, close_ticket: {}}]\n",
            "5:12: an action is a name (close_ticket) or a mapping of one name",
        ),
        ("on: '*'\nwhen: [ticket: open]\n", "5:11: a condition must be a non-empty mapping"),
        ("on: '*'\nwhen: {ticket: opened}\n", "5:20: 'ticket': found 'opened'; expected open"),
        (
            "on: '*'\nwhen: {tiket: open}\n",
            "5:12: unknown condition 'tiket'; did you mean 'ticket'?",
        ),
        (
            "on: '*'\nwhen: {data..body: x}\n",
            "5:12: condition key 'data..body' is not a dotted path",
        ),
        ("on: '*'\nwhen: {any: []}\n", "5:17: 'any' takes a non-empty list of conditions"),
        ("on: '*'\nwhen: {data.x: {}}\n", "5:20: an empty mapping of operators"),
        ("on: '*'\nwhen: {data.x: {in: a}}\n", "5:25: 'in' takes a list; found 'a'"),
        ("on: '*'\nwhen: {data.x: {gt: '5'}}\n", "5:25: 'gt' takes a number; found '5'"),
        ("on: '*'\nwhen: {data.x: {exists: yes}}\n", "5:29: 'exists' takes true or false"),
        ("on: '*'\nwhen: {data.x: {matches: 5}}\n", "5:30: 'matches' takes a regular expression"),
        ("on: '*'\nwhen: {data.x: {contains: [a]}}\n", "5:31: 'contains' takes a text"),
        ("on: '*'\nwhen: {data.x: {contains_any: []}}\n", "5:35: 'contains_any' takes a non-empty"),
        ("on: '*'\nwhen: {time: {day: [mon]}}\n", "5:19: unknown key 'day' in a time condition"),
        ("on: '*'\nwhen: {time: {between: ['09:00']}}\n", "5:28: 'between': found a list"),
        ("on: '*'\nwhen: {time: {between: ['9:00', '17:00']}}\n", "5:29: bad time '9:00'"),
        (
            "on: '*'\nwhen: {time: {between: ['09:00', '09:00']}}\n",
            "5:28: 'between' starts and ends",
        ),
        ("on: '*'\nwhen: {time: mon}\n", "5:18: 'time': found 'mon'; expected a mapping"),
        ("on: '*'\ncooldown: 600\n", "5:15: 'cooldown': found 600; expected a duration"),
        ("on: '*'\ncooldown: 0m\n", "5:15: 'cooldown': found '0m'"),
        ("on: '*'\nenabled: 1\n", "5:14: 'enabled': found 1; expected true or false"),
        ("on: '*'\nfoo: 1\n", "5:5: unknown key 'foo' in a rule"),
    ],
)
def test_a_wrong_value_is_named_with_what_was_expected(body: str, expected: str) -> None:
    found = problems_of(rule_with(body))

    assert any(f.startswith(expected) for f in found), found


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (
            "helpwave.create_ticket: {customerId: 5}",
            "6:34: 'customerId' is filled in by the worker",
        ),
        (
            "helpwave.create_ticket: {channel: x}",
            "6:34: unknown key 'channel' in helpwave.create_ticket; did you mean 'Channel'?",
        ),
        ("helpwave.create_ticket: {tags: [a, 1]}", "6:44: 'tags.1': found 1; expected a text"),
        ("helpwave.create_ticket: {isOpenedTicket: 1}", "6:50: 'isOpenedTicket': found 1"),
        ("helpwave.add_comment: {isFromShop: false}", "6:31: missing required key 'text'"),
        ("helpwave.add_comment: {text: '  '}", "6:38: 'text' must not be empty"),
        ("helpwave.add_comment: {text: '{{ data.body | upper }}'}", "6:38: bad placeholder"),
        ("open_ticket: {phone: '1'}", "6:23: unknown key 'phone' in open_ticket / close_ticket"),
    ],
)
def test_action_fields_are_checked(action: str, expected: str) -> None:
    found = problems_of(rule_with(f"on: '*'\nthen:\n  - {action}\n"))

    assert any(f.startswith(expected) for f in found), found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1:1: a rule file must be a mapping with version and rules"),
        ("- a\n", "1:1: a rule file must be a mapping"),
        ("rules: []\n", "1:1: missing required key 'version' in a rule file"),
        ("version: 1\n", "1:1: missing required key 'rules' in a rule file"),
        ("version: true\nrules: []\n", "1:10: 'version': found true; expected an integer"),
        ("version: 1\nversion: 1\nrules: []\n", "2:1: YAML syntax error: found duplicate key"),
        ("version: 1\nrules: [5]\n", "2:9: a rule must be a mapping"),
        (
            "version: 1\nmode: fast\nrules: []\n",
            "2:7: 'mode': found 'fast'; expected 'first_match'",
        ),
        ("version: 1\nrule: []\n", "2:1: unknown key 'rule' in a rule file; did you mean 'rules'?"),
    ],
)
def test_the_file_itself_is_checked(text: str, expected: str) -> None:
    found = problems_of(text)

    assert any(f.startswith(expected) for f in found), found


@pytest.mark.parametrize("duration", ["30s", "10m", "2h", "1d", "1h30m"])
def test_cooldowns_accept_seconds_minutes_hours_and_days(duration: str) -> None:
    rules = ruleset(rule_with(f"on: '*'\ncooldown: {duration}\n"))

    assert rules.rules[0].cooldown is not None


def test_unknown_event_names_far_from_known_ones_are_allowed() -> None:
    rules = ruleset(rule_with("on: [order.updated, contact.deleted]\n"))

    assert rules.rules[0].events == frozenset({"order.updated", "contact.deleted"})
