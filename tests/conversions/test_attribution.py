"""Attribution: the four models' shares, computed by hand, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, update

from attribution_seed import T0, H, call, convert, marketing_source, visitor
from leadbridge.conversions.attribution import (
    attribute_batch,
    check_model,
    credit_rows,
    path_id,
    reattribute,
    weights,
)
from leadbridge.conversions.model import MatchedConversion
from leadbridge.errors import InputError
from leadbridge.store.ids import new_id
from leadbridge.store.tables import attribution_paths, conversions

credits_q = credit_rows()


def credits(engine: Engine, cid: Any) -> list[tuple[Any, ...]]:
    c = credits_q.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(c.touch, c.channel, c.source, c.campaign, c.w_first, c.w_last, c.w_linear,
                   c.w_position).where(c.conversion_id == cid).order_by(c.touch))]


FOUR = (H(0, "organic_search", "https://www.google.com/"), H(5),
        H(60, "email", None, "april", "newsletter"),
        H(120, "paid_search", "https://www.google.com/", "brand", "google"),
        H(180, "referral", "https://partner.example/"))


def test_four_touches_under_each_model(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "v4", *FOUR)
        cid = convert(conn, T0 + timedelta(minutes=200), bv=bv)
    got = credits(engine, cid)
    assert [(r[1], r[2], r[3]) for r in got] == [
        ("organic_search", "google.com", "(none)"), ("email", "newsletter", "april"),
        ("paid_search", "google", "brand"), ("referral", "partner.example", "(none)")]
    assert [r[4] for r in got] == [1, 0, 0, 0]  # first touch
    assert [r[5] for r in got] == [0, 0, 0, 1]  # last touch
    assert [r[6] for r in got] == [0.25] * 4  # linear
    assert [r[7] for r in got] == pytest.approx([0.4, 0.1, 0.1, 0.4])  # 40 / 20 / 40


def test_one_touch_has_it_all_and_two_share_half_each(engine: Engine) -> None:
    with engine.begin() as conn:
        one = visitor(conn, "v1", H(0, "social", "https://t.co/x"))
        two = visitor(conn, "v2", H(0, "social", "https://t.co/x"),
                      H(60, "referral", "https://a.example/"))
        c1 = convert(conn, T0 + timedelta(minutes=90), bv=one)
        c2 = convert(conn, T0 + timedelta(minutes=90), bv=two)
    assert [r[4:] for r in credits(engine, c1)] == [(1, 1, 1, 1)]
    assert [r[4:] for r in credits(engine, c2)] == [(1, 0, 0.5, 0.5), (0, 1, 0.5, 0.5)]


def test_only_sessions_started_before_the_conversion_count(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "v5", *FOUR)
        # between the email visit (60) and the paid one (120), given in another time zone
        at = (T0 + timedelta(minutes=90)).astimezone(timezone(timedelta(hours=-5)))
        cid = convert(conn, at, bv=bv)
        at_start = convert(conn, T0 + timedelta(minutes=60), bv=bv)  # a visit's first hit
    assert [r[1] for r in credits(engine, cid)] == ["organic_search", "email"]
    assert [r[1] for r in credits(engine, at_start)] == ["organic_search", "email"]


def test_sessions_older_than_the_lookback_are_left_out(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "v6", H(0, "referral", "https://old.example/"),
                     H(60 * 24 * 95, "social", "https://t.co/"))
        cid = convert(conn, T0 + timedelta(days=96), bv=bv)
    assert [r[2] for r in credits(engine, cid)] == ["t.co"]


def test_a_call_without_a_visit_is_credited_to_its_marketing_source_else_direct(
        engine: Engine) -> None:
    with engine.begin() as conn:
        ms = marketing_source(conn, "Radio spring", "+442071838750", channel="campaign",
                              source="radio-fm", campaign="spring-26")
        bare = marketing_source(conn, "Flyer", "+442071838751")
        c_ms = call(conn, "C-1", "+442071838750", ms)
        first = convert(conn, T0, call_id=c_ms, ms=ms)
        second = convert(conn, T0, call_id=call(conn, "C-2", "+442071838751", bare), ms=bare)
        nothing = convert(conn, T0)
        no_hits = convert(conn, T0, bv=visitor(conn, "v7"))
    assert credits(engine, first) == [(0, "campaign", "radio-fm", "spring-26", 1, 1, 1, 1)]
    assert credits(engine, second) == [(0, "campaign", "Flyer", "(none)", 1, 1, 1, 1)]
    assert credits(engine, nothing) == [(0, "direct", "(none)", "(none)", 1, 1, 1, 1)]
    assert credits(engine, no_hits) == [(0, "direct", "(none)", "(none)", 1, 1, 1, 1)]


def test_a_batch_reads_every_visitors_sessions_with_one_query(engine: Engine) -> None:
    with engine.begin() as conn:
        ids = [visitor(conn, f"b{i}", H(0, "referral", f"https://r{i % 20}.example/"),
                       H(90, "direct")) for i in range(40)]
    batch = [MatchedConversion(new_id(), bv, T0 + timedelta(hours=3), Decimal(10), None, "EUR")
             for bv in ids]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.begin() as conn:
            paths = attribute_batch(conn, batch)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len([s for s in statements if "FROM hits" in s]) == 1
    assert len([s for s in statements if "INSERT INTO attribution_paths" in s]) == 1
    # visitors i and i + 20 came the same way: they share a path
    assert len(set(paths)) == 20 and paths[:20] == paths[20:]
    p = attribution_paths.c
    with engine.connect() as conn:
        rows = conn.execute(select(p.path_id, p.source, p.channel)
                            .order_by(p.path_id, p.touch)).all()
    stored = {pid: [] for pid in paths}
    for pid, source, channel in rows:
        stored[pid].append((source, channel))
    assert [stored[pid] for pid in paths[:20]] == [
        [(f"r{i}.example", "referral"), ("(none)", "direct")] for i in range(20)]


def test_a_path_seen_before_is_named_the_same_and_not_written_again(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "again", *FOUR)
        first = convert(conn, T0 + timedelta(minutes=200), bv=bv)
        second = convert(conn, T0 + timedelta(minutes=300), bv=bv)
        count = conn.execute(select(func.count()).select_from(attribution_paths)).scalar()
        path_ids = conn.execute(select(conversions.c.path_id)).scalars().all()
    assert count == 4  # one path of four touches
    assert len(path_ids) == 2 and path_ids[0] == path_ids[1]
    assert credits(engine, first) == credits(engine, second)


def test_reattribute_after_a_late_match_replaces_the_credits(engine: Engine) -> None:
    with engine.begin() as conn:
        cid = convert(conn, T0 + timedelta(hours=2))
        bv = visitor(conn, "late", H(0, "email", None, "promo", "crm"))
    assert [r[1] for r in credits(engine, cid)] == ["direct"]
    with engine.begin() as conn:
        conn.execute(update(conversions).where(conversions.c.id == cid)
                     .values(browser_visitor_id=bv))
        assert reattribute(conn, [cid]) == 1
    assert credits(engine, cid) == [(0, "email", "crm", "promo", 1, 1, 1, 1)]
    with engine.begin() as conn:  # all of them, twice: still one set of rows
        assert reattribute(conn) == 1
        assert reattribute(conn, since=datetime(2030, 1, 1, tzinfo=UTC)) == 0
    assert len(credits(engine, cid)) == 1


def test_reattribute_follows_a_call_to_its_visitor(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "caller", H(0, "paid_search", "https://www.bing.com/", "b", "bing"))
        cid = convert(conn, T0 + timedelta(hours=1), call_id=call(conn, "C-9", "+1", None, bv),
                      attribute=False)
        reattribute(conn, [cid])
    assert credits(engine, cid) == [(0, "paid_search", "bing", "b", 1, 1, 1, 1)]


def test_weights_add_up_to_one_under_every_model() -> None:
    for n in range(1, 30):
        for model in range(4):
            assert sum(w[model] for w in weights(n)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        weights(0)


def test_model_names_are_checked_with_a_clear_error() -> None:
    assert check_model("Position-Based") == "position_based"
    assert check_model("last") == "last_touch"
    with pytest.raises(InputError, match="unknown attribution model 'u-shaped'; use one of"):
        check_model("u-shaped")


def test_paths_whose_text_carries_separator_characters_are_told_apart() -> None:
    # a campaign name can hold any character a tracker sent, control characters included
    crafted = (("paid_search", "google", "spring\x1ereferral\x1fevil.com\x1fy"),)
    two = (("paid_search", "google", "spring"), ("referral", "evil.com", "y"))
    assert path_id(crafted) != path_id(two)
    assert path_id(two) == path_id(tuple(tuple(t) for t in two))  # the same touches, same id


def test_new_paths_are_written_in_key_order(engine: Engine) -> None:
    with engine.begin() as conn:
        visitors = [visitor(conn, f"o{i}", H(0, "referral", f"https://s{i}.example/"))
                    for i in range(12)]
    batch = [MatchedConversion(new_id(), bv, T0 + timedelta(hours=1), Decimal(1), None, "EUR")
             for bv in visitors]
    written: list[Any] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
             executemany: bool) -> None:
        if "INSERT INTO attribution_paths" in statement:
            written.extend((row[0], row[1]) for row in params)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.begin() as conn:
            attribute_batch(conn, batch)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # concurrent writers adding the same paths lock them in one order: no deadlock
    assert len(written) == 12 and written == sorted(written)
