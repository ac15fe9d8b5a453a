"""Creating a CRM account from a Website Visitor on demand, against the memory CRM, on both
databases: once, never a second account, and clear errors for everything that can go wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from leadbridge import connections as registry
from leadbridge.config import Settings
from leadbridge.connectors.memory import MemoryCRM, SimulatedCrash
from leadbridge.errors import CrmError, InputError, NotFound
from leadbridge.keyring import load_keyring
from leadbridge.store.tables import connections, organisations
from leadbridge.sync.accounts import create_account
from support import scalar
from visitor_seed import NOW
from visitor_world import account_of, permalink, sync, visitor


def links(engine: Engine) -> int:
    return int(scalar(engine, "SELECT count(*) FROM object_links"))


def test_creates_the_account_with_the_visitors_values_and_associates_it(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    initech, token = visitor(engine, "Initech", score=25, days_ago=1, type="education",
                             domain="initech.edu", phone="+14155552671",
                             website="https://initech.edu", address="1 Loop, Austin",
                             country="US", owner="bill@example.com")

    done = create_account(engine, settings, initech, "tiny", now=NOW)

    assert done.outcome == "created" and done.crm_object == "accounts"
    assert account_of(engine, initech) == done.account_id
    got = crm.records["accounts"][done.account_id]
    assert got == {"name": "Initech", "domain": "initech.edu", "phone": "+14155552671",
                   "website": "https://initech.edu", "address": "1 Loop, Austin",
                   "country": "US", "owner": "bill@example.com", "score": 25, "band": "warm",
                   "last_visit": (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "permalink": permalink(settings, token)}
    # the next cycle finds it linked: nothing is created or changed
    before = len(crm.records["accounts"])
    report = sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=1))
    assert len(crm.records["accounts"]) == before
    assert "created" not in report.counts.get("push:website_visitor", {})


def test_asking_twice_reports_the_existing_account_and_calls_nothing(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", score=60, domain="acme.com")
    first = create_account(engine, settings, acme, "tiny", now=NOW)
    calls = crm.calls
    again = create_account(engine, settings, acme, now=NOW)  # the only connection
    assert again.outcome == "existing" and again.account_id == first.account_id
    assert crm.calls == calls
    assert len(crm.records["accounts"]) == 1 and links(engine) == 1


def test_an_account_with_the_domain_is_associated_before_one_with_the_name(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    named = crm.put("accounts", name="Globex")
    by_domain = crm.put("accounts", name="Globex International", domain="GLOBEX.com")
    globex, token = visitor(engine, "Globex", score=30, domain="globex.com")

    done = create_account(engine, settings, globex, "tiny", now=NOW)

    assert (done.outcome, done.account_id, done.matched_by) == ("matched", by_domain, "domain")
    assert len(crm.records["accounts"]) == 2  # nothing created
    got = crm.records["accounts"][by_domain]
    assert got["name"] == "Globex International"  # the CRM's name stays
    assert got["score"] == 30 and got["permalink"] == permalink(settings, token)
    assert "score" not in crm.records["accounts"][named]


def test_an_account_with_the_name_is_associated_lowest_id_first(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    crm.put("accounts", id="20", name="umbrella")
    crm.put("accounts", id="9", name="Umbrella")
    crm.put("accounts", id="100", name="Umbrella")
    umbrella, _ = visitor(engine, "Umbrella", score=60, type="government")
    done = create_account(engine, settings, umbrella, "tiny", now=NOW)
    assert (done.outcome, done.account_id, done.matched_by) == ("matched", "9", "name")
    assert len(crm.records["accounts"]) == 3


def test_an_account_held_by_another_visitor_is_not_taken(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", score=60, domain="acme.com")
    twin, _ = visitor(engine, "Acme", score=10, domain="acme-labs.com")
    held = create_account(engine, settings, acme, "tiny", now=NOW)
    crm.refuse("accounts", "name: an account named Acme already exists")
    with pytest.raises(CrmError, match="refused the new accounts record for website visitor "
                                       f"{twin}: name: an account named Acme already exists"):
        create_account(engine, settings, twin, "tiny", now=NOW)
    assert account_of(engine, twin) is None and account_of(engine, acme) == held.account_id
    assert links(engine) == 1  # the refused create left no intent behind


def test_a_crash_after_the_crm_created_it_is_recovered_without_a_second_account(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", score=60, domain="acme.com")
    crm.crash_after(1)
    with pytest.raises(SimulatedCrash):
        create_account(engine, settings, acme, "tiny", now=NOW)
    assert len(crm.records["accounts"]) == 1 and account_of(engine, acme) is None
    with pytest.raises(CrmError, match="run `leadbridge sync tiny`"):
        create_account(engine, settings, acme, "tiny", now=NOW)
    report = sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=1))
    assert report.counts["push:website_visitor"]["recovered"] == 1
    (account_id,) = crm.records["accounts"]
    assert account_of(engine, acme) == account_id
    assert create_account(engine, settings, acme, "tiny", now=NOW).outcome == "existing"
    assert len(crm.records["accounts"]) == 1


def test_a_crm_that_does_not_answer_leaves_nothing_behind(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", score=60, domain="acme.com")
    crm.fail_next(1)  # the first look-up fails
    with pytest.raises(CrmError, match=r"could not look up accounts by domain .*503"):
        create_account(engine, settings, acme, "tiny", now=NOW)
    assert links(engine) == 0 and crm.records["accounts"] == {}
    assert create_account(engine, settings, acme, "tiny", now=NOW).outcome == "created"


def test_unknown_visitors_and_organisations_that_are_not_visitors_are_refused(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    isp, _ = visitor(engine, "Telekom", type="isp")
    blocked, _ = visitor(engine, "Blocked Inc", blocked=True)
    acme, _ = visitor(engine, "Acme", domain="acme.com")
    merged, _ = visitor(engine, "Acme Old", merged_into_id=acme)
    with pytest.raises(NotFound, match="website visitor 999999 does not exist"):
        create_account(engine, settings, 999999, "tiny")
    with pytest.raises(InputError, match=r"Telekom\) is classified as isp"):
        create_account(engine, settings, isp, "tiny")
    with pytest.raises(InputError, match="is blocked"):
        create_account(engine, settings, blocked, "tiny")
    with pytest.raises(InputError, match=f"was merged into {acme}"):
        create_account(engine, settings, merged, "tiny")
    assert crm.calls == 0 and links(engine) == 0


def test_connections_unknown_missing_or_ambiguous_are_named(
        engine: Engine, settings: Settings, crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", domain="acme.com")
    with pytest.raises(InputError, match="no CRM connection is set up"):
        create_account(engine, settings, acme)
    with engine.begin() as conn:
        for name in ("one", "two"):
            registry.add_connection(conn, load_keyring(settings), name, "memory", {}, {})
    with pytest.raises(NotFound, match=r"no connection named 'three' \(connections: one, two\)"):
        create_account(engine, settings, acme, "three")
    with pytest.raises(InputError, match=r"several CRM connections are enabled \(one, two\)"):
        create_account(engine, settings, acme)
    assert create_account(engine, settings, acme, "two").outcome == "created"
    with engine.begin() as conn:
        conn.execute(update(connections).where(connections.c.name == "one").values(enabled=False))
    with pytest.raises(InputError, match="connection 'one' is disabled, so nothing is sent"):
        create_account(engine, settings, acme, "one")


def test_a_value_the_crm_requires_and_the_visitor_lacks_is_named(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", domain="acme.com")
    with engine.begin() as conn:  # a name the CRM cannot take
        conn.execute(update(organisations).where(organisations.c.id == acme).values(name=" "))
    with pytest.raises(InputError, match=r"needs name, and website visitor .* has no value"):
        create_account(engine, settings, acme, "tiny")
    assert links(engine) == 0 and crm.records["accounts"] == {}


def test_a_new_account_is_made_when_the_associated_one_was_deleted_in_the_crm(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", score=60, domain="acme.com")
    first = create_account(engine, settings, acme, "tiny", now=NOW)
    crm.remove("accounts", first.account_id)
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=1))
    assert account_of(engine, acme) is None
    again = create_account(engine, settings, acme, "tiny", now=NOW + timedelta(minutes=2))
    assert again.outcome == "created" and again.account_id != first.account_id
    assert account_of(engine, acme) == again.account_id
    assert list(crm.records["accounts"]) == [again.account_id]
    assert links(engine) == 1
