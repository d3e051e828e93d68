"""`{{ path }}` placeholders in action parameters: plain substitution from the event.

Parameters are compiled once into a renderer. Strings without placeholders, and every
non-string value, are returned as written (YAML types kept); a placeholder's value is the
field's text (`paths.as_text`): missing and null give '', numbers and objects JSON-ish text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from worker.engine.paths import as_text, resolve

Renderer = Callable[[Mapping[str, Any]], Any]

PLACEHOLDER: Final = re.compile(r"\{\{\s*([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*)\s*\}\}")


def bad_placeholders(text: str) -> list[str]:
    """Braces in `text` that are not a plain `{{ path }}` (filters, expressions, typos)."""
    rest = PLACEHOLDER.sub("", text)
    if "{{" not in rest and "}}" not in rest:
        return []
    return re.findall(r"\{\{[^}]*\}?\}?|\}\}", rest)


def compile_value(value: Any) -> Renderer | None:
    """A renderer for `value`, or None when it holds no placeholder (use it as is)."""
    if isinstance(value, str):
        return _compile_text(value)
    if isinstance(value, list):
        items = [compile_value(item) for item in value]
        if all(item is None for item in items):
            return None
        pairs = list(zip(items, value, strict=True))
        return lambda payload: [r(payload) if r else v for r, v in pairs]
    if isinstance(value, dict):
        entries = [(k, compile_value(v), v) for k, v in value.items()]
        if all(r is None for _, r, _ in entries):
            return None
        return lambda payload: {k: r(payload) if r else v for k, r, v in entries}
    return None


class FixedParams:
    """The renderer of parameters without placeholders: a copy of them for every call."""

    __slots__ = ("params",)

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def __call__(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return self.params.copy()


def compile_params(params: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A function from the event payload to the action's parameters, placeholders filled.

    Each call returns a new dict, keys in the order written.
    """
    fixed = dict(params)
    dynamic = [(key, compile_value(value)) for key, value in fixed.items()]
    filled = [(key, render) for key, render in dynamic if render is not None]
    if not filled:
        return FixedParams(fixed)

    def render_params(payload: Mapping[str, Any]) -> dict[str, Any]:
        out = fixed.copy()
        for key, render in filled:
            out[key] = render(payload)
        return out

    return render_params


def text_pieces(text: str) -> tuple[list[str], list[tuple[str, ...]]] | None:
    """`text` split into its literals and the paths between them; None without placeholders.

    There is one more literal than paths: literal, path, literal, ..., literal.
    """
    pieces = PLACEHOLDER.split(text)
    if len(pieces) == 1:
        return None
    return pieces[0::2], [tuple(path.split(".")) for path in pieces[1::2]]


def _compile_text(text: str) -> Renderer | None:
    split = text_pieces(text)
    if split is None:
        return None
    literals, paths = split

    def render(payload: Mapping[str, Any]) -> str:
        out = [literals[0]]
        for segments, literal in zip(paths, literals[1:], strict=True):
            out.append(as_text(resolve(payload, segments)))
            out.append(literal)
        return "".join(out)

    return render
