"""Mapping manuals a connection uses when `leadbridge.toml` gives none (per connector kind)."""

from __future__ import annotations

from typing import Any

from leadbridge.errors import ConfigError
from leadbridge.sync.mapping import MappingManual

_CONTACTS_ONLY: dict[str, Any] = {"objects": [{
    "hub": "contact", "crm": "contacts", "match": ["email"], "create_in_hub": True,
    "fields": [
        {"hub": "email", "crm": "email"},
        {"hub": "name", "crm": "first_name"},
    ],
    "constants": {"last_name": "-"},
}]}

DEFAULTS: dict[str, dict[str, Any]] = {
    "bottlecrm": _CONTACTS_ONLY,
    "memory": _CONTACTS_ONLY,
}


def manual_for(connection: str, kind: str, configured: dict[str, Any]) -> MappingManual:
    """The configured manual for this connection, else the default of its connector kind."""
    raw = configured.get(connection) or DEFAULTS.get(kind)
    if raw is None:
        raise ConfigError(f"connection {connection!r}: no mapping manual in leadbridge.toml "
                          f"([sync.mappings.{connection}]) and no default for {kind}")
    try:
        return MappingManual.model_validate(raw)
    except ValueError as exc:
        raise ConfigError(f"sync.mappings.{connection} is not a valid mapping manual: "
                          f"{exc}") from exc
