"""CSV imports on SQLite and PostgreSQL: every row accepted, merged or rejected with a reason."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import OperationalError

from attribution_seed import T0, H, visitor
from conversion_seed import (
    CALL,
    NOW,
    OTHER,
    PHONE_ONLY_CALL,
    VISITOR,
    add_site,
    add_visitor,
    counts,
    seed,
    stored,
)
from leadbridge.config import ConversionsSettings
from leadbridge.conversions.attribution import credit_rows
from leadbridge.conversions.importer import ImportReport, get_import, import_csv, import_path
from leadbridge.conversions.intake import ConversionWriter
from leadbridge.conversions.model import MatchedConversion
from leadbridge.errors import InputError
from leadbridge.store.ids import new_id
from leadbridge.store.tables import conversions

credits_q = credit_rows()

HEADER = "action,title,occurred_at,transaction_ref,amount,currency,margin,visitor_id,call_ref\n"


class Recorder:
    """Stands in for attribution: keeps what it was handed, checks it runs in the transaction,
    names a path per conversion (`path_of`)."""

    def __init__(self) -> None:
        self.batches: list[list[MatchedConversion]] = []

    def __call__(self, conn: Connection, batch: Sequence[MatchedConversion]) -> list[str]:
        assert conn.in_transaction()
        self.batches.append(list(batch))
        return [self.path_of(c.id) for c in batch]

    @staticmethod
    def path_of(conversion_id: UUID) -> str:
        return "p" + conversion_id.hex[:31]

    @property
    def all(self) -> list[MatchedConversion]:
        return [c for b in self.batches for c in b]


def run(engine: Engine, body: str | bytes, *, dry_run: bool = False, name: str = "sales.csv",
        attribute: Any = None, **settings: Any) -> ImportReport:
    data = body.encode("utf-8") if isinstance(body, str) else body
    report = import_csv(engine, io.BytesIO(data), name=name,
                        settings=ConversionsSettings(**settings), dry_run=dry_run,
                        attribute=attribute)
    assert report.adds_up, report.to_dict()
    return report


GOOD = HEADER + (
    f"sale,Order 1,2026-03-01T10:00:00+02:00,T-1,100.50,eur,20,{VISITOR},\n"
    f",Order 2,2026-03-01,T-2,50,USD,,,{CALL}\n"
    f"quote,,2026-03-01T11:00:00Z,,,,,,{PHONE_ONLY_CALL}\n"
)


def test_good_rows_are_stored_matched_and_handed_to_attribution(engine: Engine) -> None:
    ids = seed(engine)
    recorder = Recorder()
    report = run(engine, GOOD, attribute=recorder)
    assert (report.status, report.rows_read, report.accepted, report.merged,
            report.rejected) == ("done", 3, 3, 0, 0)
    rows = {r.transaction_ref: r for r in stored(engine)}
    one, two, three = rows["T-1"], rows["T-2"], rows[None]
    assert one.occurred_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert (one.browser_visitor_id, one.contact_id, one.call_id) == (
        ids["visitor"], ids["contact"], None)
    assert one.amount == Decimal("100.5") and one.currency == "EUR"
    # a call reference leads to the call and through it to its visitor and contact
    assert (two.action, two.call_id, two.browser_visitor_id, two.contact_id) == (
        "sale", ids["call"], ids["visitor"], ids["contact"])
    assert (three.action, three.call_id, three.browser_visitor_id) == (
        "quote", ids["phone_call"], None)
    assert {r.import_id for r in rows.values()} == {report.import_id}
    assert {r.source for r in rows.values()} == {"csv"}
    handed = {c.id: c for c in recorder.all}
    assert len(handed) == 3
    # each conversion is stored with the path attribution named for it
    assert {r.id: r.path_id for r in rows.values()} == {
        cid: Recorder.path_of(cid) for cid in handed}
    first = next(c for c in handed.values() if c.amount == Decimal("100.50"))
    assert first.occurred_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert (first.browser_visitor_id, first.currency, first.margin) == (
        ids["visitor"], "EUR", Decimal("20"))
    phone = next(c for c in handed.values() if c.action == "quote")
    assert phone.browser_visitor_id is None and phone.call_id == ids["phone_call"]
    assert phone.amount is None and phone.currency is None


def test_broken_rows_are_each_rejected_with_a_reason_and_the_good_ones_kept(
        engine: Engine) -> None:
    seed(engine)
    body = HEADER + (
        f"sale,ok,2026-03-01,T-1,10,EUR,,{VISITOR},\n"                 # 2 accepted
        f"sale,,01/03/2026,T-2,10,EUR,,{VISITOR},\n"                   # 3 bad date
        f"sale,,2026-03-01,T-3,-10,EUR,,{VISITOR},\n"                  # 4 negative amount
        f"sale,,2026-03-01,T-4,10,EURO,,{VISITOR},\n"                  # 5 bad currency
        "sale,,2026-03-01,T-5,10,EUR,,,\n"                             # 6 missing both ids
        "sale,,2026-03-01,T-6,10,EUR,,aaaabbbbccccdddd,\n"             # 7 unknown visitor
        "sale,,2026-03-01,T-7,10,EUR,,,NO-SUCH-CALL\n"                 # 8 invalid call ref
        "\n"                                                           # 9 blank: not a row
        f"sale,\"quoted, title\",2026-03-01,T-8,10,EUR,,{VISITOR},,surplus\n"  # 10 malformed
        f"sale,ok,2026-03-02,T-9,10,EUR,,{OTHER},\n"                   # 11 accepted
    )
    report = run(engine, body, attribute=Recorder())
    assert (report.rows_read, report.accepted, report.merged, report.rejected) == (9, 2, 0, 7)
    got = [(r.row_number, r.reason.split(":")[0]) for r in report.rejections]
    assert got == [(3, "bad date"), (4, "negative amount"), (5, "bad currency"),
                   (6, "missing both ids"), (7, "unknown visitor id"),
                   (8, "invalid call reference"), (10, "malformed row")]
    assert report.reasons["bad date"] == 1 and sum(report.reasons.values()) == 7
    with engine.connect() as conn:
        record, rejections = get_import(conn, report.import_id or 0)
    assert (record.status, record.rows_read, record.accepted, record.rejected) == (
        "done", 9, 2, 7)
    assert [r.row_number for r in rejections] == [3, 4, 5, 6, 7, 8, 10]
    assert rejections[0].raw == f"sale,,01/03/2026,T-2,10,EUR,,{VISITOR},"
    assert rejections[6].raw.startswith('sale,"quoted, title",2026-03-01')
    assert "aaaabbbbccccdddd was never seen" in rejections[4].reason
    assert "'NO-SUCH-CALL' is not a recorded call" in rejections[5].reason


def test_bom_semicolons_and_aliases(engine: Engine) -> None:
    ids = seed(engine)
    body = ("\ufeffact;t;dt;txr;txv;txc;vid;callRef\n"
            f"sale;Caf\u00e9 order;2026-03-01T10:00:00;R1;12.5;chf;{VISITOR};\n"
            f"sale;\"a;b\";2026-03-01T10:00:00;R2;1;CHF;;{CALL}\n")
    report = run(engine, body.encode("utf-8"))
    assert (report.accepted, report.rejected) == (2, 0), report.rejections
    rows = {r.transaction_ref: r for r in stored(engine)}
    assert rows["R1"].title == "Caf\u00e9 order" and rows["R1"].currency == "CHF"
    assert rows["R2"].title == "a;b" and rows["R2"].call_id == ids["call"]


def test_a_latin_1_file_is_refused_whole_naming_the_line(engine: Engine) -> None:
    seed(engine)
    body = (HEADER + f"sale,ok,2026-03-01,T-1,10,EUR,,{VISITOR},\n"
            + f"sale,Caf\u00e9,2026-03-01,T-2,10,EUR,,{VISITOR},\n").encode("latin-1")
    report = run(engine, body)
    assert report.status == "failed"
    assert report.message == ("sales.csv: not UTF-8 text (line 3, byte 141); save it as UTF-8 "
                              "(with or without BOM)")
    assert (report.rows_read, report.accepted) == (0, 0)
    assert counts(engine)["conversions"] == 0
    with engine.connect() as conn:
        record, _ = get_import(conn, report.import_id or 0)
    assert record.status == "failed" and "not UTF-8" in (record.message or "")


def test_a_header_without_ids_is_refused_whole(engine: Engine) -> None:
    report = run(engine, "action,occurred_at,amount\nsale,2026-03-01,3\n")
    assert report.status == "failed"
    assert "needs a visitor_id (vid) or call_ref (callRef) column" in (report.message or "")


def test_an_empty_file_is_refused_whole(engine: Engine) -> None:
    report = run(engine, b"")
    assert report.status == "failed" and "needs a visitor_id" in (report.message or "")


def test_the_same_file_twice_changes_nothing(engine: Engine) -> None:
    seed(engine)
    first = run(engine, GOOD, attribute=Recorder())
    before = stored(engine, "id")
    recorder = Recorder()
    second = run(engine, GOOD, attribute=recorder)
    assert (first.accepted, second.accepted, second.merged, second.rows_read) == (3, 0, 3, 3)
    assert stored(engine, "id") == before
    assert recorder.all == []  # nothing new to attribute


def test_duplicates_within_a_file_are_merged_across_batches(engine: Engine) -> None:
    seed(engine)
    line = f"sale,,2026-03-01T10:00:00,T-1,10,EUR,,{VISITOR},\n"
    no_ref = f"sale,,2026-03-01T10:00:00,,10,EUR,,{VISITOR},\n"
    body = HEADER + line + no_ref + line + no_ref + line  # batches of 2: dupes cross batches
    report = run(engine, body, batch_size=2)
    assert (report.accepted, report.merged, report.rejected) == (2, 3, 0)
    assert len(stored(engine)) == 2


def test_the_transaction_rule_merges_a_reference_seen_in_an_earlier_import(
        engine: Engine) -> None:
    seed(engine)
    run(engine, HEADER + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n")
    # same reference, another action and day: still the same transaction
    report = run(engine, HEADER + f"refund,,2026-03-09,T-1,10,EUR,,{OTHER},\n")
    assert (report.accepted, report.merged) == (0, 1)


def test_the_window_rule_merges_only_the_same_action_within_the_window(
        engine: Engine) -> None:
    seed(engine)
    rule = {"dedupe": "action_ref_window", "dedupe_window_minutes": 60}
    run(engine, HEADER + f"sale,,2026-03-01T10:00:00Z,R,10,EUR,,{VISITOR},\n", **rule)
    body = HEADER + (
        f"sale,,2026-03-01T10:59:00Z,R,10,EUR,,{VISITOR},\n"      # within the hour: merged
        f"refund,,2026-03-01T10:30:00Z,R,10,EUR,,{VISITOR},\n"    # another action: stored
        f"sale,,2026-03-01T12:00:00Z,R,10,EUR,,{VISITOR},\n"      # two hours later: stored
        f"sale,,2026-03-01T12:30:00Z,R,10,EUR,,{VISITOR},\n"      # near the one above: merged
    )
    report = run(engine, body, **rule)
    assert (report.accepted, report.merged) == (2, 2)
    again = run(engine, body, **rule)
    assert (again.accepted, again.merged) == (0, 4)


def test_a_dry_run_reports_the_same_and_writes_nothing(engine: Engine) -> None:
    seed(engine)
    line = f"sale,,2026-03-01T10:00:00,T-1,10,EUR,,{VISITOR},\n"
    body = (HEADER + line + line + "sale,,bad,T-2,1,EUR,,x,\n"
            + f"sale,,2026-03-02,T-3,1,EUR,,{OTHER},\n" + line)
    before = counts(engine)
    dry = run(engine, body, dry_run=True, batch_size=2, attribute=Recorder())
    assert counts(engine) == before
    assert (dry.import_id, dry.dry_run, dry.status) == (None, True, "done")
    real = run(engine, body, batch_size=2)
    assert ((dry.accepted, dry.merged, dry.rejected)
            == (real.accepted, real.merged, real.rejected) == (2, 2, 1))
    # a dry run of an imported file: every row would be merged or rejected
    again = run(engine, body, dry_run=True)
    assert (again.accepted, again.merged, again.rejected) == (0, 4, 1)


def test_the_visitor_id_names_the_site_or_the_latest_seen(engine: Engine) -> None:
    with engine.begin() as conn:
        shop = add_site(conn, "Shop")
        blog = add_site(conn, "Blog")
        old = add_visitor(conn, shop, "aaaa000000000000", seen=NOW - timedelta(days=5))
        new = add_visitor(conn, blog, "aaaa000000000000", seen=NOW)
    body = ("occurred_at,transaction_ref,visitor_id,site_id\n"
            "2026-03-01,A,AAAA000000000000,\n"
            f"2026-03-01,B,aaaa000000000000,{shop}\n"
            "2026-03-01,C,aaaa000000000000,999\n")
    report = run(engine, body)
    assert (report.accepted, report.rejected) == (2, 1)
    assert report.rejections[0].reason == ("unknown visitor id: aaaa000000000000 was never seen "
                                           "by the tracker on site 999")
    rows = {r.transaction_ref: r.browser_visitor_id for r in stored(engine)}
    assert rows == {"A": new, "B": old}


def test_a_file_path_that_does_not_exist_is_an_input_error(engine: Engine,
                                                           tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        import_path(engine, tmp_path / "missing.csv", settings=ConversionsSettings())
    with pytest.raises(InputError, match="is a folder"):
        import_path(engine, tmp_path, settings=ConversionsSettings())


def test_a_conversion_stored_meanwhile_by_another_import_is_merged(engine: Engine) -> None:
    seed(engine)
    with engine.begin() as conn:
        conn.execute(insert(conversions).values(
            id=new_id(), action="sale", occurred_at=NOW, transaction_ref="T-1", source="api",
            dedupe_key="tx:T-1", created_at=NOW))
    report = run(engine, HEADER + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n")
    assert (report.accepted, report.merged) == (0, 1)


def test_rows_the_csv_module_cannot_read_are_rejected_and_counted(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    seed(engine)
    monkeypatch.setattr(csv, "field_size_limit", csv.field_size_limit)
    old = csv.field_size_limit(200)
    try:
        body = (HEADER + f"sale,{'x' * 300},2026-03-01,T-1,1,EUR,,{VISITOR},\n"
                + f"sale,,2026-03-01,T-2,1,EUR,,{VISITOR},\n")
        report = run(engine, body)
    finally:
        csv.field_size_limit(old)
    assert (report.rows_read, report.accepted, report.rejected) == (2, 1, 1)
    assert report.rejections[0].reason.startswith("malformed row: field larger than field limit")


def test_raw_lines_are_kept_up_to_a_limit(engine: Engine) -> None:
    seed(engine)
    report = run(engine, HEADER + f"sale,{'t' * 290},bad-date,{'r' * 190},1,EUR,,{'v' * 60},"
                 + "c" * 99 + "\n" + "x," * 600 + "\n")
    assert [r.truncated for r in report.rejections] == [False, True]
    assert len(report.rejections[1].raw) == 1000


def test_imported_conversions_are_credited_to_the_visitors_sessions(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "cafe0000cafe0000", H(0, "email", None, "spring", "newsletter"))
    at = (T0 + timedelta(minutes=30)).isoformat()
    body = HEADER + f"sale,,{at},T-1,80,EUR,,CAFE0000CAFE0000,\n"
    report = import_csv(engine, io.BytesIO(body.encode()), name="s.csv",
                        settings=ConversionsSettings())  # the real attribution
    assert report.accepted == 1
    [conversion] = stored(engine)
    assert conversion.browser_visitor_id == bv
    c = credits_q.c
    with engine.connect() as conn:
        credited = conn.execute(select(c.channel, c.campaign, c.w_last)
                                .where(c.conversion_id == conversion.id)).all()
    assert credited == [("email", "spring", 1)]


def test_a_batch_that_collides_with_a_concurrent_import_is_retried_once(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(engine)
    with engine.begin() as conn:  # stored by another import after our lookup ran
        conn.execute(insert(conversions).values(
            id=new_id(), action="sale", occurred_at=NOW, transaction_ref="T-1", source="api",
            dedupe_key="tx:T-1", created_at=NOW))
    real = ConversionWriter._earlier_refs
    calls: list[int] = []

    def stale_first(self: ConversionWriter, refs: set[str]) -> Any:
        calls.append(1)
        return {} if len(calls) == 1 else real(self, refs)

    monkeypatch.setattr(ConversionWriter, "_earlier_refs", stale_first)
    report = run(engine, HEADER + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n"
                 + f"sale,,2026-03-01,T-2,10,EUR,,{VISITOR},\n")
    assert len(calls) == 2  # the unique key refused the first try; the second saw the row
    assert (report.status, report.accepted, report.merged) == ("done", 1, 1)
    assert [r.transaction_ref for r in stored(engine, "transaction_ref")] == ["T-1", "T-2"]


class _Deadlock(Exception):
    sqlstate = "40P01"


def test_a_batch_the_database_broke_a_deadlock_in_is_written_again(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(engine)
    real = ConversionWriter.write
    tries: list[int] = []

    def deadlocked_first(self: ConversionWriter, rows: Any) -> Any:
        tries.append(1)
        if len(tries) == 1:
            real(self, rows)  # written, then the database picks this one to roll back
            raise OperationalError("INSERT INTO attribution_paths ...", {}, _Deadlock())
        return real(self, rows)

    monkeypatch.setattr(ConversionWriter, "write", deadlocked_first)
    report = run(engine, HEADER + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n")
    assert len(tries) == 2
    assert (report.status, report.accepted, report.merged) == ("done", 1, 0)
    assert [r.transaction_ref for r in stored(engine, "transaction_ref")] == ["T-1"]


def test_other_database_errors_are_not_retried(engine: Engine,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seed(engine)
    tries: list[int] = []

    def broken(self: ConversionWriter, rows: Any) -> Any:
        tries.append(1)
        raise OperationalError("SELECT ...", {}, Exception("disk I/O error"))

    monkeypatch.setattr(ConversionWriter, "write", broken)
    with pytest.raises(OperationalError):
        import_csv(engine, io.BytesIO((HEADER + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n")
                                      .encode()), name="s.csv", settings=ConversionsSettings())
    assert len(tries) == 1
