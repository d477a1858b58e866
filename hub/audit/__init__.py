"""The audit trail: who called what, when, with what result."""
