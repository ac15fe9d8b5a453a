"""Batch lookups of visitors and calls, and the padded IN lists they use."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from conversion_seed import CALL, NOW, OTHER, VISITOR, add_site, add_visitor, seed
from leadbridge.conversions.matching import find_calls, find_visitors, pick_visitor
from leadbridge.store.bulk import in_list


def test_in_lists_are_padded_to_a_power_of_two_with_the_last_value() -> None:
    assert in_list([], "sqlite") == ("", ())
    assert in_list(["a"], "sqlite") == ("?", ("a",))
    assert in_list(["a", "b", "c"], "postgresql") == ("%s, %s, %s, %s", ("a", "b", "c", "c"))
    assert len(in_list([str(i) for i in range(1025)], "sqlite")[1]) == 2048


def test_lookups_find_each_known_key_once_and_skip_unknown_ones(engine: Engine) -> None:
    ids = seed(engine)
    keys = [VISITOR, OTHER, "0000000000000000"]
    with engine.connect() as conn:
        visitors = find_visitors(conn, keys)
        calls = find_calls(conn, [CALL, "NOPE", "ALSO-NOPE"])
    assert {k: [v.id for v in found] for k, found in visitors.items()} == {
        VISITOR: [ids["visitor"]], OTHER: [ids["other"]]}
    assert visitors[VISITOR][0].contact_id == ids["contact"]
    assert list(calls) == [CALL]
    assert (calls[CALL].id, calls[CALL].browser_visitor_id, calls[CALL].contact_id) == (
        ids["call"], ids["visitor"], ids["contact"])


def test_without_a_site_the_browser_seen_last_wins(engine: Engine) -> None:
    with engine.begin() as conn:
        a, b = add_site(conn, "A"), add_site(conn, "B")
        older = add_visitor(conn, a, "k", seen=NOW - timedelta(hours=1))
        newer = add_visitor(conn, b, "k", seen=NOW)
    with engine.connect() as conn:
        found = find_visitors(conn, ["k"])["k"]
    latest, on_a = pick_visitor(found, None), pick_visitor(found, a)
    assert latest is not None and latest.id == newer
    assert on_a is not None and on_a.id == older
    assert pick_visitor(found, 999) is None
    assert pick_visitor(None, None) is None
