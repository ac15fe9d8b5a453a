"""What can go wrong talking to BottleCRM, sorted by what the caller should do about it.

    LeadBridgeError
    └── BottleCRMError             anything BottleCRM refused or could not answer
        ├── BottleCRMAuthError       login refused, token rejected after a fresh login, or
        │                            the user lacks permission (fatal: fix the credentials)
        ├── BottleCRMNotFoundError   the record does not exist (fatal for that record)
        ├── BottleCRMValidationError the CRM rejected fields; `field_errors` names them
        │                            (fatal for that record: fix the data)
        └── BottleCRMRetriableError  408, 429, 5xx, timeouts and refused connections
                                     (retry later; `retry_after` when the CRM said so)

`error_for_status` is the one table from HTTP status to error class. Messages never carry
passwords or tokens: the client redacts them before an error is built.
"""

from __future__ import annotations

from collections.abc import Mapping

from leadbridge.errors import LeadBridgeError


class BottleCRMError(LeadBridgeError):
    """BottleCRM refused a request or could not answer it."""

    retriable = False

    def __init__(
        self,
        message: str,
        *,
        object_name: str | None = None,
        record_id: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.object_name = object_name
        self.record_id = record_id
        self.status = status


class BottleCRMAuthError(BottleCRMError):
    """Login refused, a token rejected even after a fresh login, or permission denied."""


class BottleCRMNotFoundError(BottleCRMError):
    """The record asked for does not exist (or no longer exists) in BottleCRM."""


class BottleCRMValidationError(BottleCRMError):
    """BottleCRM rejected the fields sent; `field_errors` maps each field to its messages."""

    def __init__(
        self,
        message: str,
        *,
        field_errors: Mapping[str, list[str]],
        object_name: str | None = None,
        record_id: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, object_name=object_name, record_id=record_id, status=status)
        self.field_errors: dict[str, list[str]] = dict(field_errors)


class BottleCRMRetriableError(BottleCRMError):
    """A rate limit, a server error or a network failure: the same request may work later."""

    retriable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        object_name: str | None = None,
        record_id: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, object_name=object_name, record_id=record_id, status=status)
        self.retry_after = retry_after


def error_for_status(status: int) -> type[BottleCRMError]:
    """The error class for an HTTP status BottleCRM answered with (400 is validation)."""
    if status == 400:
        return BottleCRMValidationError
    if status in (401, 403):
        return BottleCRMAuthError
    if status == 404:
        return BottleCRMNotFoundError
    if status in (408, 429) or status >= 500:
        return BottleCRMRetriableError
    return BottleCRMError
