"""The sync engine: everything between the hub's tables and a connector's two operations."""
