"""`leadbridge conversions import|poll|sources|numbers`, in-process on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from conversion_seed import VISITOR, counts, seed, stored
from support import Cli, words

HEADER = "action,title,occurred_at,transaction_ref,amount,currency,margin,visitor_id,call_ref\n"




def test_import_prints_counts_that_add_up_and_the_rejected_lines(
        cli: Cli, engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    path = tmp_path / "sales.csv"
    path.write_text(HEADER + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n"
                    + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n"
                    + f"sale,,2026-13-01,T-2,10,EUR,,{VISITOR},\n"
                    + f"sale,,2026-03-01,T-3,10,XYZ,,{VISITOR},\n", encoding="utf-8")
    dry = cli("conversions", "import", str(path), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run of sales.csv: done" in words(dry.output)
    assert counts(engine)["conversions"] == 0 and counts(engine)["conversion_imports"] == 0
    got = cli("conversions", "import", str(path), "--show", "1")
    assert got.exit_code == 0, got.output
    out = words(got.output)
    assert "rows read 4 = accepted 1 + merged 1 + rejected 2" in out
    assert "line 4: bad date: occurred_at '2026-13-01' is not ISO 8601" in out
    assert "line 5" not in out
    assert "... 1 more rejected rows (GET /api/v1/conversions/imports/" in out
    assert len(stored(engine)) == 1


def test_import_of_a_missing_or_refused_file_exits_2(cli: Cli, tmp_path: Path) -> None:
    missing = cli("conversions", "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2
    assert "nope.csv: no such file" in words(missing.output)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("vid,dt,t\nabc,2026-03-01,Caf\u00e9\n".encode("latin-1"))
    refused = cli("conversions", "import", str(latin))
    assert refused.exit_code == 2
    assert "latin.csv: not UTF-8 text (line 2, byte 27)" in words(refused.output)


def test_sources_and_numbers(cli: Cli) -> None:
    made = cli("conversions", "sources", "add", "Radio", "--channel", "campaign",
               "--source", "radio", "--number", "+44 20 7183 8750")
    assert made.exit_code == 0, made.output
    assert "with +442071838750" in made.output
    assert cli("conversions", "sources", "add", "Print").exit_code == 0
    moved = cli("conversions", "numbers", "add", "+442071838750", "--source", "Print")
    assert moved.exit_code == 0 and "+442071838750 -> Print" in moved.output
    listed = cli("conversions", "sources", "list")
    assert [line.split()[1:] for line in listed.output.splitlines()] == [
        ["Print", "-", "-", "-", "+442071838750"], ["Radio", "campaign", "radio", "-", "-"]]
    unknown = cli("conversions", "numbers", "add", "+442071838750", "--source", "TV")
    assert unknown.exit_code == 3 and "marketing source 'TV' does not exist" in unknown.output
    bad = cli("conversions", "numbers", "add", "12345", "--source", "Print")
    assert bad.exit_code == 2 and "is not a phone number" in words(bad.output)
    assert cli("conversions", "sources", "add", "Radio").exit_code == 2


def test_poll_runs_one_pass_over_the_drop_folder(cli: Cli, engine: Engine,
                                                 tmp_path: Path) -> None:
    seed(engine)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(HEADER + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n")
    env = {"LEADBRIDGE_CONVERSIONS__DROP__LOCATION": str(inbox),
           "LEADBRIDGE_CONVERSIONS__DROP__SETTLE_SECONDS": "0"}
    got = cli("conversions", "poll", **env)
    assert got.exit_code == 0, got.output
    assert "a.csv -> done/a.csv" in got.output
    assert (inbox / "done" / "a.report.json").exists() and len(stored(engine)) == 1
    assert "no settled CSV files" in cli("conversions", "poll", **env).output
    off = cli("conversions", "poll")
    assert off.exit_code == 2 and "set conversions.drop.location" in off.output
