"""The per-connection API budget: the hub's own count per day and per window, the CRM's word
on its limits, and a cycle that stops cleanly when either runs out (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from leadbridge.config import Settings, SyncSettings, load_settings
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.connectors.ratelimits import RateInfo, RateWindow
from leadbridge.errors import ConfigError
from leadbridge.sync import engine as engine_module
from leadbridge.sync import errorqueue
from leadbridge.sync.budget import (
    ApiBudget,
    BudgetExhausted,
    BudgetLimits,
    budget_status,
    limits_for,
)
from leadbridge.sync.engine import BUDGET_OBJECT, SyncEngine
from support import rows, scalar
from sync.test_engine import MANUAL, NOW, add_contact, connection_id  # noqa: F401 - fixture

WINDOW_START = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)


class Clock:
    """The budget's clock, moved by the test."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def cycle(engine: Engine, settings: Settings, cid: int, crm: MemoryCRM, budget: ApiBudget,
          slept: list[float] | None = None) -> engine_module.CycleReport:
    moments = iter(NOW + timedelta(minutes=i) for i in range(10_000))
    return SyncEngine(engine, settings, cid, crm, MANUAL,
                      sleep=(slept.append if slept is not None else lambda s: None),
                      clock=lambda: next(moments), budget=budget).run()


def open_errors(engine: Engine) -> list[errorqueue.SyncErrorRow]:
    with engine.connect() as conn:
        return errorqueue.list_errors(conn)


# -- settings -----------------------------------------------------------------------------------

def test_per_connection_settings_override_the_defaults_one_by_one() -> None:
    sync = SyncSettings.model_validate({
        "budget": {"calls_per_day": 1000, "calls_per_window": 50, "window_seconds": 10},
        "budgets": {"big": {"calls_per_day": 9000}}})
    assert limits_for(sync, "big") == BudgetLimits(9000, 50, 10)
    assert limits_for(sync, "other") == BudgetLimits(1000, 50, 10)
    assert limits_for(SyncSettings(), "any") == BudgetLimits(None, None, 60)


