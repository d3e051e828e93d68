"""One error tree, split by what the caller must do.

    TicketWorkerError
     ├── ConfigError                 a setting is missing or wrong: refuse to start
     ├── RulesError                  a rule file is refused: refuse to start / `check` exits 1
     │                               (carries every RuleProblem with file:line:column)
     ├── PayloadError                a webhook is bad: answer its `status` (400, 401, 413)
     ├── ActionError                 an action cannot be carried out as planned: dead-letter it
     │    └── AmbiguousCreateError   an earlier attempt may have created it: dead-letter it
     ├── ReplayError                 a dead letter cannot be replayed: tell the operator
     ├── ThrottledError              the shared rate budget says wait until `until`: park the
     │                               work (nothing was sent; not an attempt)
     ├── QueueUnavailableError       Redis cannot be reached: answer 503, the sender retries
     └── HelpdeskError               a call to AwalChat or HelpWave failed
          ├── HelpdeskUnavailableError   timeout, connection error, 5xx: retry
          │    └── RateLimitedError      429: retry after `retry_after` seconds
          └── HelpdeskRejectedError      any other 4xx: do not retry

Helpdesk errors keep the request and the response (when there was one); raise them
`from` the underlying exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


class TicketWorkerError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(TicketWorkerError):
    """A setting is missing or invalid; the message names the setting, never its value."""


@dataclass(frozen=True)
class RuleProblem:
    """One finding in a rule file, 1-based line and column."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"  # "error" refuses the file; "warning" is a lint finding

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


class RulesError(TicketWorkerError):
    """A ruleset was refused; `problems` holds every error found."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PayloadError(TicketWorkerError):
    """A webhook request is refused with `status` and a short `reason`."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


class QueueUnavailableError(TicketWorkerError):
    """The queue (Redis) did not answer in time or refused the write: nothing was accepted."""


class ActionError(TicketWorkerError):
    """An action cannot be carried out as planned (e.g. the event has no phone number)."""


class AmbiguousCreateError(ActionError):
    """A create that is not idempotent was about to be sent by an earlier attempt, which
    recorded no outcome: it may have happened, so it is not sent again."""


class ReplayError(TicketWorkerError):
    """A dead letter cannot be replayed (its event is gone): the operator drops it."""


class ThrottledError(TicketWorkerError):
    """The destination's shared budget is spent: nothing was sent; try again at `until`."""

    def __init__(self, destination: str, until: float) -> None:
        self.destination = destination
        self.until = until
        super().__init__(f"{destination}: rate budget spent until {until:.3f}")


class HelpdeskError(TicketWorkerError):
    """A helpdesk call failed; `request` always set, `response` when one arrived."""

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request,
        response: httpx.Response | None = None,
    ) -> None:
        self.request = request
        self.response = response
        super().__init__(message)

    @property
    def status_code(self) -> int | None:
        """The HTTP status, or None when no answer came."""
        return self.response.status_code if self.response is not None else None


class HelpdeskUnavailableError(HelpdeskError):
    """Timeout, connection error or 5xx: the same call may succeed later."""


class RateLimitedError(HelpdeskUnavailableError):
    """429: wait `retry_after` seconds (None when the answer did not say)."""

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request,
        response: httpx.Response | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, request=request, response=response)
        self.retry_after = retry_after


class HelpdeskRejectedError(HelpdeskError):
    """A 4xx other than 409/429: retrying the same call cannot help."""
