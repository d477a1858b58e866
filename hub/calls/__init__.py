"""A `tools/call` through the hub: its state (`call`), the one pipeline of two-phase policies
(`pipeline`), the two drivers that run it (`drivers`) and the one table of forwarding errors (`errors`)."""
