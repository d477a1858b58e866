"""Built-in domain MCP servers (ticketing, HRIS, calendar, accounting, memory).

`BUILTIN_DOMAINS` maps a domain name to the import path of a factory returning its server; the
hub mounts each in-process with `{"builtin": "<domain>"}`. Domains are registered here as they land.
"""

BUILTIN_DOMAINS: dict[str, str] = {}
