"""The rules engine: pure. No starlette, celery, redis or httpx here; `now` is an argument.

ruleset = load_ruleset(Path("rules"))          # or load_ruleset_from_texts({...})
decision = evaluate(ruleset, event, state, now=now)
"""

from worker.engine.evaluate import evaluate
from worker.engine.loader import load_ruleset, load_ruleset_from_texts
from worker.engine.ruleset import ActionSpec, Rule, RuleFile, Ruleset

__all__ = [
    "ActionSpec",
    "Rule",
    "RuleFile",
    "Ruleset",
    "evaluate",
    "load_ruleset",
    "load_ruleset_from_texts",
]
