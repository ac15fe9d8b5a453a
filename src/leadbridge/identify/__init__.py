"""Identification: browser visitors, contacts, and the organisations behind IP addresses."""
