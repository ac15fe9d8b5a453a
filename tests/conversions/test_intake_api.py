"""The intake API: calls, conversions in real time, CSV imports, marketing sources."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from conversion_seed import CALL, OTHER, VISITOR, counts, seed, stored
from leadbridge.hub import Hub
from leadbridge.store.tables import calls

HEADER = "action,title,occurred_at,transaction_ref,amount,currency,margin,visitor_id,call_ref\n"


def test_every_intake_endpoint_needs_an_api_key(client: TestClient) -> None:
    for path in ("/api/v1/calls", "/api/v1/conversions", "/api/v1/conversions/import",
                 "/api/v1/marketing-sources"):
        assert client.post(path, json={}).status_code == 401
    assert client.get("/api/v1/conversions/imports/1").status_code == 401


def test_a_call_is_linked_to_its_number_source_and_visitor(client: TestClient, hub: Hub,
                                                           auth: dict[str, str]) -> None:
    ids = seed(hub.engine)
    made = client.post("/api/v1/marketing-sources", headers=auth, json={
        "name": "Radio spring", "channel": "campaign", "source": "radio", "campaign": "spring",
        "numbers": ["+44 20 7183 8750"]})
    assert made.status_code == 201, made.text
    source = made.json()
    assert source["numbers"] == ["+442071838750"]
    body = {"call_ref": "C-77", "tracking_number": "+442071838750",
            "caller_number": "+44 7700 900123", "started_at": "2026-03-01T10:00:00+01:00",
            "duration_s": 95, "visitor_id": VISITOR.upper(), "site_id": ids["site"]}
    got = client.post("/api/v1/calls", headers=auth, json=body)
    assert got.status_code == 201, got.text
    call = got.json()
    assert (call["created"], call["caller_number"], call["marketing_source_id"],
            call["browser_visitor_id"], call["contact_id"], call["warnings"]) == (
        True, "+447700900123", source["id"], ids["visitor"], ids["contact"], [])
    # the same reference again (the call ended): updated, not doubled
    again = client.post("/api/v1/calls", headers=auth, json={**body, "duration_s": 300})
    assert again.status_code == 200 and again.json()["id"] == call["id"]
    with hub.engine.connect() as conn:
        row = conn.execute(select(calls).where(calls.c.call_ref == "C-77")).one()
    assert row.duration_s == 300 and row.started_at.hour == 9


def test_a_call_to_an_unregistered_number_is_stored_with_warnings(
        client: TestClient, hub: Hub, auth: dict[str, str]) -> None:
    seed(hub.engine)
    got = client.post("/api/v1/calls", headers=auth, json={
        "call_ref": "C-1", "tracking_number": "+33142685300", "started_at": "2026-03-01",
        "visitor_id": "aaaaaaaaaaaaaaaa"})
    assert got.status_code == 201
    assert got.json()["warnings"] == [
        "tracking number +33142685300 is not registered to a marketing source",
        "unknown visitor id aaaaaaaaaaaaaaaa: the call is stored unlinked"]


def test_a_malformed_call_is_refused_naming_the_field(client: TestClient, hub: Hub,
                                                      auth: dict[str, str]) -> None:
    seed(hub.engine)
    base = {"call_ref": "C-1", "tracking_number": "+442071838750",
            "started_at": "2026-03-01T10:00:00"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**base, "caller_number": "07700 900123"}, 400, "caller_number '07700 900123' is not"),
        ({**base, "tracking_number": "+44 12"}, 400, "tracking_number '+44 12' is not a possible"),
        ({**base, "started_at": "yesterday!"}, 400, "bad date: started_at 'yesterday!'"),
        ({**base, "duration_s": -1}, 422, "duration_s"),
        ({**base, "call_ref": "tab\there"}, 400, "invalid call reference"),
        ({k: v for k, v in base.items() if k != "call_ref"}, 422, "call_ref"),
    ]
    for body, status, words in cases:
        got = client.post("/api/v1/calls", headers=auth, json=body)
        assert got.status_code == status, (body, got.text)
        assert words in got.json()["detail"], got.text
    bad_json = client.post("/api/v1/calls", headers={**auth, "content-type": "application/json"},
                           content=b'{"call_ref": ')
    assert bad_json.status_code == 422
    assert counts(hub.engine)["calls"] == 2  # the seeded ones only


def test_conversions_in_real_time_answer_per_item(client: TestClient, hub: Hub,
                                                  auth: dict[str, str]) -> None:
    ids = seed(hub.engine)
    items = [
        {"vid": VISITOR, "dt": "2026-03-01T10:00:00Z", "txr": "A", "txv": 10, "txc": "EUR"},
        {"visitor_id": OTHER, "occurred_at": "2026-03-01", "amount": "-1", "currency": "EUR"},
        "not an object",
        {"callRef": CALL, "occurred_at": "2026-03-01", "transaction_ref": "A"},
        {"call_ref": "NOPE", "occurred_at": "2026-03-01"},
    ]
    got = client.post("/api/v1/conversions", headers=auth, json={"conversions": items})
    assert got.status_code == 200, got.text
    doc = got.json()
    assert (doc["accepted"], doc["merged"], doc["rejected"]) == (1, 1, 3)
    statuses = [(r["index"], r["status"], r.get("reason", "").split(":")[0])
                for r in doc["results"]]
    assert statuses == [(0, "accepted", ""), (1, "rejected", "negative amount"),
                        (2, "rejected", "each conversion must be a JSON object"),
                        (3, "merged", "duplicate of transaction A"),
                        (4, "rejected", "invalid call reference")]
    [row] = stored(hub.engine)
    assert str(row.id) == doc["results"][0]["id"]
    assert (row.source, row.browser_visitor_id, row.contact_id) == (
        "api", ids["visitor"], ids["contact"])


def test_one_conversion_gets_201_then_200_as_a_duplicate(client: TestClient, hub: Hub,
                                                         auth: dict[str, str]) -> None:
    seed(hub.engine)
    one = {"visitor_id": VISITOR, "occurred_at": "2026-03-01", "transaction_ref": "Z"}
    first = client.post("/api/v1/conversions", headers=auth, json=one)
    assert first.status_code == 201 and first.json()["status"] == "accepted"
    second = client.post("/api/v1/conversions", headers=auth, json=one)
    assert second.status_code == 200 and second.json()["status"] == "merged"
    bad = client.post("/api/v1/conversions", headers=auth, json={"occurred_at": "2026-03-01"})
    assert bad.status_code == 400
    assert bad.json()["reason"].startswith("missing both ids")


def test_bad_json_and_oversize_bodies_are_refused(client: TestClient, hub: Hub,
                                                  auth: dict[str, str]) -> None:
    hub.settings.conversions.max_json_items = 3
    got = client.post("/api/v1/conversions", headers={**auth, "content-type": "application/json"},
                      content=b'[{"vid": ')
    assert got.status_code == 400 and "not valid JSON" in got.json()["detail"]
    got = client.post("/api/v1/conversions", headers=auth, json=[{}] * 4)
    assert got.status_code == 413 and got.json()["detail"] == "4 conversions; the limit is 3"
    got = client.post("/api/v1/conversions", headers=auth, json=42)
    assert got.status_code == 400
    got = client.post("/api/v1/conversions", headers=auth, content=b"x" * (4 * 1024 * 1024 + 1))
    assert got.status_code == 413
    assert counts(hub.engine)["conversions"] == 0


def test_a_csv_import_through_the_api_returns_its_report(client: TestClient, hub: Hub,
                                                         auth: dict[str, str]) -> None:
    seed(hub.engine)
    body = (HEADER + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n"
            + "sale,,2026-03-01,T-2,10,EUR,,nobody00nobody00,\n")
    headers = {**auth, "content-type": "text/csv"}
    dry = client.post("/api/v1/conversions/import?dry_run=true", headers=headers,
                      content=body.encode())
    assert dry.status_code == 200
    assert (dry.json()["accepted"], dry.json()["rejected"], dry.json()["import_id"]) == (
        1, 1, None)
    assert counts(hub.engine)["conversion_imports"] == 0
    got = client.post("/api/v1/conversions/import?filename=march.csv", headers=headers,
                      content=body.encode())
    report = got.json()
    assert got.status_code == 200
    assert (report["rows_read"], report["accepted"], report["merged"], report["rejected"]) == (
        2, 1, 0, 1)
    assert report["rejected_by_reason"] == {"unknown visitor id": 1}
    detail = client.get(f"/api/v1/conversions/imports/{report['import_id']}", headers=auth)
    assert detail.status_code == 200
    doc = detail.json()
    assert (doc["filename"], doc["source"], doc["status"]) == ("march.csv", "api", "done")
    assert doc["rejections"] == [{
        "row": 3, "reason": "unknown visitor id: nobody00nobody00 was never seen by the "
                            "tracker", "raw": "sale,,2026-03-01,T-2,10,EUR,,nobody00nobody00,",
        "truncated": False}]
    assert client.get("/api/v1/conversions/imports/999", headers=auth).status_code == 404


def test_a_csv_import_as_a_multipart_upload(client: TestClient, hub: Hub,
                                            auth: dict[str, str]) -> None:
    seed(hub.engine)
    body = "\ufeffvid;dt;txr\n" + f"{VISITOR};2026-03-01;M-1\n"
    got = client.post("/api/v1/conversions/import", headers=auth,
                      files={"file": ("upload.csv", body.encode(), "text/csv")})
    assert got.status_code == 200, got.text
    assert (got.json()["filename"], got.json()["accepted"]) == ("upload.csv", 1)
    missing = client.post("/api/v1/conversions/import", headers=auth,
                          files={"other": ("x.csv", b"a", "text/csv")})
    assert missing.status_code == 400 and '"file" part' in missing.json()["detail"]


def test_a_refused_file_is_a_400_with_its_report(client: TestClient, hub: Hub,
                                                 auth: dict[str, str]) -> None:
    got = client.post("/api/v1/conversions/import", headers={**auth, "content-type": "text/csv"},
                      content="vid,dt\nabc,2026-03-01 caf\u00e9\n".encode("latin-1"))
    assert got.status_code == 400
    assert got.json()["status"] == "failed" and "not UTF-8" in got.json()["detail"]
    hub.settings.conversions.max_csv_bytes = 1024
    big = client.post("/api/v1/conversions/import", headers={**auth, "content-type": "text/csv"},
                      content=b"vid,dt\n" + b"a,2026-03-01\n" * 100)
    assert big.status_code == 413


def test_marketing_sources_and_numbers_are_managed_through_the_api(
        client: TestClient, auth: dict[str, str]) -> None:
    a = client.post("/api/v1/marketing-sources", headers=auth,
                    json={"name": "Print", "channel": "campaign"}).json()
    b = client.post("/api/v1/marketing-sources", headers=auth, json={"name": "Web"}).json()
    assert client.post("/api/v1/marketing-sources", headers=auth,
                       json={"name": "Print"}).status_code == 400
    assert client.post("/api/v1/marketing-sources", headers=auth,
                       json={"name": "X", "channel": "tv"}).status_code == 400
    added = client.post(f"/api/v1/marketing-sources/{a['id']}/numbers", headers=auth,
                        json={"number": "+1 415 555 2671"})
    assert added.status_code == 201 and added.json()["numbers"] == ["+14155552671"]
    # giving the number to another source moves it
    client.post(f"/api/v1/marketing-sources/{b['id']}/numbers", headers=auth,
                json={"number": "+14155552671"})
    listed = {s["name"]: s["numbers"]
              for s in client.get("/api/v1/marketing-sources", headers=auth).json()}
    assert listed == {"Print": [], "Web": ["+14155552671"]}
    updated = client.put(f"/api/v1/marketing-sources/{b['id']}", headers=auth,
                         json={"channel": "paid_search", "source": "google"})
    assert updated.json()["channel"] == "paid_search"
    assert client.delete("/api/v1/tracking-numbers/+14155552671",
                         headers=auth).status_code == 204
    assert client.delete("/api/v1/tracking-numbers/+14155552671",
                         headers=auth).status_code == 404
    assert client.post("/api/v1/marketing-sources/999/numbers", headers=auth,
                       json={"number": "+14155552671"}).status_code == 404
