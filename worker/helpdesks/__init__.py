"""One client per vendor API, each taking an injected `httpx.Client` (with a timeout).

Every method is one attempt; failures raise the `worker.errors` helpdesk tree.
"""

from worker.helpdesks.awalchat import AwalChatClient, TicketChange, sign_request
from worker.helpdesks.helpwave import HelpWaveClient, HelpWaveTicket
from worker.helpdesks.http import (
    RateLimitInfo,
    new_http_client,
    parse_retry_after,
    rate_limit_info,
)

__all__ = [
    "AwalChatClient",
    "HelpWaveClient",
    "HelpWaveTicket",
    "RateLimitInfo",
    "TicketChange",
    "new_http_client",
    "parse_retry_after",
    "rate_limit_info",
    "sign_request",
]
