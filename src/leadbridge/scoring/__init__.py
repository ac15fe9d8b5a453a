"""Scoring: page and event rules, decaying totals, bands, and re-scoring history."""
