"""Conversions in: one or many as JSON in real time, or a CSV file with an import report.

`POST /api/v1/conversions` answers per item, by index, like the bulk hit endpoint: the good
ones are stored, the duplicates merged, the bad ones reported with their reason.
"""

from __future__ import annotations

import json
from tempfile import SpooledTemporaryFile
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from leadbridge.api.deps import ConnDep, CurrentKey, HubDep
from leadbridge.conversions.fields import ConversionRow, RowParser, RowRejected
from leadbridge.conversions.importer import get_import, import_csv, rule_from_settings
from leadbridge.conversions.intake import ACCEPTED, ConversionWriter, Outcome
from leadbridge.errors import InputError, TooLarge
from leadbridge.hub import Hub
from leadbridge.store.db import lost_a_race

router = APIRouter(prefix="/api/v1/conversions", tags=["conversions"])

_SPOOL = 8 * 1024 * 1024
_JSON_LIMIT = 4 * 1024 * 1024


def _error(status: int, reason: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": reason, "detail": detail}, status_code=status)


def _declared_size(request: Request, limit: int) -> int | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise TooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
        return int(declared)
    return None


def _store(hub: Hub, rows: list[ConversionRow]) -> list[Outcome]:
    settings = hub.settings.conversions
    for attempt in (1, 2):
        try:
            with hub.engine.connect() as conn, conn.begin():
                writer = ConversionWriter(conn, rule=rule_from_settings(settings), source="api")
                return writer.write(rows)
        except DBAPIError as exc:
            # stored at the same moment by another request, or a deadlock with it
            if attempt == 2 or not lost_a_race(exc):
                raise
    raise AssertionError("unreachable")


@router.post("", responses={201: {"description": "one conversion stored"},
                            200: {"description": "per-item results, or one merged duplicate"},
                            400: {"description": "bad JSON, or the one conversion is invalid"},
                            413: {"description": "too many conversions or bytes"}})
async def post_conversions(request: Request, hub: HubDep, _key: CurrentKey) -> JSONResponse:
    """One conversion object, a list, or `{"conversions": [...]}`.

    Fields: action (default "sale"), title, occurred_at (ISO 8601; no zone = UTC; a date =
    23:59:59 UTC), transaction_ref, amount, currency (ISO 4217), margin, visitor_id and/or
    call_ref, site_id; the call-tracking names act, t, dt, txr, txv, txc, vid, callRef too.
    """
    try:
        _declared_size(request, _JSON_LIMIT)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > _JSON_LIMIT:
                raise TooLarge(f"request body is over the {_JSON_LIMIT}-byte limit")
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"body is not valid JSON: {exc}") from None
    except TooLarge as exc:
        return _error(413, exc.reason, str(exc))
    except InputError as exc:
        return _error(400, exc.reason, str(exc))
    single = isinstance(doc, dict) and "conversions" not in doc
    entries = [doc] if single else (doc.get("conversions") if isinstance(doc, dict) else doc)
    if not isinstance(entries, list):
        return _error(400, "invalid", 'send one conversion object, a list, or '
                                      '{"conversions": [...]}')
    limit = hub.settings.conversions.max_json_items
    if len(entries) > limit:
        return _error(413, "too_large", f"{len(entries)} conversions; the limit is {limit}")
    parser = RowParser.for_objects()
    results: list[dict[str, Any]] = []
    valid: list[tuple[int, ConversionRow]] = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise RowRejected("each conversion must be a JSON object")
            valid.append((index, parser.parse_object(entry)))
            results.append({"index": index, "status": "pending"})
        except RowRejected as exc:
            results.append({"index": index, "status": "rejected", "reason": exc.reason})
    outcomes = await run_in_threadpool(_store, hub, [row for _, row in valid]) if valid else []
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        result: dict[str, Any] = {"index": index, "status": outcome.status}
        if outcome.conversion_id is not None:
            result["id"] = str(outcome.conversion_id)
        if outcome.reason is not None:
            result["reason"] = outcome.reason
        results[index] = result
    if single:
        r = results[0]
        code = 201 if r["status"] == ACCEPTED else 200 if r["status"] == "merged" else 400
        return JSONResponse(r, status_code=code)
    totals = {s: sum(1 for r in results if r["status"] == s)
              for s in ("accepted", "merged", "rejected")}
    return JSONResponse({**totals, "results": results})


@router.post("/import", responses={
    200: {"description": "the import report (counts add up to rows_read)"},
    400: {"description": "the file was refused whole: the report says why"},
    411: {"description": "a multipart upload needs a Content-Length"},
    413: {"description": "the file is over conversions.max_csv_bytes"}})
async def post_import(
    request: Request,
    hub: HubDep,
    _key: CurrentKey,
    dry_run: Annotated[bool, Query(description="validate and report; write nothing")] = False,
    filename: Annotated[str | None, Query(max_length=300)] = None,
) -> JSONResponse:
    """A CSV of conversions as the body (text/csv) or as the `file` part of a multipart form.

    Header `action,title,occurred_at,transaction_ref,amount,currency,margin,visitor_id,
    call_ref` (or act,t,dt,txr,txv,txc,vid,callRef), UTF-8 with or without BOM, comma or
    semicolon separated.
    """
    limit = hub.settings.conversions.max_csv_bytes
    stream: IO[bytes]
    name = filename or "upload.csv"
    try:
        declared = _declared_size(request, limit)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            if declared is None:
                return _error(411, "length_required",
                              "a multipart upload needs a Content-Length header")
            form = await request.form(max_files=1, max_fields=10)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InputError('send the CSV as the "file" part of the form')
            stream = upload.file
            name = filename or upload.filename or name
        else:
            spool = SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - closed below
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    spool.close()
                    raise TooLarge(f"request body is over the {limit}-byte limit")
                spool.write(chunk)
            spool.seek(0)
            stream = spool
    except TooLarge as exc:
        return _error(413, exc.reason, str(exc))
    except InputError as exc:
        return _error(400, exc.reason, str(exc))
    try:
        report = await run_in_threadpool(
            import_csv, hub.engine, stream, name=name, settings=hub.settings.conversions,
            source="api", dry_run=dry_run)
    finally:
        stream.close()
    body = report.to_dict()
    if report.status != "done":
        return JSONResponse({"error": "invalid_file", "detail": report.message, **body},
                            status_code=400)
    return JSONResponse(body)


class RejectionPublic(BaseModel):
    row: int = Field(description="the line in the file; the header is line 1")
    reason: str
    raw: str
    truncated: bool


class ImportPublic(BaseModel):
    id: int
    source: str
    filename: str | None
    sha256: str | None
    status: str
    message: str | None
    rows_read: int
    accepted: int
    merged: int
    rejected: int
    started_at: str
    finished_at: str | None
    rejections: list[RejectionPublic]


@router.get("/imports/{import_id}", response_model=ImportPublic)
def get_one_import(
    import_id: int, conn: ConnDep, _key: CurrentKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ImportPublic:
    """An import's counts and a page of its rejected rows (line, reason, raw text)."""
    record, rejections = get_import(conn, import_id, limit=limit, offset=offset)
    return ImportPublic(
        id=record.id, source=record.source, filename=record.filename, sha256=record.sha256,
        status=record.status, message=record.message, rows_read=record.rows_read,
        accepted=record.accepted, merged=record.merged, rejected=record.rejected,
        started_at=record.started_at.isoformat(),
        finished_at=record.finished_at.isoformat() if record.finished_at else None,
        rejections=[RejectionPublic(row=r.row_number, reason=r.reason, raw=r.raw,
                                    truncated=r.truncated) for r in rejections])
