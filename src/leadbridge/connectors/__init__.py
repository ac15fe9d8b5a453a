"""Connectors: one package per CRM, each speaking that CRM's protocol and nothing else.

A connector authenticates, exposes the CRM's objects and translates to and from its shapes.
It never imports `leadbridge.store`: the sync engine owns the hub's tables, links, cursors,
retries and matching.
"""
