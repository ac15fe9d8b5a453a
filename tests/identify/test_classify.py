from __future__ import annotations

import pytest

from leadbridge.identify.classify import (
    DEFAULT_CONFIDENCE,
    ORGANISATION_TYPES,
    RULES,
    classify_organisation,
    domain_key,
    name_key,
)


@pytest.mark.parametrize(
    ("name", "domain", "expected"),
    [
        # ISPs: well-known names, as ASN databases spell them, and generic words
        ("COMCAST-7922", None, "isp"),
        ("Comcast Cable Communications, LLC", None, "isp"),
        ("Verizon Business", None, "isp"),
        ("Deutsche Telekom AG", None, "isp"),
        ("Vodafone GmbH", None, "isp"),
        ("Orange S.A.", None, "isp"),
        ("BT-CENTRAL-PLUS", None, "isp"),
        ("British Telecommunications PLC", None, "isp"),
        ("Telefónica de España", None, "isp"),
        ("Charter Communications Inc", None, "isp"),
        ("AT&T Services, Inc.", None, "isp"),
        ("ATT-INTERNET4", None, "isp"),
        ("T-Mobile USA, Inc.", None, "isp"),
        ("Nordic Broadband Oy", None, "isp"),
        ("Mountain Wireless LLC", None, "isp"),
        ("Telecomunicaciones del Sur", None, "isp"),
        ("Small Town Networks", "comcast.net", "isp"),
        # hosting and clouds
        ("AMAZON-02", None, "hosting"),
        ("Amazon.com, Inc.", None, "hosting"),
        ("GOOGLE-CLOUD-PLATFORM", None, "hosting"),
        ("MICROSOFT-AZURE", None, "hosting"),
        ("DIGITALOCEAN-ASN", None, "hosting"),
        ("OVH SAS", None, "hosting"),
        ("Hetzner Online GmbH", None, "hosting"),
        ("Linode, LLC", None, "hosting"),
        ("Akamai Technologies, Inc.", None, "hosting"),
        ("CLOUDFLARENET", "cloudflare.com", "hosting"),
        ("Frankfurt Data Center GmbH", None, "hosting"),
        ("Cheap VPS Hosting Ltd", None, "hosting"),
        ("unnamed", "ec2-1-2-3-4.compute.amazonaws.com", "hosting"),
        # education
        ("Stanford University", None, "education"),
        ("Universität Wien", None, "education"),
        ("Springfield Community College", None, "education"),
        ("Lincoln High School", None, "education"),
        ("Some Network", "mit.edu", "education"),
        ("Some Network", "ox.ac.uk", "education"),
        ("Some Network", "unimelb.edu.au", "education"),
        # government
        ("Ministry of Defence", None, "government"),
        ("City of Springfield", None, "government"),
        ("Federal Office for Migration", None, "government"),
        ("Some Network", "state.gov", "government"),
        ("Some Network", "army.mil", "government"),
        ("Some Network", "interieur.gouv.fr", "government"),
        ("Some Network", "hmrc.gov.uk", "government"),
        # companies
        ("Acme Widgets Ltd", None, "company"),
        ("GOOGLE", "google.com", "company"),
        ("Colorado Springs Bakery", None, "company"),
        ("Subtle Design GmbH", None, "company"),
    ],
)
def test_classify_organisation_by_name_and_domain(
    name: str, domain: str | None, expected: str
) -> None:
    kind, confidence = classify_organisation(name, domain)
    assert kind == expected
    assert 0.0 < confidence <= 1.0


def test_unknown_organisation_is_a_company_with_low_confidence() -> None:
    assert classify_organisation("Globex", None) == ("company", DEFAULT_CONFIDENCE)
    assert classify_organisation("", "") == ("company", DEFAULT_CONFIDENCE)


def test_domain_evidence_beats_name_words() -> None:
    # "cable" would say ISP, but a university's domain says otherwise
    kind, confidence = classify_organisation("Campus Cable Network", "cam.ac.uk")
    assert kind == "education"
    assert confidence > classify_organisation("Campus Cable Network", None)[1] - 0.2


def test_specific_names_beat_generic_words() -> None:
    # a school's name containing an ISP word is still a school
    assert classify_organisation("Mobile County Public Schools", None)[0] == "education"
    assert classify_organisation("Orange County Government", None)[0] == "government"


def test_words_match_whole_words_only() -> None:
    assert classify_organisation("Abt Associates", None)[0] == "company"  # not "bt"
    assert classify_organisation("Cableway Construction", None)[0] == "company"  # not "cable"
    assert classify_organisation("Telecommunications Ltd", None)[0] == "isp"  # "telecom*"


def test_two_letter_country_placeholder_does_not_match_longer_labels() -> None:
    assert classify_organisation("x", "ac.com")[0] == "company"
    assert classify_organisation("x", "edu.example")[0] == "company"


def test_rules_use_only_known_types() -> None:
    assert {rule.type for rule in RULES} <= set(ORGANISATION_TYPES)
    assert all(0.0 < rule.confidence <= 1.0 for rule in RULES)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("The ACME Company, Inc.", "acme"),
        ("Acme", "acme"),
        ("ACME Ltd.", "acme"),
        ("Société Générale S.A.", "societe generale"),
        ("U.S. Steel Corp.", "us steel"),
        ("AT&T", "at and t"),
        ("Inc.", "inc"),
        ("  Globex   Logistics  GmbH ", "globex logistics"),
        ("---", ""),
    ],
)
def test_name_key_ignores_case_accents_punctuation_and_legal_forms(name: str, key: str) -> None:
    assert name_key(name) == key


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("Acme.com", "acme.com"),
        ("https://www.acme.com/about?x=1", "acme.com"),
        ("www.acme.co.uk.", "acme.co.uk"),
        ("", None),
        (None, None),
    ],
)
def test_domain_key_gives_the_bare_domain(text: str | None, domain: str | None) -> None:
    assert domain_key(text) == domain


@pytest.mark.parametrize("text", ["not a domain", "acme", "acme.com:8080", "-acme.com", "a..b"])
def test_domain_key_refuses_what_is_not_a_domain(text: str) -> None:
    with pytest.raises(ValueError, match="not a domain name"):
        domain_key(text)
