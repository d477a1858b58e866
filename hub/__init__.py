"""mcp-hub: one MCP endpoint that aggregates, routes and governs many MCP servers."""

__version__ = "0.1.0"
