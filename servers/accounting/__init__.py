"""Accounting domain: chart of accounts, contacts, invoices and bills, payments, journals, reports."""
