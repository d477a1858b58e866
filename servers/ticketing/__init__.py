"""Ticketing domain: search, read, create, update, transition, comment on and link tickets."""
