"""The JSON texts a delivery stores for a decision, joined from fragments that repeat.

`records.stored_texts` writes, per event, the decision's compact stored form and the state
after. Most of that text is the same from one event to the next: a rule's action whose
params have no placeholder encodes the same way every time it is planned with the same
skip reason (and `fastpath` plans it as one object built with the ruleset); the state's
fields sit in a fixed frame; rule names, a rule action's head and a skip reason recur. So:
a planned action's JSON array is encoded once per action object and kept on it (actions
are immutable: their params are never changed once planned); around params with
placeholders, the action's head and its skip reason's tail are cached; the state's frame is
cached per (ticket open, HelpWave ticket id, planned); rule names are quoted once each.
Every cache holds at most CACHED entries and starts again when full. What varies (params
with placeholders, the moment) is encoded by one C encoder made once.

The output is byte for byte what `compact` gives for the same data as dicts and lists
(`tests/storage/test_json_text.py` compares the two); anything unusual (cooldowns, waits,
a value of an unexpected type) is encoded from its dict the ordinary way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from json.encoder import encode_basestring
from math import isfinite
from typing import Final, TypeVar

from worker.engine.decision import Decision, wait_changes_json
from worker.engine.model import ConversationState, PlannedAction

_K = TypeVar("_K")
_V = TypeVar("_V")
_TEXT: Final = "_stored_json"  # where an action keeps its encoded array (not a field)


def _plain(value: object) -> object:
    """What JSON cannot encode as it is: a mapping other than a dict (action params)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, check_circular=False, default=_plain
)
_make = getattr(json.encoder, "c_make_encoder", None)
# What `_ENCODER.encode` runs for anything but a str, made once instead of per call.
_chunks = None if _make is None else _make(None, _plain, encode_basestring, None, ":", ",", 0, 0, 1)


def encode(data: object) -> str:
    """`data` as compact JSON text (no spaces, non-ASCII kept)."""
    if _chunks is None or isinstance(data, str):
        return _ENCODER.encode(data)
    return "".join(_chunks(data, 0))


CACHED: Final = 4096  # fragments kept per cache below, at most (then it starts again)
# (rule, index, kind, skip reason) -> ('["rule",0,"kind",', ',"reason"]')
_ends: dict[tuple[str, int, str, str | None], tuple[str, str]] = {}
# (ticket open, HelpWave ticket id, planned) -> '{"ticket_open":true,...,"cooldowns":{}'
_frames: dict[tuple[bool, str | None, bool], str] = {}
_starts: dict[tuple[str, str], str] = {}  # (ruleset version, event) -> the decision's start


def _kept(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    if len(cache) >= CACHED:
        cache.clear()
    cache[key] = value
    return value


def action_text(action: PlannedAction) -> str:
    """`[rule, index, kind, params, skip_reason]` as JSON, kept on the action once encoded
    (an action `fastpath` built with the ruleset is planned again and again). Around the
    params, the fragments of the rule's action and of the skip reason are cached."""
    fields = action.__dict__
    text: str | None = fields.get(_TEXT)
    if text is not None:
        return text
    rule, index, kind, reason = action.rule, action.index, action.kind, action.skip_reason
    if type(index) is not int:  # True would find the fragment of 1
        text = fields[_TEXT] = encode([rule, index, kind, action.params, reason])
        return text
    key = (rule, index, kind, reason)
    ends = _ends.get(key)
    if ends is None:
        head = encode([rule, index, kind])[:-1] + ","
        ends = _kept(_ends, key, (head, "," + encode(reason) + "]"))
    text = fields[_TEXT] = ends[0] + _params_text(action.params) + ends[1]
    return text


_keys: dict[str, str] = {}  # param name -> '"name":'
_SCALARS: Final = {True: "true", False: "false", None: "null"}


def _params_text(params: object) -> str:
    """`encode(params)`; a small dict of texts, flags and None (a comment's params, say)
    written here, quicker than a call of the encoder."""
    if type(params) is not dict or len(params) > 4:
        return encode(params)
    parts = []
    for key, value in params.items():
        name = _keys.get(key)
        if name is None:
            if type(key) is not str:
                return encode(params)
            name = _kept(_keys, key, encode_basestring(key) + ":")
        if type(value) is str:
            parts.append(name + encode_basestring(value))
        elif value is None or type(value) is bool:
            parts.append(name + _SCALARS[value])
        else:
            return encode(params)
    return "{" + ",".join(parts) + "}"


def state_text(state: ConversationState) -> str:
    """`compact(state.to_json())`, written into its frame when it has no cooldowns or waits."""
    ticket_open = state.ticket_open
    planned = state.helpwave_ticket_planned
    ticket_id = state.helpwave_ticket_id
    if (
        state.cooldowns
        or state.waits
        or type(ticket_open) is not bool
        or type(planned) is not bool
        or not (ticket_id is None or type(ticket_id) is str)
    ):
        return encode(state.to_json())
    key = (ticket_open, ticket_id, planned)
    frame = _frames.get(key)
    if frame is None:
        frame = _kept(_frames, key, encode(ConversationState(*key).to_json())[:-1])
    last = state.last_customer_message
    if last is None:
        return frame + "}"
    return frame + ',"last_customer_message":"' + last.isoformat() + '"}'


def _text(value: object) -> str:
    """`encode(value)` for a str (most often) or None, without the general encoder."""
    if type(value) is str:
        return encode_basestring(value)
    return "null" if value is None else encode(value)


_quoted: dict[str, str] = {}  # rule name -> '"name"'


def _names(names: tuple[str, ...]) -> str:
    """`encode(names)`: a list of rule names, each encoded once."""
    try:
        return "[" + ",".join(map(_quoted.__getitem__, names)) + "]"
    except (KeyError, TypeError):  # a name not seen yet (or not a text)
        if not all(type(name) is str for name in names):
            return encode(names)
        for name in names:
            _kept(_quoted, name, encode_basestring(name))
        return "[" + ",".join(map(encode_basestring, names)) + "]"


def decision_text(decision: Decision, after: str) -> str:
    """The compact stored form of a decision `evaluate` made (`decided_at` set) as JSON,
    with `after`, the state after's text (`state_text`), in it."""
    assert decision.decided_at is not None
    decided_at = decision.decided_at.timestamp()
    version, event, cid = decision.ruleset_version, decision.event, decision.conversation_id
    start = _starts.get((version, event))
    if start is None:
        start = '{"ruleset_version":' + encode(version) + ',"event":' + encode(event)
        start = _kept(_starts, (version, event), start + ',"conversation_id":')
    parts = [
        start,
        encode_basestring(cid) if type(cid) is str else _text(cid),
        ',"decided_at":',
        float.__repr__(decided_at) if isfinite(decided_at) else encode(decided_at),
        ',"matched":',
        _names(decision.matched_rules),
        ',"actions":[',
        ",".join([a.__dict__.get(_TEXT) or action_text(a) for a in decision.actions]),
        "]",
    ]
    if decision.wait_changes:
        parts += (',"wait_changes":', encode(wait_changes_json(decision.wait_changes)))
    parts += (',"state_after":', after, "}")
    return "".join(parts)
