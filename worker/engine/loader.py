"""Load rule files into a `Ruleset`, or refuse them all with every problem found.

    load_ruleset(path)              a file, or every *.yaml of a folder in file-name order
    load_ruleset_from_texts(files)  name -> YAML text (tests, validating a new version)

Either raises `RulesError` listing each problem at file:line:column (1-based) with what was
found and what was expected; nothing of a refused ruleset is ever used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from worker.engine.rulefile import RuleFileCompiler
from worker.engine.ruleset import DEFAULT_LIMITS, Rule, RuleFile, Ruleset
from worker.engine.yaml_source import Position
from worker.errors import RuleProblem, RulesError


def load_ruleset(path: Path) -> Ruleset:
    """The ruleset in `path` (a rule file, or a folder of `*.yaml` files; hidden ones skipped).

    Raises RulesError when the path cannot be read, holds no rule file, or any file is bad.
    """
    return load_ruleset_from_texts(read_rule_texts(path))


def read_rule_texts(path: Path) -> dict[str, str]:
    """The rule files at `path` (a file, or a folder's `*.yaml`), name -> text.

    Raises RulesError when the path cannot be read or holds no rule file.
    """
    if path.is_dir():
        files = sorted(p for p in path.glob("*.yaml") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise RulesError([RuleProblem(str(path), 1, 1, "no *.yaml rule files in this folder")])
    elif path.is_file():
        files = [path]
    else:
        raise RulesError([RuleProblem(str(path), 1, 1, "no such rule file or folder")])
    texts: dict[str, str] = {}
    problems: list[RuleProblem] = []
    for file in files:
        try:
            texts[str(file)] = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(RuleProblem(str(file), 1, 1, f"cannot read the file: {exc}"))
    if problems:
        raise RulesError(problems)
    return texts


def load_ruleset_from_texts(files: Mapping[str, str]) -> Ruleset:
    """The ruleset made of `files` (name -> YAML text), taken in name order.

    Raises RulesError with every problem of every file when any is found.
    """
    problems: list[RuleProblem] = []
    rule_files: list[RuleFile] = []
    rules: list[Rule] = []
    first_seen: dict[str, tuple[str, Position]] = {}
    limits_from: RuleFile | None = None
    for name in sorted(files):
        compiler = RuleFileCompiler(name, problems)
        compiled = compiler.compile(files[name])
        if compiled is None:
            continue
        rule_file, file_rules = compiled
        rule_files.append(rule_file)
        if rule_file.limits is not None:
            if limits_from is None:
                limits_from = rule_file
            else:
                line, column = rule_file.limits_at
                first_line, first_column = limits_from.limits_at
                problems.append(
                    RuleProblem(
                        rule_file.name,
                        line,
                        column,
                        "'limits' is set twice; first set at "
                        f"{limits_from.name}:{first_line}:{first_column} "
                        "(one file of the ruleset holds the limits: remove one)",
                    )
                )
        for rule, (line, column) in file_rules:
            if rule.name in first_seen:
                where, (first_line, first_column) = first_seen[rule.name]
                problems.append(
                    RuleProblem(
                        rule.file,
                        line,
                        column,
                        f"duplicate rule name '{rule.name}'; first defined at "
                        f"{where}:{first_line}:{first_column}",
                    )
                )
            else:
                first_seen[rule.name] = (rule.file, (line, column))
            rules.append(rule)
    if problems:
        raise RulesError(problems)
    limits = (
        DEFAULT_LIMITS if limits_from is None or limits_from.limits is None else limits_from.limits
    )
    return Ruleset(
        version=content_version(files),
        rules=tuple(rules),
        rule_files=tuple(rule_files),
        limits=limits,
    )


def content_version(files: Mapping[str, str]) -> str:
    """First 12 hex of sha256 over the files' base names and texts, in name order.

    Base names keep the version the same wherever the folder is mounted.
    """
    digest = hashlib.sha256()
    for name, text in sorted((Path(n).name, t) for n, t in files.items()):
        digest.update(name.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:12]
