"""Connections from the hub to the MCP servers it aggregates."""
