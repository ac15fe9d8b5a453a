"""The connector suite: what every connector does, checked the same way against each one.

A connector's test module subclasses `ConnectorSuite`, lists the `objects` to exercise and
provides a `target` fixture returning a `SuiteTarget`:

    class TestMemoryCRMContract(ConnectorSuite):
        objects = ("accounts", "contacts")

        @pytest.fixture
        def target(self) -> SuiteTarget: ...

Tests taking `object_name` run once per listed object. Records get unique names, so the
suite also runs against a real CRM shared with other tests; what it creates it deletes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from leadbridge.connectors.base import (
    Connector,
    ItemResult,
    Operation,
    OrderItem,
    Outcome,
    RemoteRecord,
    ReportPage,
    ReportRequest,
)

Fields = dict[str, Any]
MAX_PAGES = 100_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SuiteTarget:
    """One connector under test, and what the suite needs to know to exercise it."""

    connector: Connector
    new_fields: Callable[[str, str], Fields]  # (object, unique token) -> a valid create
    edit_fields: Callable[[str], Fields]  # object -> a valid change, touching no match key
    missing_id: str  # an id no record of any object has
    reconnect: Callable[[], Connector]  # another connector on the same CRM (a new process)
    now: Callable[[], datetime] = field(default=_utc_now)  # the CRM's clock, for `until`


def token() -> str:
    return secrets.token_hex(4)


def one(connector: Connector, item: OrderItem) -> ItemResult:
    [result] = connector.apply([item])
    assert result.ref == item.ref
    return result


def create(connector: Connector, obj: str, fields: Fields) -> str:
    result = one(connector, OrderItem("new", obj, Operation.CREATE, fields=fields))
    assert result.outcome == Outcome.CREATED, result.reason
    assert result.remote_id
    return result.remote_id


def delete_quietly(connector: Connector, obj: str, ids: set[str]) -> None:
    if connector.objects[obj].can_delete:
        for remote_id in ids:
            connector.apply([OrderItem("cleanup", obj, Operation.DELETE, remote_id)])


def pages(connector: Connector, obj: str, until: datetime, *, cursor: str | None = None,
          page_size: int = 100) -> list[ReportPage]:
    """Every page of one pass of report(), from `cursor` until `more` is False."""
    read = []
    for _ in range(MAX_PAGES):
        page = connector.report(ReportRequest(obj, cursor, until, page_size, ()))
        read.append(page)
        if not page.more:
            return read
        assert page.cursor is not None, "a page with more to follow must carry a cursor"
        cursor = page.cursor
    raise AssertionError(f"report() of {obj} did not finish in {MAX_PAGES} pages")


def ids_of(read: list[ReportPage]) -> list[str]:
    return [record.id for page in read for record in page.records]


def live(connector: Connector, obj: str, until: datetime) -> dict[str, RemoteRecord]:
    """The records a full pass shows as existing, by id."""
    latest = {record.id: record for page in pages(connector, obj, until)
              for record in page.records}
    return {rid: record for rid, record in latest.items() if not record.deleted}


class ConnectorSuite:
    """The shared tests; subclasses set `objects` and provide the `target` fixture."""

    objects: tuple[str, ...] = ()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "object_name" in metafunc.fixturenames:
            metafunc.parametrize("object_name", self.objects)

    def test_it_declares_its_objects_consistently(self, target: SuiteTarget) -> None:
        connector = target.connector
        assert isinstance(connector, Connector)
        assert set(self.objects) <= set(connector.objects)
        for name, spec in connector.objects.items():
            assert spec.name == name and spec.batch_size >= 1
            assert set(spec.match_keys) <= set(spec.fields)
            assert set(spec.required) <= set(spec.fields)

    def test_test_reaches_the_crm(self, target: SuiteTarget) -> None:
        before = target.connector.calls
        target.connector.test()
        assert target.connector.calls > before

    def test_create_find_update_delete_round_trip(self, target: SuiteTarget,
                                                  object_name: str) -> None:
        connector, obj = target.connector, object_name
        spec = connector.objects[obj]
        fields = target.new_fields(obj, token())
        before = connector.calls
        remote_id = create(connector, obj, fields)
        assert connector.calls > before

        for key in spec.match_keys:
            if fields.get(key):
                found = connector.find(obj, {key: fields[key]})
                assert remote_id in [record.id for record in found], key
                assert all(record.object == obj for record in found)

        change = target.edit_fields(obj)
        updated = one(connector, OrderItem("edit", obj, Operation.UPDATE, remote_id, change))
        assert (updated.outcome, updated.remote_id) == (Outcome.UPDATED, remote_id)
        record = live(connector, obj, target.now())[remote_id]
        assert {k: record.fields[k] for k in change} == change
        kept = [k for k in spec.required if k not in change]
        assert {k: record.fields[k] for k in kept} == {k: fields[k] for k in kept}

        if not spec.can_delete:
            return
        deleted = one(connector, OrderItem("gone", obj, Operation.DELETE, remote_id))
        assert (deleted.outcome, deleted.remote_id) == (Outcome.DELETED, remote_id)
        assert remote_id not in live(connector, obj, target.now())
        for key in spec.match_keys:
            if fields.get(key):
                assert remote_id not in [r.id for r in connector.find(obj, {key: fields[key]})]
        again = one(connector, OrderItem("again", obj, Operation.UPDATE, remote_id, change))
        assert again.outcome == Outcome.NOT_FOUND

    def test_report_pages_through_every_record_and_the_cursor_resumes(
        self, target: SuiteTarget, object_name: str
    ) -> None:
        connector, obj = target.connector, object_name
        created = {create(connector, obj, target.new_fields(obj, token())) for _ in range(5)}
        until = target.now()

        first = pages(connector, obj, until, page_size=2)
        seen = ids_of(first)
        assert created <= set(seen)
        assert len(seen) == len(set(seen)), "a pass reports each record once"
        assert all(len(page.records) <= 2 for page in first)
        assert [page.more for page in first] == [True] * (len(first) - 1) + [False]

        resumed = pages(target.reconnect(), obj, until, cursor=first[0].cursor, page_size=2)
        assert ids_of(resumed) == seen[len(first[0].records):]

        if connector.objects[obj].modified_since:
            assert ids_of(pages(connector, obj, until, cursor=first[-1].cursor)) == []
        else:
            assert first[-1].cursor is None, "a full read starts over in the next cycle"
        delete_quietly(connector, obj, created)

    def test_until_holds_back_later_changes(self, target: SuiteTarget, object_name: str
                                            ) -> None:
        connector, obj = target.connector, object_name
        early = create(connector, obj, target.new_fields(obj, token()))
        until = target.now()
        late = create(connector, obj, target.new_fields(obj, token()))
        if not connector.objects[obj].modified_since:
            # no modified times: a cycle reads everything there is and the engine compares
            # values with the ones last agreed, so nothing can be held back or lost
            everything = ids_of(pages(connector, obj, until))
            assert early in everything and late in everything
            delete_quietly(connector, obj, {early, late})
            return

        cycle = pages(connector, obj, until, page_size=1)
        assert early in ids_of(cycle) and late not in ids_of(cycle)
        next_cycle = pages(connector, obj, target.now(), cursor=cycle[-1].cursor)
        assert ids_of(next_cycle) == [late]

    def test_an_order_of_batch_size_is_answered_and_a_larger_one_refused(
        self, target: SuiteTarget, object_name: str
    ) -> None:
        connector, obj = target.connector, object_name
        size = connector.objects[obj].batch_size
        order = [OrderItem(f"item-{size - i}", obj, Operation.CREATE,
                           fields=target.new_fields(obj, token())) for i in range(size)]
        results = connector.apply(order)
        assert [r.ref for r in results] == [item.ref for item in order]
        assert {r.outcome for r in results} == {Outcome.CREATED}
        created = {r.remote_id for r in results if r.remote_id}
        assert len(created) == size

        too_many = [*order, OrderItem("one-more", obj, Operation.CREATE,
                                      fields=target.new_fields(obj, token()))]
        before = connector.calls
        with pytest.raises(ValueError, match="batch size"):
            connector.apply(too_many)
        assert connector.calls == before
        delete_quietly(connector, obj, created)

    def test_answers_carry_the_refs_in_order(self, target: SuiteTarget, object_name: str
                                             ) -> None:
        connector, obj = target.connector, object_name
        spec = connector.objects[obj]
        incomplete = {k: v for k, v in target.new_fields(obj, token()).items()
                      if k not in spec.required}
        mixed = [
            (OrderItem("z-create", obj, Operation.CREATE, fields=target.new_fields(obj, token())),
             Outcome.CREATED),
            (OrderItem("a-update", obj, Operation.UPDATE, target.missing_id,
                       target.edit_fields(obj)), Outcome.NOT_FOUND),
            (OrderItem("m-invalid", obj, Operation.CREATE, fields=incomplete),
             Outcome.FAILED if spec.required else Outcome.CREATED),
        ][: spec.batch_size]
        results = connector.apply([item for item, _ in mixed])
        assert [(r.ref, r.outcome) for r in results] == [
            (item.ref, outcome) for item, outcome in mixed]
        delete_quietly(connector, obj, {r.remote_id for r in results
                                        if r.outcome == Outcome.CREATED and r.remote_id})

    def test_an_unknown_id_is_not_found(self, target: SuiteTarget, object_name: str) -> None:
        connector, obj = target.connector, object_name
        update = one(connector, OrderItem("u", obj, Operation.UPDATE, target.missing_id,
                                          target.edit_fields(obj)))
        assert update.outcome == Outcome.NOT_FOUND and update.remote_id is None
        if connector.objects[obj].can_delete:
            delete = one(connector, OrderItem("d", obj, Operation.DELETE, target.missing_id))
            assert delete.outcome == Outcome.NOT_FOUND

    def test_a_record_missing_a_required_field_fails_naming_it(
        self, target: SuiteTarget, object_name: str
    ) -> None:
        connector, obj = target.connector, object_name
        spec = connector.objects[obj]
        if not spec.required:
            pytest.skip(f"{obj} requires no field")
        missing = spec.required[0]
        fields = {k: v for k, v in target.new_fields(obj, token()).items() if k != missing}
        result = one(connector, OrderItem("bad", obj, Operation.CREATE, fields=fields))
        assert result.outcome == Outcome.FAILED and result.remote_id is None
        assert result.reason and missing in result.reason

    def test_find_never_matches_a_blank_value(self, target: SuiteTarget, object_name: str
                                              ) -> None:
        connector, obj = target.connector, object_name
        for key in connector.objects[obj].match_keys:
            assert connector.find(obj, {key: ""}) == []
            assert connector.find(obj, {key: None}) == []
