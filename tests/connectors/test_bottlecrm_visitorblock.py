"""The Website Visitor block in a BottleCRM description, and an account's domain (no I/O)."""

from __future__ import annotations

import pytest

from leadbridge.connectors.bottlecrm.visitorblock import (
    END,
    START,
    domain_of,
    read_block,
    write_block,
)

VALUES = {"website_visitor_score": 42, "website_visitor_band": "warm",
          "website_visitor_last_visit": "2026-11-20T10:00:00Z",
          "website_visitor_permalink": "https://hub.example.com/p/" + "t" * 43}


def test_a_written_block_reads_back_the_same_values_and_keeps_the_text() -> None:
    text = write_block("Met them at the fair.\nCall in May.", VALUES)
    assert text is not None and text.startswith("Met them at the fair.\nCall in May.\n\n")
    assert START in text and text.rstrip().endswith(END)
    assert read_block(text) == ("Met them at the fair.\nCall in May.", VALUES)


def test_rewriting_replaces_the_old_block_and_keeps_text_written_after_it() -> None:
    first = write_block("Intro.", VALUES)
    assert first is not None
    edited = first + "\nAdded later by a salesperson."
    text, values = read_block(edited)
    assert text == "Intro.\n\nAdded later by a salesperson."
    again = write_block(text, {**values, "website_visitor_score": 7})
    assert again is not None and again.count(START) == 1
    assert read_block(again)[1]["website_visitor_score"] == 7
    assert read_block(again)[0] == text


def test_no_values_and_no_text_is_no_description() -> None:
    assert write_block(None, {}) is None
    assert write_block("  Notes  ", dict.fromkeys(VALUES)) == "Notes"
    assert read_block(None) == (None, dict.fromkeys(VALUES))


def test_a_bare_permalink_in_a_description_names_the_visitor() -> None:
    link = "https://hub.example.com/p/" + "A1_-" * 8
    text, values = read_block(f"This is the company of {link} for sure.")
    assert values["website_visitor_permalink"] == link
    assert text == f"This is the company of {link} for sure."
    assert read_block("see https://example.com/p/short")[1]["website_visitor_permalink"] is None


def test_an_unfinished_block_is_read_to_the_end() -> None:
    text, values = read_block(f"Notes\n{START}\nScore: 3\nBand: cold\n")
    assert text == "Notes" and values["website_visitor_score"] == 3
    assert values["website_visitor_band"] == "cold"


@pytest.mark.parametrize(("website", "domain"), [
    ("https://www.Acme.com/about", "acme.com"), ("acme.com", "acme.com"),
    ("http://shop.acme.co.uk:8080", "shop.acme.co.uk"), ("", None), (None, None),
    ("https://", None),
])
def test_an_accounts_domain_is_its_websites_host(website: str | None,
                                                 domain: str | None) -> None:
    assert domain_of(website) == domain
