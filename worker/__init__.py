"""ticket-worker: signed AwalChat webhooks in, YAML rules decide, helpdesk tickets out."""

__version__ = "0.1.0"