@pytest.mark.parametrize(("sync", "named"), [
    ({"budget": {"calls_per_day": 0}}, "sync.budget.calls_per_day"),
    ({"budget": {"calls_per_window": "lots"}}, "sync.budget.calls_per_window"),
    ({"budget": {"window_seconds": 0}}, "sync.budget.window_seconds"),
    ({"budget": {"calls_per_hour": 5}}, "sync.budget.calls_per_hour"),
    ({"budgets": {"mycrm": {"window_seconds": 100_000}}}, "sync.budgets.mycrm.window_seconds"),
    ({"push_delay_seconds": -1}, "sync.push_delay_seconds"),
])
def test_malformed_budget_settings_are_refused_naming_the_setting(
        tmp_path: Path, sync: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(tmp_path / "absent.toml", sync=sync)


# -- the budget itself ----------------------------------------------------------------------------

def test_usage_is_shared_by_every_budget_of_the_connection_and_windows_roll_over(
        engine: Engine, connection_id: int) -> None:  # noqa: F811
    clock = Clock(WINDOW_START + timedelta(seconds=5))
    limits = BudgetLimits(calls_per_day=10, calls_per_window=3, window_seconds=60)
    first = ApiBudget(engine, connection_id, limits, clock=clock)
    first.check()
    first.spend(2)
    restarted = ApiBudget(engine, connection_id, limits, clock=clock)  # another process
    restarted.spend(1)
    with pytest.raises(BudgetExhausted) as stopped:
        first.check()
    assert stopped.value.resumes_at == WINDOW_START + timedelta(seconds=60)
    assert "3 of 3 calls for this 60-second window spent" in str(stopped.value)
    clock.moment = WINDOW_START + timedelta(seconds=61)
    restarted.check()  # a new window
    restarted.spend(3)
    clock.moment += timedelta(seconds=60)
    restarted.spend(4)
    with pytest.raises(BudgetExhausted, match="10 of 10 calls for the day") as day:
        restarted.check()
    assert day.value.resumes_at == datetime(2026, 11, 21, tzinfo=UTC)
    clock.moment = datetime(2026, 11, 21, 0, 0, 1, tzinfo=UTC)
    first.check()  # a new day
    usage = first.usage()
    assert usage is not None and usage.day_calls == 10  # yesterday's, until the next spend


def test_the_crms_zero_left_wins_over_the_hubs_own_count(engine: Engine,
                                                         connection_id: int) -> None:  # noqa: F811
    clock = Clock(WINDOW_START)
    budget = ApiBudget(engine, connection_id, BudgetLimits(None, None, 60), clock=clock)
    reset = WINDOW_START + timedelta(minutes=30)
    budget.spend(1, RateInfo(WINDOW_START, (RateWindow("x-ratelimit", 0, 500, reset),)))
    with pytest.raises(BudgetExhausted) as stopped:
        budget.check()
    assert stopped.value.resumes_at == reset
    assert "the CRM reported 0 of 500 calls left (x-ratelimit)" in str(stopped.value)
    usage = budget.usage()
    assert usage is not None and (usage.crm_window, usage.crm_remaining, usage.crm_limit) == (
        "x-ratelimit", 0, 500)
    clock.moment = reset + timedelta(seconds=1)
    budget.check()
    budget.spend(1, RateInfo(clock.moment, (RateWindow("x-ratelimit", 499, 500, None),)))
    usage = budget.usage()
    assert usage is not None and usage.blocked_until is None and usage.crm_remaining == 499


def test_retry_after_blocks_the_connection_only_when_the_crm_refused_the_whole_call(
        engine: Engine, connection_id: int) -> None:  # noqa: F811
    clock = Clock(WINDOW_START)
    budget = ApiBudget(engine, connection_id, BudgetLimits(None, None, 60), clock=clock)
    later = WINDOW_START + timedelta(seconds=90)
    # a call answered per record: a record's 429 is that record's retry, not the connection's
    budget.spend(3, RateInfo(WINDOW_START, retry_at=later))
    budget.check()
    budget.spend(1, RateInfo(WINDOW_START, retry_at=later), refused=True)
    with pytest.raises(BudgetExhausted, match="the CRM asked to wait") as stopped:
        budget.check()
    assert stopped.value.resumes_at == later


# -- the engine inside the budget ----------------------------------------------------------------

def test_an_exhausted_window_stops_the_cycle_cleanly_and_the_next_window_finishes_it(
        engine: Engine, settings: Settings, connection_id: int) -> None:  # noqa: F811
    crm = MemoryCRM(batch_size=10)
    for i in range(25):
        add_contact(engine, f"p{i}@example.com", f"P{i}")
    clock = Clock(WINDOW_START)
    budget = ApiBudget(engine, connection_id, BudgetLimits(None, 2, 60), clock=clock)
    # one report page and one create batch fit; the second batch does not
    first = cycle(engine, settings, connection_id, crm, budget)
    assert first.status == "budget_exhausted" and crm.calls == 2
    assert first.paused_until == WINDOW_START + timedelta(seconds=60)
    assert len(crm.records["contacts"]) == 10
    assert scalar(engine, "SELECT count(*) FROM object_links WHERE remote_id LIKE 'pending:%'") == 0
    run = rows(engine, "SELECT status, message FROM sync_runs ORDER BY id")[-1]
    assert run.status == "budget_exhausted"
    assert run.message.startswith("budget exhausted, resumes at 2026-11-20T09:01:00Z")
    [job] = open_errors(engine)
    assert (job.level, job.direction, job.object) == ("job", "cycle", BUDGET_OBJECT)
    assert "resumes at 2026-11-20T09:01:00Z" in job.reason
    # still within the window: nothing is called at all
    again = cycle(engine, settings, connection_id, crm, budget)
    assert again.status == "budget_exhausted" and crm.calls == 2
    clock.moment += timedelta(seconds=60)
    budget.limits = BudgetLimits(None, 10, 60)
    done = cycle(engine, settings, connection_id, crm, budget)
    assert done.status == "ok"
    assert sorted(r["email"] for r in crm.records["contacts"].values()) == sorted(
        f"p{i}@example.com" for i in range(25))
    assert scalar(engine, "SELECT count(*) FROM object_links") == 25
    assert open_errors(engine) == []  # the budget's entry cleared itself


def test_a_pull_stopped_by_the_budget_keeps_its_cursor_and_loses_nothing(
        engine: Engine, settings: Settings, connection_id: int,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "PAGE_SIZE", 5)
    crm = MemoryCRM(batch_size=10)
    for i in range(12):
        crm.put("contacts", email=f"crm{i}@example.com", first_name=f"C{i}")
    clock = Clock(WINDOW_START)
    budget = ApiBudget(engine, connection_id, BudgetLimits(None, 2, 60), clock=clock)
    stopped = cycle(engine, settings, connection_id, crm, budget)
    assert stopped.status == "budget_exhausted"
    assert scalar(engine, "SELECT count(*) FROM contacts") == 10  # two pages of five
    clock.moment += timedelta(seconds=60)
    budget.limits = BudgetLimits(None, 10, 60)
    done = cycle(engine, settings, connection_id, crm, budget)
    assert done.status == "ok" and done.counts["pull:contacts"]["created"] == 2
    assert scalar(engine, "SELECT count(*) FROM contacts") == 12
    assert scalar(engine, "SELECT count(DISTINCT email) FROM contacts") == 12
    assert len(crm.records["contacts"]) == 12  # nothing pushed back as new


def test_the_crm_saying_no_calls_left_pauses_until_its_reset(
        engine: Engine, settings: Settings, connection_id: int) -> None:  # noqa: F811
    crm = MemoryCRM(batch_size=10)
    for i in range(25):
        add_contact(engine, f"q{i}@example.com")
    clock = Clock(datetime.now(UTC))
    reset = clock.moment + timedelta(minutes=15)
    crm.rate_limit(2, limit=1000, reset_at=reset)  # the CRM has two calls left for us
    budget = ApiBudget(engine, connection_id, BudgetLimits(None, None, 60), clock=clock)
    first = cycle(engine, settings, connection_id, crm, budget)
    assert first.status == "budget_exhausted" and first.paused_until == reset
    assert crm.calls == 2 and len(crm.records["contacts"]) == 10
    assert "the CRM reported 0 of 1000 calls left (memory)" in (first.budget_message or "")
    cycle(engine, settings, connection_id, crm, budget)
    assert crm.calls == 2  # blocked: not even a report page
    clock.moment = reset + timedelta(seconds=1)
    crm.rate_limit(1000, limit=1000)
    assert cycle(engine, settings, connection_id, crm, budget).status == "ok"
    assert len(crm.records["contacts"]) == 25
    assert scalar(engine, "SELECT count(*) FROM object_links WHERE remote_id LIKE 'pending:%'") == 0


def test_a_long_retry_after_ends_the_cycle_instead_of_sleeping(
        engine: Engine, settings: Settings, connection_id: int) -> None:  # noqa: F811
    crm = MemoryCRM(batch_size=10)
    add_contact(engine, "r@example.com")
    crm.fail_next(1, retry_after=3600)
    budget = ApiBudget(engine, connection_id, BudgetLimits(None, None, 60))
    slept: list[float] = []
    before = datetime.now(UTC)
    report = cycle(engine, settings, connection_id, crm, budget, slept)
    assert slept == [] and report.status == "budget_exhausted"
    assert report.paused_until is not None
    assert report.paused_until - before >= timedelta(seconds=3600)
    assert "the CRM asked to wait 3600 s" in (report.budget_message or "")
    crm.fail_next(0)
    assert len(crm.records["contacts"]) == 0


# -- where a budget stands: API and CLI ------------------------------------------------------

def test_the_status_reads_old_counts_as_zero_and_says_until_when_syncs_wait(
        engine: Engine, connection_id: int) -> None:  # noqa: F811
    sync = SyncSettings.model_validate({"budget": {"calls_per_day": 10, "calls_per_window": 3}})
    at = WINDOW_START + timedelta(seconds=5)
    fresh = budget_status(engine, sync, connection_id, "tiny", now=at)
    assert (fresh.day_calls, fresh.window_calls, fresh.blocked_until) == (0, 0, None)
    budget = ApiBudget(engine, connection_id, limits_for(sync, "tiny"), clock=lambda: at)
    budget.spend(3, RateInfo(at, (RateWindow("x-ratelimit", 40, 100, None),)))
    spent = budget_status(engine, sync, connection_id, "tiny", now=at)
    assert (spent.day_calls, spent.window_calls) == (3, 3)
    assert spent.blocked_until == WINDOW_START + timedelta(seconds=60)
    assert "3 of 3 calls for this 60-second window spent" in (spent.blocked_reason or "")
    assert spent.to_dict()["crm"] == {"window": "x-ratelimit", "remaining": 40, "limit": 100,
                                      "seen_at": "2026-11-20T09:00:05Z"}
    later = budget_status(engine, sync, connection_id, "tiny",
                          now=WINDOW_START + timedelta(minutes=2))
    assert (later.day_calls, later.window_calls, later.blocked_until) == (3, 0, None)
    tomorrow = budget_status(engine, sync, connection_id, "tiny",
                             now=WINDOW_START + timedelta(days=1))
    assert tomorrow.day_calls == 0


def test_budget_cli_and_api(cli: Any, client: TestClient, auth: dict[str, str],
                            settings: Settings, engine: Engine) -> None:
    env = {"LEADBRIDGE_DATA_DIR": str(settings.data_dir),
           "LEADBRIDGE_SECRET_KEY": "test-secret-key-0123456789abcdef",
           "LEADBRIDGE_SYNC__BUDGET__CALLS_PER_DAY": "500"}
    added = cli("connections", "add", "crm-a", "--kind", "bottlecrm", "--url",
                "http://127.0.0.1:9", "--email", "a@example.com", "--password-stdin",
                input="pw\n", **env)
    assert added.exit_code == 0, added.output
    with engine.connect() as conn:
        cid = conn.execute(text("SELECT id FROM connections WHERE name = 'crm-a'")).scalar_one()
    now = datetime.now(UTC)
    ApiBudget(engine, cid, BudgetLimits(500, None, 60), clock=lambda: now).spend(
        7, RateInfo(now, (RateWindow("hubspot-daily", 0, 250_000, now + timedelta(hours=1)),)))
    shown = cli("connections", "budget", "crm-a", **env)
    assert shown.exit_code == 0, shown.output
    out = " ".join(shown.output.split())
    assert "crm-a: 7 calls today (UTC) of 500" in out
    assert "the CRM said 0 of 250000 left (hubspot-daily)" in out
    assert "syncs wait until" in out and "the CRM reported 0 of 250000 calls left" in out
    missing = cli("connections", "budget", "nope", **env)
    assert missing.exit_code != 0 and "nope" in missing.output + missing.stderr
    got = client.get("/api/v1/connections/crm-a/budget", headers=auth)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["connection"], body["day_calls"], body["crm"]["remaining"]) == ("crm-a", 7, 0)
    assert body["blocked_until"] is not None
    assert client.get("/api/v1/connections/nope/budget", headers=auth).status_code == 404
    assert client.get("/api/v1/connections/crm-a/budget").status_code == 401
