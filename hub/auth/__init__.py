"""Who is calling and what they may do: API keys, JWT bearer tokens, per-tool scopes."""
