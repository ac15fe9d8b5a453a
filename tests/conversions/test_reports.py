"""Attribution reports: sums equal the conversions' totals; periods, time zones, malformed
parameters through the API and the CLI; CRM records whose marketing ids lead nowhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Engine, insert
from starlette.testclient import TestClient

from attribution_seed import T0, H, call, convert, marketing_source, visitor
from leadbridge.conversions.reports import (
    attribution_report,
    crm_records_without_marketing,
    parse_period,
)
from leadbridge.errors import InputError
from leadbridge.store.tables import connections, crm_marketing_refs

THREE = (H(0, "organic_search", "https://www.google.com/"),
         H(60, "email", None, "april", "newsletter"),
         H(120, "paid_search", "https://www.google.com/", "brand", "google"))


def seed(engine: Engine) -> None:
    """Three conversions over two days and two currencies."""
    with engine.begin() as conn:
        bv = visitor(conn, "r1", *THREE)
        other = visitor(conn, "r2", H(0, "social", "https://t.co/"))
        convert(conn, T0 + timedelta(hours=3), bv=bv, amount="100", margin="40")
        convert(conn, T0 + timedelta(hours=3), bv=other, amount="50.50", margin="10")
        convert(conn, T0 + timedelta(days=1), bv=other, amount="20", currency="USD",
                action="quote")


def table(report: object) -> dict[tuple[str, str | None], tuple[Decimal, ...]]:
    return {(r.key, r.currency): (r.conversions, r.revenue, r.margin)
            for r in report.rows}  # type: ignore[attr-defined]


def test_linear_shares_are_rounded_so_they_add_up_to_the_totals(engine: Engine) -> None:
    seed(engine)
    with engine.connect() as conn:
        report = attribution_report(conn, model="linear", by="channel")
    d = Decimal
    assert table(report) == {
        ("email", "EUR"): (d("0.34"), d("33.34"), d("13.34")),  # a tie: first by name
        ("organic_search", "EUR"): (d("0.33"), d("33.33"), d("13.33")),
        ("paid_search", "EUR"): (d("0.33"), d("33.33"), d("13.33")),
        ("social", "EUR"): (d("1.00"), d("50.50"), d("10.00")),
        ("social", "USD"): (d("1.00"), d("20.00"), d("0.00")),
    }
    assert [(t.currency, t.conversions, t.revenue, t.margin) for t in report.totals] == [
        ("EUR", 2, d("150.50"), d("50.00")), ("USD", 1, d("20.00"), d("0.00"))]


@pytest.mark.parametrize("model", ["first_touch", "last_touch", "linear", "position_based"])
@pytest.mark.parametrize("by", ["channel", "source", "campaign"])
def test_every_model_and_dimension_adds_up_to_the_totals(engine: Engine, model: str,
                                                         by: str) -> None:
    seed(engine)
    with engine.connect() as conn:
        report = attribution_report(conn, model=model, by=by)
    for total in report.totals:
        mine = [r for r in report.rows if r.currency == total.currency]
        assert sum(r.revenue for r in mine) == total.revenue
        assert sum(r.margin for r in mine) == total.margin
        assert sum(r.conversions for r in mine) == total.conversions


def test_position_based_and_first_touch_by_source(engine: Engine) -> None:
    seed(engine)
    with engine.connect() as conn:
        position = attribution_report(conn, model="position_based", by="source")
        first = attribution_report(conn, model="first", by="campaign")
    eur = {k: v[1] for (k, cur), v in table(position).items() if cur == "EUR"}
    # google.com first (40 %), newsletter middle (20 %), google last (40 %), t.co all of 50.50
    assert eur == {"google.com": Decimal("40.00"), "newsletter": Decimal("20.00"),
                   "google": Decimal("40.00"), "t.co": Decimal("50.50")}
    assert {k: v[1] for (k, cur), v in table(first).items() if cur == "EUR"} == {
        "(none)": Decimal("150.50")}


def test_period_and_action_select_conversions_by_their_time(engine: Engine) -> None:
    seed(engine)
    day = T0.date().isoformat()
    with engine.connect() as conn:
        first_day = attribution_report(conn, model="last_touch", by="channel",
                                       since=parse_period(day, day)[0],
                                       until=parse_period(day, day)[1])
        quotes = attribution_report(conn, model="last_touch", by="channel", action="quote")
        # 11:00 at UTC-1 is 12:00 UTC, the time of the first two conversions: included
        since, until = parse_period("2026-03-02T11:00:00-01:00", None)
        late = attribution_report(conn, model="last_touch", by="channel", since=since)
    assert [(t.currency, t.conversions) for t in first_day.totals] == [("EUR", 2)]
    assert [(t.currency, t.conversions) for t in quotes.totals] == [("USD", 1)]
    assert since == datetime(2026, 3, 2, 12, 0, tzinfo=UTC) and until is None
    assert [(t.currency, t.conversions) for t in late.totals] == [("EUR", 2), ("USD", 1)]


def test_periods_whose_bounds_fall_on_another_day_in_their_zone_are_exact(
        engine: Engine) -> None:
    midnight = datetime(2026, 3, 3, tzinfo=UTC)
    with engine.begin() as conn:
        bv = visitor(conn, "late-night", H(0, "social", "https://t.co/"))
        convert(conn, midnight - timedelta(milliseconds=500), bv=bv, amount="1")
        convert(conn, midnight, bv=bv, amount="2")
        convert(conn, midnight + timedelta(hours=23, minutes=59), bv=bv, amount="4")

    def revenue(since: str | None, until: str | None) -> Decimal:
        start, stop = parse_period(since, until)
        with engine.connect() as conn:
            report = attribution_report(conn, model="last_touch", by="channel", since=start,
                                        until=stop)
        return sum((t.revenue for t in report.totals), Decimal(0))

    # 01:30 on the 3rd at +02:00 is 23:30 on the 2nd in UTC; 02:00 there is midnight UTC
    assert revenue("2026-03-03T01:30:00+02:00", "2026-03-03T02:00:00+02:00") == 1
    assert revenue("2026-03-03T01:30:00+02:00", "2026-03-03T02:00:00.001+02:00") == 3
    # 20:00 on the 3rd at -05:00 is 01:00 on the 4th in UTC: the last one is before it
    assert revenue("2026-03-03", "2026-03-03T20:00:00-05:00") == 6
    assert revenue("2026-03-03", "2026-03-03") == 6 and revenue("2026-03-02", None) == 7


def test_rows_and_totals_per_day_week_and_month_in_utc(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "p1", H(0, "referral", "https://a.example/"))
        # Sunday 2026-03-01 23:30 at UTC+2 is Sunday 21:30 UTC; then Monday, then April
        for at, amount in ((datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=2))),
                            "10"), (datetime(2026, 3, 2, 12, tzinfo=UTC), "20"),
                           (datetime(2026, 4, 1, tzinfo=UTC), "40")):
            convert(conn, at, bv=bv if at > T0 else None, amount=amount)
    with engine.connect() as conn:
        def per(interval: str) -> list[tuple[str | None, str, Decimal]]:
            report = attribution_report(conn, model="linear", by="channel", interval=interval)
            assert sum(t.revenue for t in report.totals) == Decimal("70.00")
            return [(t.period, t.currency or "", t.revenue) for t in report.totals]

        assert per("month") == [("2026-03", "EUR", Decimal("30.00")),
                                ("2026-04", "EUR", Decimal("40.00"))]
        assert per("week") == [("2026-02-23", "EUR", Decimal("10.00")),
                               ("2026-03-02", "EUR", Decimal("20.00")),
                               ("2026-03-30", "EUR", Decimal("40.00"))]
        assert per("day")[0] == ("2026-03-01", "EUR", Decimal("10.00"))
        monthly = attribution_report(conn, model="last", by="channel", interval="month")
        assert [(r.period, r.key, r.revenue) for r in monthly.rows] == [
            ("2026-03", "referral", Decimal("20.00")), ("2026-03", "direct", Decimal("10.00")),
            ("2026-04", "referral", Decimal("40.00"))]
        with pytest.raises(InputError, match="cannot report per 'year'; use one of day, week"):
            attribution_report(conn, model="linear", by="channel", interval="year")


def test_period_bounds_are_checked_with_clear_errors() -> None:
    assert parse_period("2026-03-01", "2026-03-01") == (
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    with pytest.raises(InputError, match=r"bad from: '2026-13-01' is not an ISO 8601"):
        parse_period("2026-13-01", None)
    with pytest.raises(InputError, match="the period is empty: from 2026-03-02 is not before"):
        parse_period("2026-03-02", "2026-03-01")


def refs(engine: Engine, *rows: tuple[str, str, str | None, str | None]) -> None:
    with engine.begin() as conn:
        cid = conn.execute(insert(connections).values(
            name="crm1", kind="memory", settings={}, created_at=T0, updated_at=T0,
            enabled=True).returning(connections.c.id)).scalar_one()
        for obj, rid, key, ref in rows:
            conn.execute(insert(crm_marketing_refs).values(
                connection_id=cid, remote_object=obj, remote_id=rid, visitor_key=key,
                call_ref=ref, seen_at=T0, due=False))


def test_crm_records_whose_ids_lead_nowhere_are_listed_with_the_reason(
        engine: Engine) -> None:
    with engine.begin() as conn:
        visitor(conn, "seen", H(0, "direct"))
        visitor(conn, "nohits")
        visitor(conn, "botonly", H(0, "direct", bot=True))
        call(conn, "CALL-1", "+1", marketing_source(conn, "TV", "+1"))
    refs(engine, ("leads", "1", "seen", None), ("leads", "2", "nohits", None),
         ("leads", "3", "typo", "CALL-1"), ("contacts", "4", "botonly", "CALL-404"),
         ("opportunities", "5", None, "CALL-405"))
    with engine.connect() as conn:
        found = {(r.object, r.id): r.reason for r in crm_records_without_marketing(conn)}
        assert crm_records_without_marketing(conn, "other") == []
    assert found == {
        ("leads", "2"): "visitor id nohits: no visits recorded",
        ("contacts", "4"): "visitor id botonly: no visits recorded; call reference CALL-404: "
                           "no such call recorded",
        ("opportunities", "5"): "call reference CALL-405: no such call recorded",
    }


def test_report_api(client: TestClient, auth: dict[str, str], hub: object) -> None:
    seed(hub.engine)  # type: ignore[attr-defined]
    got = client.get("/api/v1/attribution/report", headers=auth,
                     params={"model": "linear", "by": "channel", "from": "2026-03-02",
                             "to": "2026-03-02"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["from"] == "2026-03-02T00:00:00Z" and body["to"] == "2026-03-03T00:00:00Z"
    assert body["totals"] == [{"period": None, "currency": "EUR", "conversions": 2,
                               "revenue": "150.50", "margin": "50.00"}]
    assert {r["key"]: r["revenue"] for r in body["rows"]} == {
        "social": "50.50", "paid_search": "33.33", "email": "33.34", "organic_search": "33.33"}
    assert client.get("/api/v1/attribution/report").status_code == 401


@pytest.mark.parametrize(("params", "detail"), [
    ({"model": "u-shaped"}, "unknown attribution model 'u-shaped'; use one of first_touch, "
                            "last_touch, linear, position_based"),
    ({"by": "medium"}, "cannot report by 'medium'; use one of channel, source, campaign"),
    ({"from": "yesterday"}, "bad from: 'yesterday' is not an ISO 8601 date or time"),
    ({"to": "2026-02-30"}, "bad to: '2026-02-30' is not an ISO 8601 date or time"),
    ({"from": "2026-03-05", "to": "2026-03-01"}, "the period is empty"),
    ({"interval": "hour"}, "cannot report per 'hour'; use one of day, week, month"),
])
def test_report_api_names_what_is_wrong(client: TestClient, auth: dict[str, str],
                                        params: dict[str, str], detail: str) -> None:
    got = client.get("/api/v1/attribution/report", headers=auth, params=params)
    assert got.status_code == 400
    assert got.json()["error"] == "invalid" and got.json()["detail"].startswith(detail)


def test_records_and_reattribute_api(client: TestClient, auth: dict[str, str],
                                     hub: object) -> None:
    engine: Engine = hub.engine  # type: ignore[attr-defined]
    seed(engine)
    refs(engine, ("leads", "9", "ghost", None))
    got = client.get("/api/v1/attribution/crm-records-without-marketing", headers=auth)
    assert got.json() == [{"connection": "crm1", "object": "leads", "id": "9",
                           "visitor_id": "ghost", "call_ref": None,
                           "reason": "visitor id ghost: never seen by the tracker"}]
    again = client.post("/api/v1/attribution/reattribute", headers=auth,
                        params={"since": "2026-03-03"})
    assert again.json() == {"conversions": 1}
    bad = client.post("/api/v1/attribution/reattribute", headers=auth, params={"since": "x"})
    assert bad.status_code == 400 and "bad since: 'x'" in bad.json()["detail"]



def test_report_cli(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    seed(engine)
    done = cli("conversions", "report", "--model", "position-based", "--by", "source",
               "--from", "2026-03-02", "--to", "2026-03-03")
    assert done.exit_code == 0, done.output
    out = " ".join(done.output.split())
    assert "position_based attribution by source" in out
    assert "google.com │ EUR │ 0.40 │ 40.00 │ 16.00" in out
    assert "total │ EUR │ 2 │ 150.50 │ 50.00" in out and "total │ USD │ 1 │ 20.00" in out
    bad = cli("conversions", "report", "--model", "bogus")
    assert bad.exit_code == 2 and "unknown attribution model 'bogus'" in bad.output
    bad_date = cli("conversions", "report", "--from", "03/02/2026")
    assert bad_date.exit_code == 2 and "bad from: '03/02/2026'" in bad_date.output
    monthly = cli("conversions", "report", "--per", "month")
    assert "2026-03 │ total │ EUR │ 2 │ 150.50" in " ".join(monthly.output.split())
    assert "0 conversions credited again" in cli("conversions", "reattribute", "--since",
                                                 "2030-01-01").output
    assert "every CRM record" in cli("conversions", "crm-without-marketing").output
