"""A small typed HTTP client for BottleCRM's REST API (`django-crm` 0.9.0).

It logs in with e-mail and password (JWT, sent as `Authorization: JWT <token>`), logs in
again once when a token is refused, and turns every answer into records or into one of the
errors in `errors.py`. It does not retry, batch or match: the sync engine does.

BottleCRM's create answers no id. `create` finds the new record through the list endpoint,
filtered on the object's natural key, which BottleCRM keeps unique: lead title, account
name, opportunity name and task title (case-insensitively), contact e-mail (exactly).
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from leadbridge.connectors.bottlecrm.errors import (
    BottleCRMAuthError,
    BottleCRMError,
    BottleCRMNotFoundError,
    BottleCRMRetriableError,
    BottleCRMValidationError,
    error_for_status,
)
from leadbridge.connectors.bottlecrm.objects import (
    SHAPES,
    BottleCRMObject,
    ObjectShape,
    Record,
)
from leadbridge.connectors.ratelimits import RateInfo, parse_rate_headers

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100
REDACTED = "[redacted]"


class BottleCRMClient:
    """One user's session with one BottleCRM server.

    `base_url` is the server root (`https://crm.example.com`); the API lives under `/api/`.
    A `token` from an earlier session may be passed to skip the first login.
    """

    def __init__(
        self,
        base_url: str,
        email: str,
        password: str,
        *,
        token: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.email = email
        self._password = password
        self._token = token
        self.page_size = page_size
        self.logins = 0
        self.requests = 0  # HTTP requests sent (logins included), for budgets and run logs
        # what the last answer's headers said about rate limits (stock BottleCRM sends none;
        # one behind a rate-limiting proxy does)
        self.rate_info: RateInfo | None = None
        self._http = httpx.Client(
            base_url=self.base_url + "/api/",
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"BottleCRMClient({self.base_url!r}, email={self.email!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BottleCRMClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- authentication -------------------------------------------------------------------

    def login(self) -> None:
        """Get a fresh JWT for this user (tokens from BottleCRM 0.9.0 carry no expiry)."""
        # No Authorization header: a refused token would make the login itself fail.
        response = self._send("POST", "auth/login/", authenticated=False, json_body={
            "email": self.email, "password": self._password,
        })
        body = self._json(response)
        token = body.get("token") if isinstance(body, dict) else None
        if response.status_code == 200 and isinstance(token, str):
            self._token = token
            self.logins += 1
            return
        if response.status_code not in (200, 400, 401, 403):
            raise self._error(response, shape=None, record_id=None)
        reason = self._redact(_message_of(body) or f"HTTP {response.status_code}")
        raise BottleCRMAuthError(
            f"BottleCRM at {self.base_url} refused the login of {self.email}: {reason}. "
            "Check the e-mail and password of the connection.",
            status=response.status_code,
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        shape: ObjectShape | None = None,
        record_id: int | None = None,
    ) -> Any:
        """Send an authenticated request; log in again once if the token is refused."""
        if self._token is None:
            self.login()
        response = self._send(method, path, params=params, json_body=json_body)
        if response.status_code == 401:
            log.info("BottleCRM refused the token; logging in again as %s", self.email)
            self.login()
            response = self._send(method, path, params=params, json_body=json_body)
        if response.is_success:
            return self._json(response)
        raise self._error(response, shape=shape, record_id=record_id)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        headers = {"Authorization": f"JWT {self._token}"} if authenticated and self._token else {}
        self.requests += 1
        try:
            response = self._http.request(method, path, params=params, json=json_body,
                                          headers=headers)
        except httpx.TransportError as exc:
            raise BottleCRMRetriableError(
                f"BottleCRM at {self.base_url} did not answer {method} /api/{path}: "
                f"{type(exc).__name__}. Try again later.",
            ) from None
        rate = parse_rate_headers(response.headers)
        if rate:
            self.rate_info = rate
        return response

    # -- answers and errors ---------------------------------------------------------------

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            if response.is_success:
                raise BottleCRMError(
                    f"BottleCRM answered {response.request.method} {response.request.url.path} "
                    "with something that is not JSON.", status=response.status_code,
                ) from None
            return None

    def _redact(self, text: str) -> str:
        for secret in (self._password, self._token):
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    def _error(
        self,
        response: httpx.Response,
        *,
        shape: ObjectShape | None,
        record_id: int | None,
    ) -> BottleCRMError:
        status = response.status_code
        body = self._json(response)
        what = shape.name.value if shape else "request"
        which = f"{what} {record_id}" if record_id is not None else what
        where = f"{response.request.method} {response.request.url.path}"
        context: dict[str, Any] = {
            "object_name": shape.name.value if shape else None,
            "record_id": record_id,
            "status": status,
        }
        kind = error_for_status(status)
        if kind is BottleCRMValidationError:
            fields = {k: [self._redact(m) for m in v] for k, v in field_errors(body).items()}
            listed = "; ".join(
                f"{k}: {' '.join(m.rstrip('.') for m in v)}" for k, v in fields.items()
            )
            return BottleCRMValidationError(
                f"BottleCRM rejected {which} ({where}): {listed or 'no reason given'}. "
                "Fix these fields and send the record again.",
                field_errors=fields, **context,
            )
        reason = self._redact(_message_of(body) or f"HTTP {status}")
        if kind is BottleCRMAuthError:
            return BottleCRMAuthError(
                f"BottleCRM refused {where} for {self.email}: {reason}. "
                "Check the user's credentials and role.", **context,
            )
        if kind is BottleCRMNotFoundError:
            return BottleCRMNotFoundError(f"BottleCRM has no {which} ({where}).", **context)
        if kind is BottleCRMRetriableError:
            return BottleCRMRetriableError(
                f"BottleCRM failed {where} for {which}: {reason}. Try again later.",
                retry_after=_retry_after(response), **context,
            )
        return BottleCRMError(f"BottleCRM answered {where} with {reason}.", **context)

    # -- records --------------------------------------------------------------------------

    def list(
        self,
        obj: BottleCRMObject | str,
        *,
        filters: Mapping[str, str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[Record]:
        """Every record of `obj` the user may see, page by page (limit/offset).

        `filters` are BottleCRM's own list filters (for example `title` or `email`, which
        match case-insensitive substrings). Converted leads are never listed. A record is
        yielded once even when a page boundary moves under the listing.
        """
        shape = SHAPES[BottleCRMObject(obj)]
        limit = page_size or self.page_size
        if not shape.stable_order:
            first = self._page(shape, filters, limit=1, offset=0)
            limit = max(1, max(total for _, total in first))
        seen: set[int] = set()
        offset = 0
        while True:
            sections = self._page(shape, filters, limit=limit, offset=offset)
            for records, _ in sections:
                for record in records:
                    if record["id"] not in seen:
                        seen.add(record["id"])
                        yield record
            offset += limit
            if offset >= max(total for _, total in sections):
                return

    def _page(
        self,
        shape: ObjectShape,
        filters: Mapping[str, str] | None,
        *,
        limit: int,
        offset: int,
    ) -> builtins.list[tuple[builtins.list[Record], int]]:
        params = {**(filters or {}), "limit": limit, "offset": offset}
        answer = self._request("GET", f"{shape.name.value}/", params=params, shape=shape)
        return [section.page(answer) for section in shape.sections]

    def get(self, obj: BottleCRMObject | str, record_id: int) -> Record:
        """One record by id; `BottleCRMNotFoundError` when it does not exist."""
        shape = SHAPES[BottleCRMObject(obj)]
        answer = self._detail("GET", shape, record_id)
        record: Record = answer[shape.detail_key]
        return record

    def find(self, obj: BottleCRMObject | str, key: str) -> Record | None:
        """The record whose natural key equals `key` (case-insensitively), if there is one."""
        shape = SHAPES[BottleCRMObject(obj)]
        matches = [
            record for record in self.list(shape.name, filters={shape.key_filter: key})
            if str(record.get(shape.natural_key) or "").casefold() == key.casefold()
        ]
        exact = [record for record in matches if record.get(shape.natural_key) == key]
        best = exact or matches
        return best[0] if best else None

    def exists(self, obj: BottleCRMObject | str, record_id: int) -> bool:
        """Whether a record with this id exists (by listing, for objects that cannot 404)."""
        shape = SHAPES[BottleCRMObject(obj)]
        if shape.missing_is_404:
            try:
                self.get(shape.name, record_id)
            except BottleCRMNotFoundError:
                return False
            return True
        return any(record["id"] == record_id for record in self.list(shape.name))

    def create(self, obj: BottleCRMObject | str, fields: Mapping[str, Any]) -> int:
        """Create a record and return its id, found again through its natural key.

        List values (tags, `assigned_to`, `teams`, `contacts`) are sent JSON-encoded, as
        BottleCRM expects. A lead cannot be created with status `converted` (BottleCRM
        would store it and an account, then fail with HTTP 500): create it, then convert it
        with `update`.
        """
        shape = SHAPES[BottleCRMObject(obj)]
        if shape.name is BottleCRMObject.LEADS and fields.get("status") == "converted":
            raise BottleCRMValidationError(
                "A lead cannot be created as converted in BottleCRM: create it with another "
                "status, then update its status to converted.",
                field_errors={"status": ["A new lead cannot be created as converted."]},
                object_name=shape.name.value,
            )
        self._request("POST", f"{shape.name.value}/", json_body=_encode(fields), shape=shape)
        key = fields.get(shape.natural_key)
        record = self.find(shape.name, str(key)) if key is not None else None
        if record is None:
            raise BottleCRMError(
                f"BottleCRM accepted a new {shape.name.value} but it cannot be found by "
                f"{shape.natural_key}={key!r}; look for it in BottleCRM before sending it again.",
                object_name=shape.name.value,
            )
        return int(record["id"])

    def update(
        self,
        obj: BottleCRMObject | str,
        record_id: int,
        changes: Mapping[str, Any],
        *,
        merge: bool = True,
    ) -> None:
        """Change a record with PUT (BottleCRM has no PATCH).

        With `merge` (the default) the record is read first and its current writable fields
        and relations are sent with `changes` on top, because a PUT needs every required
        field and clears every relation (tags, assigned users, teams, contacts) it is not
        given. Without `merge`, `changes` is the whole PUT body. A value of None clears a
        field.
        """
        shape = SHAPES[BottleCRMObject(obj)]
        body: dict[str, Any] = {}
        if merge:
            body = shape.writable_fields(self.get(shape.name, record_id))
        elif shape.put_creates_when_missing and not self.exists(shape.name, record_id):
            raise BottleCRMNotFoundError(
                f"BottleCRM has no {shape.name.value} {record_id}.",
                object_name=shape.name.value, record_id=record_id,
            )
        body.update(changes)
        self._detail("PUT", shape, record_id, json_body=_encode(body))

    def delete(self, obj: BottleCRMObject | str, record_id: int) -> None:
        """Delete a record; `BottleCRMNotFoundError` when it does not exist."""
        shape = SHAPES[BottleCRMObject(obj)]
        self._detail("DELETE", shape, record_id)

    def _detail(
        self,
        method: str,
        shape: ObjectShape,
        record_id: int,
        *,
        json_body: Mapping[str, Any] | None = None,
    ) -> Any:
        """A request on `/<object>/<id>/`, telling a missing record from a server failure.

        Opportunities and tasks answer a missing id with HTTP 500, so a 5xx there is checked
        against the list before it is reported as retriable.
        """
        path = f"{shape.name.value}/{int(record_id)}/"
        try:
            return self._request(method, path, json_body=json_body, shape=shape,
                                 record_id=record_id)
        except BottleCRMRetriableError as exc:
            if shape.missing_is_404 or exc.status is None or exc.status < 500:
                raise
            if self.exists(shape.name, record_id):
                raise
            raise BottleCRMNotFoundError(
                f"BottleCRM has no {shape.name.value} {record_id} ({method} /api/{path}).",
                object_name=shape.name.value, record_id=record_id, status=exc.status,
            ) from None


def _encode(fields: Mapping[str, Any]) -> dict[str, Any]:
    """BottleCRM reads list parameters as JSON text inside the body (`"tags": "[\\"a\\"]"`)."""
    return {
        key: json.dumps(list(value)) if isinstance(value, list | tuple | set) else value
        for key, value in fields.items()
    }


def field_errors(body: Any) -> dict[str, list[str]]:
    """Field → messages from BottleCRM's several error shapes.

    It answers `{"errors": {"title": [...]}}`, `{"errors": {"contact_errors": {...},
    "address_errors": [{...}]}}`, `{"contact_errors": {...}, "error": true}` or a bare
    string; wrappers ending in `_errors` are unwrapped and a bare string becomes `__all__`.
    """
    found: dict[str, list[str]] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in ("error", "message", "detail") and not isinstance(value, list):
                    if key != "error" and isinstance(value, str):
                        found.setdefault(name, []).append(value)
                    continue
                child = name if key == "errors" or str(key).endswith("_errors") else str(key)
                walk(value, child)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, name)
        elif node is not None:
            found.setdefault(name, []).append(str(node))

    walk(body, "__all__")
    return found


def _message_of(body: Any) -> str | None:
    """The human message of an error answer, if it has one."""
    if isinstance(body, Mapping):
        for key in ("errors", "detail", "message"):
            value = body.get(key)
            if isinstance(value, str):
                return value
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
