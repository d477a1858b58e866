"""Accounting provider connectors."""
