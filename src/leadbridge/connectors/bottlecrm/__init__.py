"""BottleCRM (PyPI `django-crm`, MIT): a self-hosted Django REST CRM, and this hub's real peer.

The client speaks its REST API under `/api/` — JWT login, leads, contacts, accounts,
opportunities and tasks — and sorts every failure into the errors of `errors.py`; the
connector (`connector.py`) speaks the hub's connector contract on top of it.
docs/bottlecrm.md lists what its API does and the quirks the client works around.
"""

from __future__ import annotations

from leadbridge.connectors.bottlecrm.client import BottleCRMClient, field_errors
from leadbridge.connectors.bottlecrm.connector import BottleCRMConnector
from leadbridge.connectors.bottlecrm.errors import (
    BottleCRMAuthError,
    BottleCRMError,
    BottleCRMNotFoundError,
    BottleCRMRetriableError,
    BottleCRMValidationError,
    error_for_status,
)
from leadbridge.connectors.bottlecrm.objects import SHAPES, BottleCRMObject, ObjectShape, Record

__all__ = [
    "SHAPES",
    "BottleCRMAuthError",
    "BottleCRMClient",
    "BottleCRMConnector",
    "BottleCRMError",
    "BottleCRMNotFoundError",
    "BottleCRMObject",
    "BottleCRMRetriableError",
    "BottleCRMValidationError",
    "ObjectShape",
    "Record",
    "error_for_status",
    "field_errors",
]
