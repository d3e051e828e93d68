"""Samples that tests of several tiers share, so that each is stated once: rule files as YAML
text (a test writes one, loads it, or states its own variant with `str.replace`) and the
customer's message webhook that drives them."""

from __future__ import annotations

import json

OPEN_RULE = """\
version: 1
rules:
  - name: {name}
    on: message.received
    then: [open_ticket]
"""
"""A rule file of one rule that opens the ticket on every message (`.format(name=...)` names
it); its `then:` stands on line 5."""

OPEN_WHEN_CLOSED_RULE = """\
version: 1
rules:
  - name: {name}
    on: message.received
    when: {{ticket: closed}}
    then: [open_ticket]
"""
"""`OPEN_RULE` acting only while the ticket is closed; its `then:` stands on line 6."""

HELPWAVE_RULE = """\
version: 1
rules:
  - name: {name}
    on: message.received
    then:
      - helpwave.create_ticket: {{name: "WhatsApp {{{{ data.from }}}}"}}
"""
"""A rule file of one rule that needs HELPWAVE_API_KEY (`.format(name=...)` names it)."""

SHADOW_RULES = """\
version: 1
limits: {tickets_per_conversation: 5/10m}
rules:
  - name: open-on-help
    on: message.received
    when: {data.body: {contains: help}, ticket: closed}
    then: [open_ticket]
  - name: close-on-thanks
    shadow: true
    on: message.received
    when: {data.body: {contains: thank}, ticket: open}
    then: [close_ticket]
"""
"""A live rule that opens the ticket on "help" and a shadow rule (line 8) that would close it
on "thank": the shadow disagrees with the live rules whenever a thanks finds the ticket open."""

TOGGLE_RULES = """\
version: 1
rules:
  - name: open-when-closed
    on: message.received
    when: {ticket: closed}
    then: [open_ticket]
  - name: close-when-open
    on: message.received
    when: {ticket: open}
    then: [close_ticket]
"""
"""Two live rules that open and close the same ticket on every message, forever: only the
runaway breaker (the `limits:` caps) stops them."""


def message_received(conversation: int, body: str) -> bytes:
    """A customer's `message.received` webhook body in `conversation`, saying `body`."""
    return json.dumps(
        {
            "event": "message.received",
            "timestamp": "2026-11-27T10:00:00Z",
            "data": {"conversation_id": conversation, "from": "966500000001", "body": body},
        }
    ).encode()
