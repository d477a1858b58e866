"""Built-in domain MCP servers.

`BUILTIN_DOMAINS` maps a domain name to the module that provides it; each module has
`make_backend(name)` and `create_server(backend=None)`. The hub mounts them in-process with
`{"builtin": "<domain>"}` (the registry entry below names the factory it calls).
"""

BUILTIN_DOMAINS: dict[str, str] = {
    "ticketing": "servers.ticketing.server:create_server",
    "hris": "servers.hris.server:create_server",
    "calendar": "servers.calendar.server:create_server",
    "accounting": "servers.accounting.server:create_server",
    "memory": "servers.memory.server:create_server",
}
