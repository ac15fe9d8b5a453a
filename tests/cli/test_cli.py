"""The `leadbridge` command, run in-process against SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from leadbridge.apikeys import hash_key, verify_key
from leadbridge.cli import app
from leadbridge.hub import Hub
from leadbridge.identify.contacts import read_contact_token
from leadbridge.scoring.ruleset import load_decay
from leadbridge.store.tables import hits, sites
from support import Cli, failed, ok, rows, scalar, track, words

SECRET = "cli-test-secret-0123456789abcdef"
ACME_IP, BIGBB_IP = "203.0.113.5", "203.0.113.200"
JANE, BOB = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
PRICING_TOML = ('[[scoring.page_rules]]\npattern = "/pricing*"\nname = "Pricing"\n'
                'category = "pricing"\nscore = 10\n')







def visit(client: TestClient, site: int, key: str, ip: str, path: str = "/",
          **params: str) -> None:
    r = track(client, site, f"https://www.example.com{path}", cip=ip, token_auth=key, **params)
    assert r.status_code in (200, 204), r.text


def org_id(engine: Engine, name: str) -> int:
    return int(scalar(engine, "SELECT id FROM organisations WHERE name = :n", n=name))


# -- db ----------------------------------------------------------------------------------------


def test_db_upgrade_is_safe_to_run_twice(cli: Cli, engine: Engine) -> None:
    for _ in range(2):
        result = ok(cli("db", "upgrade"))
        assert "database is up to date" in words(result.stdout)
    assert scalar(engine, "SELECT count(*) FROM alembic_version") == 1
    assert scalar(engine, "SELECT count(*) FROM sites") == 0


def test_db_upgrade_creates_the_default_sqlite_database(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("LEADBRIDGE_"):
            monkeypatch.delenv(key)
    runner = CliRunner()
    for _ in range(2):
        ok(runner.invoke(app, ["db", "upgrade"]))
    assert (tmp_path / "var" / "leadbridge.db").is_file()
    site_id = int(ok(runner.invoke(app, ["sites", "add", "Fresh", "--host", "fresh.example"]))
                  .stdout)
    assert f"{site_id} Fresh fresh.example" in words(ok(runner.invoke(app, ["sites", "list"]))
                                                    .stdout)


# -- sites -------------------------------------------------------------------------------------


def test_sites_add_prints_only_the_id_and_stores_normalised_hosts(cli: Cli,
                                                                  engine: Engine) -> None:
    result = ok(cli("sites", "add", "  Example  ", "--host", "WWW.Example.COM.",
                    "--host", "*.Example.org", "--host", "www.example.com",
                    "--host", "shop.example.com:8443"))
    site_id = int(result.stdout)
    assert result.stdout == f"{site_id}\n"
    with engine.connect() as conn:
        [site] = conn.execute(select(sites.c.id, sites.c.name, sites.c.hosts)).all()
    assert (site.id, site.name) == (site_id, "Example")
    assert site.hosts == ["www.example.com", "*.example.org", "shop.example.com:8443"]


@pytest.mark.parametrize(("args", "needle"), [
    ((), "needs at least one --host"),
    (("--host", "http://x"), "not a URL"),
    (("--host", "ok.example", "--host", "bad host!"), "'bad host!' is not a valid host name"),
    (("--host", "-dash.example"), "is not a valid host name"),
])
def test_sites_add_with_a_bad_host_exits_2_and_stores_nothing(
    cli: Cli, engine: Engine, args: tuple[str, ...], needle: str,
) -> None:
    failed(cli("sites", "add", "Example", *args), 2, needle)
    assert scalar(engine, "SELECT count(*) FROM sites") == 0


def test_sites_add_with_a_blank_name_exits_2(cli: Cli, engine: Engine) -> None:
    failed(cli("sites", "add", "  ", "--host", "www.example.com"), 2, "needs a name")
    assert scalar(engine, "SELECT count(*) FROM sites") == 0


def test_sites_list_and_remove(cli: Cli, engine: Engine) -> None:
    first = int(ok(cli("sites", "add", "First", "--host", "one.example")).stdout)
    second = int(ok(cli("sites", "add", "Second", "--host", "two.example",
                        "--host", "*.two.example")).stdout)
    listing = words(ok(cli("sites", "list")).stdout)
    assert listing == f"{first} First one.example {second} Second two.example, *.two.example"
    assert words(ok(cli("sites", "remove", str(first))).stdout) == f"site {first} removed"
    assert [r.id for r in rows(engine, "SELECT id FROM sites")] == [second]
    assert words(ok(cli("sites", "list")).stdout).startswith(f"{second} Second")


def test_sites_remove_unknown_id_exits_3(cli: Cli, engine: Engine) -> None:
    ok(cli("sites", "add", "Kept", "--host", "kept.example"))
    failed(cli("sites", "remove", "4242"), 3, "site 4242 does not exist")
    assert scalar(engine, "SELECT count(*) FROM sites") == 1


# -- API keys ----------------------------------------------------------------------------------


def test_apikeys_create_prints_the_key_once_and_stores_only_its_hash(cli: Cli,
                                                                     engine: Engine) -> None:
    result = ok(cli("apikeys", "create", "ci"))
    clear = result.stdout.strip()
    assert result.stdout == clear + "\n" and clear.startswith("lb_") and len(clear) > 30
    assert "not shown again" in words(result.stderr)
    assert clear not in result.stderr
    [row] = rows(engine, "SELECT * FROM api_keys")
    assert row.key_hash == hash_key(clear) == hashlib.sha256(clear.encode()).hexdigest()
    assert row.name == "ci"
    assert not any(clear in str(value) for value in row)
    with engine.connect() as conn:
        found = verify_key(conn, clear)
    assert found is not None and found.name == "ci"


def test_apikeys_list_never_shows_the_clear_key(cli: Cli) -> None:
    clear = ok(cli("apikeys", "create", "ci")).stdout.strip()
    other = ok(cli("apikeys", "create", "dashboard")).stdout.strip()
    listing = words(ok(cli("apikeys", "list")).output)
    assert clear not in listing and other not in listing
    assert "ci" in listing and "dashboard" in listing and listing.count("active") == 2
    assert clear[:10] in listing  # the short prefix identifies the key


def test_apikeys_revoke_stops_the_key_from_authenticating(cli: Cli, engine: Engine) -> None:
    clear = ok(cli("apikeys", "create", "ci")).stdout.strip()
    kept = ok(cli("apikeys", "create", "kept")).stdout.strip()
    key_id = scalar(engine, "SELECT id FROM api_keys WHERE name = 'ci'")
    ok(cli("apikeys", "revoke", str(key_id)))
    with engine.connect() as conn:
        assert verify_key(conn, clear) is None
        assert verify_key(conn, kept) is not None
    assert "revoked" in words(ok(cli("apikeys", "list")).stdout)
    failed(cli("apikeys", "revoke", str(key_id)), 3, "already revoked")
    failed(cli("apikeys", "revoke", "999"), 3, "API key 999")


def test_apikeys_create_with_blank_name_exits_2(cli: Cli, engine: Engine) -> None:
    failed(cli("apikeys", "create", " "), 2, "needs a name")
    assert scalar(engine, "SELECT count(*) FROM api_keys") == 0


# -- contacts ----------------------------------------------------------------------------------


def test_contacts_token_is_accepted_with_the_same_secret(cli: Cli) -> None:
    result = ok(cli("contacts", "token", "Jane@Example.COM", LEADBRIDGE_SECRET_KEY=SECRET))
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert read_contact_token(SECRET, token) == "jane@example.com"
    assert read_contact_token("another-secret", token) is None


def test_contacts_token_without_a_secret_uses_the_generated_key_file(cli: Cli,
                                                                     tmp_path: Path) -> None:
    first = ok(cli("contacts", "token", "jane@example.com")).stdout.strip()
    secret = (tmp_path / "var" / "secret.key").read_text(encoding="utf-8").strip()
    assert read_contact_token(secret, first) == "jane@example.com"
    assert ok(cli("contacts", "token", "jane@example.com")).stdout.strip() == first


def test_contacts_token_for_a_bad_email_exits_2(cli: Cli) -> None:
    failed(cli("contacts", "token", "jane.example.com", LEADBRIDGE_SECRET_KEY=SECRET), 2,
           "'jane.example.com' is not an email address")


# -- scoring -----------------------------------------------------------------------------------


def test_scoring_rules_lists_the_rules_from_leadbridge_toml(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "leadbridge.toml").write_text(PRICING_TOML, encoding="utf-8")
    text = words(ok(cli("scoring", "rules")).stdout)
    assert "page /pricing* Pricing pricing 10" in text
    assert "default page score 1" in text and "half-life 30 days" in text


def test_scoring_rules_with_an_invalid_regex_exits_2_naming_the_pattern(
    cli: Cli, tmp_path: Path,
) -> None:
    (tmp_path / "leadbridge.toml").write_text(
        '[[scoring.page_rules]]\npattern = "re:(unclosed"\nscore = 5\n', encoding="utf-8")
    failed(cli("scoring", "rules"), 2, "re:(unclosed", "invalid regex")


def test_scoring_rescore_applies_new_rules_to_stored_hits(
    cli: Cli, client: TestClient, site_id: int, api_key: str, hub: Hub, tmp_path: Path,
) -> None:
    visit(client, site_id, api_key, ACME_IP, "/pricing")
    visit(client, site_id, api_key, ACME_IP, "/blog/post")
    acme = org_id(hub.engine, "Acme Corp")
    before = hub.decay.current(scalar(hub.engine, "SELECT score_weight FROM organisations "
                                                  "WHERE id = :o", o=acme), hub.now())
    assert before == pytest.approx(2, rel=1e-3)

    (tmp_path / "leadbridge.toml").write_text(PRICING_TOML, encoding="utf-8")
    result = cli("scoring", "rescore")
    assert result.exit_code == 0, (
        "BUG in cli/scoring.py: the progress column '{task.total:,}' cannot format the task's "
        f"total=None, so every rescore crashes: {result.exception!r}")
    assert "1 hits changed score, name or category" in words(result.stdout)

    got = {r.url.rsplit("/", 1)[1]: (r.page_name, r.category, r.score)
           for r in rows(hub.engine, "SELECT url, page_name, category, score FROM hits")}
    assert got["pricing"] == ("Pricing", "pricing", 10.0)
    assert got["post"][1:] == (None, 1.0)
    after = hub.decay.current(scalar(hub.engine, "SELECT score_weight FROM organisations "
                                                 "WHERE id = :o", o=acme), hub.now())
    assert after == pytest.approx(11, rel=1e-3)
    assert "0 hits changed" in words(ok(cli("scoring", "rescore")).stdout)


def test_scoring_rescore_on_an_empty_database_changes_nothing(cli: Cli) -> None:
    result = cli("scoring", "rescore")
    assert result.exit_code == 0, (
        "BUG in cli/scoring.py: Progress is started with total=None and its column "
        f"'{{task.total:,}}' cannot format None: {result.exception!r}")
    assert "0 hits changed" in words(result.stdout)


# -- organisations -----------------------------------------------------------------------------


@pytest.fixture
def two_orgs(client: TestClient, site_id: int, api_key: str, hub: Hub) -> tuple[int, int]:
    """Acme Corp (company, 2 hits) and Big Broadband (isp, 1 hit), from real hits."""
    visit(client, site_id, api_key, ACME_IP, "/a")
    visit(client, site_id, api_key, ACME_IP, "/b")
    visit(client, site_id, api_key, BIGBB_IP, "/c")
    return org_id(hub.engine, "Acme Corp"), org_id(hub.engine, "Big Broadband")


def test_organisations_list_shows_type_name_domain_and_hits(cli: Cli,
                                                            two_orgs: tuple[int, int]) -> None:
    acme, bigbb = two_orgs
    text = words(ok(cli("organisations", "list")).stdout)
    assert f"{acme} company Acme Corp acme.example 2 hits" in text
    assert f"{bigbb} isp Big Broadband bigbb.example 1 hits" in text
    only_isps = words(ok(cli("organisations", "list", "--type", "isp")).stdout)
    assert "Big Broadband" in only_isps and "Acme" not in only_isps


def test_organisations_rename(cli: Cli, two_orgs: tuple[int, int], hub: Hub) -> None:
    acme, _ = two_orgs
    ok(cli("organisations", "rename", str(acme), "  Acme   Corporation "))
    assert scalar(hub.engine, "SELECT name FROM organisations WHERE id = :o",
                  o=acme) == "Acme Corporation"
    failed(cli("organisations", "rename", str(acme), "   "), 2, "the new name is empty")
    failed(cli("organisations", "rename", "9999", "Nobody"), 3, "organisation 9999")
    assert scalar(hub.engine, "SELECT name FROM organisations WHERE id = :o",
                  o=acme) == "Acme Corporation"


def test_organisations_reclassify_sets_a_type_a_person_chose(cli: Cli, two_orgs: tuple[int, int],
                                                             hub: Hub) -> None:
    _, bigbb = two_orgs
    ok(cli("organisations", "reclassify", str(bigbb), "Company"))
    [row] = rows(hub.engine, "SELECT type, type_set_by FROM organisations WHERE id = :o", o=bigbb)
    assert (row.type, row.type_set_by) == ("company", "person")


def test_organisations_reclassify_to_unknown_type_exits_2_naming_valid_types(
    cli: Cli, two_orgs: tuple[int, int], hub: Hub,
) -> None:
    acme, _ = two_orgs
    failed(cli("organisations", "reclassify", str(acme), "charity"), 2, "unknown type 'charity'",
           "company, isp, hosting, education, government")
    assert scalar(hub.engine, "SELECT type FROM organisations WHERE id = :o", o=acme) == "company"


def test_organisations_block_and_unblock(cli: Cli, two_orgs: tuple[int, int], hub: Hub) -> None:
    acme, _ = two_orgs
    ok(cli("organisations", "block", str(acme)))
    assert scalar(hub.engine, "SELECT blocked FROM organisations WHERE id = :o", o=acme)
    assert f"{acme} company Acme Corp acme.example 2 hits blocked" in words(
        ok(cli("organisations", "list")).stdout)
    ok(cli("organisations", "unblock", str(acme)))
    assert not scalar(hub.engine, "SELECT blocked FROM organisations WHERE id = :o", o=acme)
    failed(cli("organisations", "block", "9999"), 3, "organisation 9999 does not exist")


def test_organisations_merge_moves_hits_and_totals(cli: Cli, two_orgs: tuple[int, int],
                                                   hub: Hub) -> None:
    acme, bigbb = two_orgs
    total_weight = sum(r.score_weight for r in
                       rows(hub.engine, "SELECT score_weight FROM organisations"))
    ok(cli("organisations", "merge", str(bigbb), "--into", str(acme)))
    [survivor] = rows(hub.engine, "SELECT hit_count, score_weight FROM organisations "
                                  "WHERE id = :o", o=acme)
    assert survivor.hit_count == 3
    assert survivor.score_weight == pytest.approx(total_weight, rel=1e-9)
    with hub.engine.connect() as conn:
        owners = set(conn.execute(select(hits.c.organisation_id)).scalars())
    assert owners == {acme}
    assert f"merged into {acme}" in words(ok(cli("organisations", "list")).stdout)
    failed(cli("organisations", "merge", str(acme), "--into", str(acme)), 2, "into itself")
    failed(cli("organisations", "merge", str(bigbb), "--into", str(acme)), 2, "already merged")
    failed(cli("organisations", "merge", "9999", "--into", str(acme)), 3, "organisation 9999")


def test_organisations_enrich_keeps_good_rows_and_reports_each_bad_line(
    cli: Cli, two_orgs: tuple[int, int], hub: Hub, tmp_path: Path,
) -> None:
    acme, _ = two_orgs
    csv_file = tmp_path / "companies.csv"
    csv_file.write_text(
        "domain,name,employees,industry\n"
        "acme.example,Acme Corp,\"1,200\",Machinery\n"
        "broken.example,Broken,many,Nothing\n"
        ",,,Orphan\n"
        ",Initech,85,Software\n"
        "bad domain!,Bad Domain,10,x\n",
        encoding="utf-8",
    )
    result = cli("organisations", "enrich", str(csv_file))
    text = failed(result, 1, "line 3", "employees 'many' is not a whole number",
                  "line 4", "neither a domain nor a name", "line 6")
    assert "line 2" not in text and "line 5" not in text
    assert "5 rows read, 2 companies added, 0 updated, 3 skipped; 1 organisations updated" in \
        words(result.stdout)
    names = sorted(r.name for r in rows(hub.engine, "SELECT name FROM company_profiles"))
    assert names == ["Acme Corp", "Initech"]
    [org] = rows(hub.engine, "SELECT employees, industry FROM organisations WHERE id = :o",
                 o=acme)
    assert (org.employees, org.industry) == (1200, "Machinery")


def test_organisations_enrich_with_only_good_rows_exits_0(cli: Cli, engine: Engine,
                                                          tmp_path: Path) -> None:
    csv_file = tmp_path / "companies.csv"
    csv_file.write_text("domain;name;employees\nglobex.example;Globex;340\n", encoding="utf-8")
    result = ok(cli("organisations", "enrich", str(csv_file)))
    assert "1 rows read, 1 companies added" in words(result.stdout)
    assert scalar(engine, "SELECT employees FROM company_profiles") == 340


def test_organisations_enrich_with_an_unreadable_file_exits_2(cli: Cli, tmp_path: Path) -> None:
    failed(cli("organisations", "enrich", str(tmp_path / "missing.csv")), 2, "no such file")
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("acme.example,12\n", encoding="utf-8")
    failed(cli("organisations", "enrich", str(headerless)), 2, "domain or name")


def test_organisations_check_ranges_reports_each_bad_cidr(cli: Cli, tmp_path: Path) -> None:
    ranges = tmp_path / "ranges.csv"
    ranges.write_text(
        "network,company,domain,type\n"
        "203.0.113.0/25,Acme Corp,acme.example,company\n"
        "203.0.113.0/33,Too Long,,company\n"
        "10.0.0.1/24,Host Bits,,company\n"
        "not-a-network,Nonsense,,company\n"
        "2001:db8::/32,Six,,isp\n"
        "203.0.113.0/25,Again,,company\n",
        encoding="utf-8",
    )
    result = cli("organisations", "check-ranges", str(ranges))
    failed(result, 1, "line 3: network '203.0.113.0/33' is not an IPv4 or IPv6 CIDR network",
           "line 4: network '10.0.0.1/24' has host bits set; did you mean 10.0.0.0/24?",
           "line 5", "line 7: network 203.0.113.0/25 is already given on line 2")
    assert "2 ranges ok, 4 bad lines" in words(result.stdout)
    good = tmp_path / "good.csv"
    good.write_text("network,company\n198.51.100.0/24,Fine Ltd\n", encoding="utf-8")
    assert "1 ranges ok, 0 bad lines" in words(ok(cli("organisations", "check-ranges",
                                                      str(good))).stdout)


# -- erase -------------------------------------------------------------------------------------


@pytest.fixture
def jane_and_bob(client: TestClient, site_id: int, api_key: str) -> None:
    """Jane (identified, 2 hits) and Bob (anonymous, 1 hit), both from Acme Corp."""
    visit(client, site_id, api_key, ACME_IP, "/pricing", _id=JANE, uid="jane@example.com")
    visit(client, site_id, api_key, ACME_IP, "/blog", _id=JANE)
    visit(client, site_id, api_key, ACME_IP, "/about", _id=BOB)


def _org_totals(engine: Engine) -> Any:
    return rows(engine, "SELECT hit_count, score_weight FROM organisations "
                        "WHERE name = 'Acme Corp'")[0]


def test_erase_contact_removes_the_person_and_lowers_the_organisation(
    cli: Cli, jane_and_bob: None, hub: Hub,
) -> None:
    before = _org_totals(hub.engine)
    assert before.hit_count == 3
    result = ok(cli("erase", "--contact", "Jane@Example.com"))
    assert words(result.stdout) == "erased 1 contact(s), 1 browser(s), 2 hit(s)"
    assert scalar(hub.engine, "SELECT count(*) FROM contacts") == 0
    assert [r.visitor_key for r in rows(hub.engine, "SELECT visitor_key FROM browser_visitors")] \
        == [BOB]
    assert [r.url for r in rows(hub.engine, "SELECT url FROM hits")] == [
        "https://www.example.com/about"]
    after = _org_totals(hub.engine)
    assert after.hit_count == 1
    with hub.engine.connect() as conn:
        decay = load_decay(conn, hub.settings.scoring)
    assert decay.current(after.score_weight, hub.now()) == pytest.approx(1, rel=1e-3)
    [erasure] = rows(hub.engine, "SELECT * FROM erasures")
    assert erasure.subject_hash == hashlib.sha256(b"jane@example.com").hexdigest()
    assert erasure.hits_deleted == 2
    assert "jane" not in " ".join(str(v) for v in erasure).lower()


def test_erase_browser_removes_that_browser_and_its_hits(cli: Cli, jane_and_bob: None,
                                                         hub: Hub) -> None:
    result = ok(cli("erase", "--browser", BOB.upper()))
    assert words(result.stdout) == "erased 0 contact(s), 1 browser(s), 1 hit(s)"
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 2
    assert _org_totals(hub.engine).hit_count == 2
    assert scalar(hub.engine, "SELECT count(*) FROM contacts") == 1
    assert scalar(hub.engine, "SELECT subject FROM erasures") == "browser"


@pytest.mark.parametrize("args", [
    ("--contact", "jane@example.com", "--browser", JANE),
    (),
])
def test_erase_needs_exactly_one_subject(cli: Cli, jane_and_bob: None, hub: Hub,
                                         args: tuple[str, ...]) -> None:
    failed(cli("erase", *args), 2, "give exactly one of --contact EMAIL or --browser ID")
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 3


def test_erase_unknown_person_exits_3_and_bad_email_exits_2(cli: Cli, jane_and_bob: None,
                                                            hub: Hub) -> None:
    failed(cli("erase", "--contact", "nobody@example.com"), 3, "no contact with email")
    failed(cli("erase", "--browser", "0123456789abcdef"), 3, "no browser visitor")
    failed(cli("erase", "--contact", "not-an-email"), 2, "is not an email address")
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 3
    assert scalar(hub.engine, "SELECT count(*) FROM erasures") == 0


# -- retention ---------------------------------------------------------------------------------


def test_retention_deletes_only_hits_older_than_the_days_given(
    cli: Cli, client: TestClient, site_id: int, api_key: str, hub: Hub,
) -> None:
    now = hub.now()
    for days, path in ((45, "/old"), (31, "/older-than-30"), (20, "/recent")):
        visit(client, site_id, api_key, ACME_IP, path,
              cdt=str(int((now - timedelta(days=days)).timestamp())))
    visit(client, site_id, api_key, ACME_IP, "/today")
    totals = _org_totals(hub.engine)
    result = ok(cli("retention", "--days", "30"))
    assert words(result.stdout) == "2 hits older than 30 days deleted"
    left = sorted(r.url.rsplit("/", 1)[1] for r in rows(hub.engine, "SELECT url FROM hits"))
    assert left == ["recent", "today"]
    assert _org_totals(hub.engine) == totals  # totals are already aggregated and stay


def test_retention_uses_the_configured_period_by_default(
    cli: Cli, client: TestClient, site_id: int, api_key: str, hub: Hub, tmp_path: Path,
) -> None:
    now = hub.now()
    visit(client, site_id, api_key, ACME_IP, "/ten-days",
          cdt=str(int((now - timedelta(days=10)).timestamp())))
    visit(client, site_id, api_key, ACME_IP, "/today")
    assert "0 hits older than 395 days" in words(ok(cli("retention")).stdout)
    (tmp_path / "leadbridge.toml").write_text("[privacy]\nraw_hit_retention_days = 7\n",
                                              encoding="utf-8")
    assert "1 hits older than 7 days" in words(ok(cli("retention")).stdout)
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 1


def test_retention_with_zero_days_exits_2_and_deletes_nothing(
    cli: Cli, client: TestClient, site_id: int, api_key: str, hub: Hub,
) -> None:
    visit(client, site_id, api_key, ACME_IP, "/today")
    failed(cli("retention", "--days", "0"), 2, "--days must be at least 1")
    failed(cli("retention", "--days", "-5"), 2, "--days must be at least 1")
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 1


# -- a broken leadbridge.toml ------------------------------------------------------------------

BROKEN_TOML = [
    pytest.param("[privacy\nip_mask_bytes = 1\n", ("leadbridge.toml", "not valid TOML"),
                 id="syntax"),
    pytest.param('colour = "red"\n', ("leadbridge.toml", "colour", "Extra inputs"),
                 id="unknown-key"),
    pytest.param("[privacy]\nip_mask_bytes = 9\n", ("privacy.ip_mask_bytes",
                                                    "less than or equal to 3"),
                 id="mask-out-of-range"),
]
COMMANDS = [
    ("db", "upgrade"),
    ("sites", "list"),
    ("sites", "add", "X", "--host", "x.example"),
    ("apikeys", "create", "ci"),
    ("apikeys", "list"),
    ("contacts", "token", "jane@example.com"),
    ("scoring", "rules"),
    ("scoring", "rescore"),
    ("organisations", "list"),
    ("organisations", "block", "1"),
    ("erase", "--contact", "jane@example.com"),
    ("retention", "--days", "30"),
    ("serve",),
]


@pytest.mark.parametrize("toml_text,needles", BROKEN_TOML)
def test_a_broken_leadbridge_toml_stops_every_command_with_a_message(
    cli: Cli, engine: Engine, tmp_path: Path, toml_text: str, needles: tuple[str, ...],
) -> None:
    (tmp_path / "leadbridge.toml").write_text(toml_text, encoding="utf-8")
    for command in COMMANDS:
        result = cli(*command)
        assert result.exit_code != 0, command
        failed(result, result.exit_code, *needles)
    assert scalar(engine, "SELECT count(*) FROM sites") == 0
    assert scalar(engine, "SELECT count(*) FROM api_keys") == 0


def test_a_missing_config_file_named_by_leadbridge_config_is_reported(cli: Cli,
                                                                     tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "leadbridge.toml"
    failed(cli("sites", "list", LEADBRIDGE_CONFIG=str(missing)), 2, str(missing),
           "does not exist")


def test_an_unparsable_environment_value_is_reported_not_a_traceback(cli: Cli) -> None:
    # BUG (config.py load_settings): pydantic-settings raises SettingsError for a list field
    # given as plain text; it is not a ConfigError, so friendly_errors lets a traceback out.
    result = cli("sites", "list", LEADBRIDGE_TRACKING__TRUSTED_PROXIES="10.0.0.1")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        "BUG in config.py load_settings: pydantic_settings.SettingsError is not turned into "
        f"a ConfigError, so the command dies with a traceback: {result.exception!r}")
    failed(result, 2, "tracking")
