"""The operators' console: server-rendered pages over the records the CLI reads
(interface.md, "The console"). `create_console_app` builds it; `ticket-worker console` runs it.
"""
