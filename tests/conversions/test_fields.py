"""One conversion's fields: dates and zones, amounts, currencies, ids, headers and aliases."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from leadbridge.conversions.fields import RowParser, RowRejected, parse_occurred_at

HEADER = ["action", "title", "occurred_at", "transaction_ref", "amount", "currency", "margin",
          "visitor_id", "call_ref"]


def row(**values: str) -> list[str]:
    base = {"occurred_at": "2026-03-01T10:00:00", "visitor_id": "0123456789ABCDEF"}
    base.update(values)
    return [base.get(h, "") for h in HEADER]


def reason(**values: str) -> str:
    with pytest.raises(RowRejected) as caught:
        RowParser(HEADER).parse_cells(row(**values))
    return caught.value.reason


@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-03-01T14:30:00+02:00", datetime(2026, 3, 1, 12, 30, tzinfo=UTC)),
    ("2026-03-01T14:30:00Z", datetime(2026, 3, 1, 14, 30, tzinfo=UTC)),
    ("2026-03-01T14:30:00", datetime(2026, 3, 1, 14, 30, tzinfo=UTC)),
    ("2026-03-01 14:30", datetime(2026, 3, 1, 14, 30, tzinfo=UTC)),
    ("2026-03-01T23:30:00-05:00", datetime(2026, 3, 2, 4, 30, tzinfo=UTC)),
    ("2026-03-01", datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)),
    ("20260301", datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)),
])
def test_times_are_utc_without_zone_and_a_date_alone_is_the_end_of_that_day(
        raw: str, expected: datetime) -> None:
    got = parse_occurred_at(raw)
    assert got == expected and got.tzinfo is UTC


@pytest.mark.parametrize("raw", ["01/03/2026", "2026-02-30", "yesterday", "2026-03-01T25:00",
                                 "2026-03-01T10:00:00+25:00"])
def test_a_date_that_is_not_iso_8601_is_a_bad_date(raw: str) -> None:
    assert reason(occurred_at=raw).startswith("bad date: ")


def test_an_empty_date_is_a_bad_date() -> None:
    assert reason(occurred_at="") == "bad date: occurred_at is empty"


def test_a_valid_row_is_typed_and_normalised() -> None:
    got = RowParser(HEADER).parse_cells(row(
        action="", title=" Order 7 ", transaction_ref="T-7", amount="1234.50", currency="eur",
        margin="-10.25", call_ref="CALL-1"))
    assert got.action == "sale"  # the default
    assert got.title == "Order 7"
    assert got.amount == Decimal("1234.50") and got.margin == Decimal("-10.25")
    assert got.currency == "EUR"
    assert got.visitor_key == "0123456789abcdef"
    assert got.call_ref == "CALL-1"


@pytest.mark.parametrize(("values", "starts"), [
    ({"amount": "-5", "currency": "EUR"}, "negative amount: -5"),
    ({"amount": "12,50", "currency": "EUR"}, "bad amount: '12,50' is not a number"),
    ({"amount": "NaN", "currency": "EUR"}, "bad amount: 'NaN' is not a number"),
    ({"amount": "1e5", "currency": "EUR"}, "bad amount: '1e5' is not a number"),
    ({"amount": "100000000000000", "currency": "EUR"}, "bad amount: 100000000000000 is too large"),
    ({"margin": "abc", "currency": "EUR"}, "bad margin: 'abc' is not a number"),
    ({"amount": "10", "currency": "EURO"}, "bad currency: 'EURO' is not an ISO 4217 code"),
    ({"amount": "10", "currency": "ABC"}, "bad currency: 'ABC' is not an ISO 4217 code"),
    ({"amount": "10", "currency": "XXX"}, "bad currency: 'XXX'"),
    ({"amount": "10"}, "bad currency: a currency (ISO 4217, e.g. EUR) is needed"),
    ({"visitor_id": "", "call_ref": ""}, "missing both ids"),
    ({"visitor_id": "not a visitor!"}, "bad visitor id: 'not a visitor!'"),
    ({"transaction_ref": "x" * 201}, "transaction_ref too long: 201 characters"),
    ({"title": "a\x00b"}, "malformed row: title contains a NUL character"),
])
def test_each_broken_field_is_rejected_with_its_reason(values: dict[str, str],
                                                       starts: str) -> None:
    assert reason(**values).startswith(starts)


def test_amount_and_currency_may_be_absent_together() -> None:
    got = RowParser(HEADER).parse_cells(row(action="lead"))
    assert got.amount is None and got.currency is None and got.action == "lead"


def test_call_tracking_aliases_name_the_same_columns() -> None:
    parser = RowParser(["act", "t", "dt", "txr", "txv", "txc", "vid", "callref", "extra"])
    got = parser.parse_cells(["quote", "Q", "2026-03-01", "R1", "9.99", "usd", "", "C-9",
                              "ignored"])
    assert (got.action, got.title, got.transaction_ref, got.amount, got.currency,
            got.visitor_key, got.call_ref) == ("quote", "Q", "R1", Decimal("9.99"), "USD",
                                               None, "C-9")
    assert parser.unknown == ["extra"]


def test_a_header_without_either_id_column_is_refused_whole() -> None:
    with pytest.raises(ValueError, match="needs a visitor_id"):
        RowParser(["action", "occurred_at", "amount"])


def test_a_header_naming_a_column_twice_is_refused_whole() -> None:
    with pytest.raises(ValueError, match="'amount' and 'txv' both give amount"):
        RowParser(["occurred_at", "vid", "amount", "txv"])


def test_a_row_with_more_cells_than_the_header_is_malformed() -> None:
    with pytest.raises(RowRejected, match="malformed row: 10 cells under a header of 9"):
        RowParser(HEADER).parse_cells([*row(), "surplus"])


def test_a_short_row_reads_as_blanks() -> None:
    got = RowParser(HEADER).parse_cells(["sale", "", "2026-03-01"] + [""] * 4 + ["abc"])
    assert got.visitor_key == "abc" and got.call_ref is None


def test_api_objects_use_the_same_rules() -> None:
    parser = RowParser.for_objects()
    got = parser.parse_object({"vid": "ABC", "dt": "2026-03-01T10:00:00Z", "txv": 5,
                               "txc": "gbp"})
    assert got.amount == Decimal("5") and got.currency == "GBP" and got.visitor_key == "abc"
    with pytest.raises(RowRejected, match="unknown field 'amout'"):
        parser.parse_object({"vid": "a", "dt": "2026-03-01", "amout": 5})
    with pytest.raises(RowRejected, match="bad amount: True must be text or a number"):
        parser.parse_object({"vid": "a", "dt": "2026-03-01", "amount": True})
