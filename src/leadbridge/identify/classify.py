"""What kind of organisation a name and domain belong to: company, ISP, hosting, school, state.

Reverse-IP databases mostly name the network's owner, and most networks belong to ISPs and
hosting firms, not to the companies a salesperson wants to see. This module sorts them with a
table of rules, so ISPs and clouds can be kept out of Website Visitors unless a person says
otherwise. It also gives the normalised forms of an organisation's name and domain
(`name_key`, `domain_key`) used to match organisations across resolvers and company lists.

Rules are tried in table order and the first that matches wins: domains first (a `.edu` or
`.gov` domain is strong evidence), then well-known names, then generic words. Nothing matched
means "company", with a low confidence.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

ORGANISATION_TYPES = ("company", "isp", "hosting", "education", "government")
DEFAULT_TYPE = "company"
DEFAULT_CONFIDENCE = 0.4


def _word_pattern(word: str) -> str:
    prefix = word.endswith("*")
    parts = [re.escape(part) for part in word.rstrip("*").split()]
    return r"\s+".join(parts) + (r"[a-z0-9]*" if prefix else "")


def _suffix_matches(labels: list[str], suffix: list[str]) -> bool:
    if len(labels) < len(suffix):
        return False
    tail = labels[len(labels) - len(suffix) :]
    return all(
        (want == "??" and len(got) == 2 and got.isalpha()) or got == want
        for got, want in zip(tail, suffix, strict=True)
    )


@dataclass(frozen=True, slots=True)
class Rule:
    """A type given to names containing one of `words` or domains ending in one of `domains`.

    `words` are whole words or phrases of the normalised name; a trailing `*` also matches
    longer words ("telecom*" matches "telecommunications"). In `domains`, a `??` label stands
    for any two-letter country code ("ac.??" matches ac.uk and ac.jp).
    """

    type: str
    confidence: float
    words: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.words:
            alternatives = "|".join(_word_pattern(w) for w in self.words)
            object.__setattr__(
                self, "_pattern", re.compile(rf"(?<![a-z0-9&])(?:{alternatives})(?![a-z0-9&])")
            )

    def matches_name(self, text: str) -> bool:
        return self._pattern is not None and self._pattern.search(text) is not None

    def matches_domain(self, domain: str) -> bool:
        labels = domain.split(".")
        return any(_suffix_matches(labels, suffix.split(".")) for suffix in self.domains)


RULES: tuple[Rule, ...] = (
    # -- domains ------------------------------------------------------------------------------
    Rule("education", 0.9, domains=("edu", "edu.??", "ac.??", "k12.??.us")),
    Rule(
        "government",
        0.9,
        domains=(
            "gov", "gov.??", "mil", "mil.??", "gouv.fr", "gouv.??", "gob.??", "gc.ca", "gv.at",
            "bund.de", "admin.ch", "govt.nz", "europa.eu",
        ),
    ),
    Rule(
        "hosting",
        0.9,
        domains=(
            "amazonaws.com", "googleusercontent.com", "cloud.google.com", "azure.com",
            "digitalocean.com", "ovh.net", "ovh.com", "hetzner.com", "hetzner.de",
            "linode.com", "akamai.com", "akamaitechnologies.com", "cloudflare.com",
            "fastly.com", "vultr.com", "leaseweb.com", "contabo.com", "scaleway.com",
        ),
    ),
    Rule(
        "isp",
        0.9,
        domains=(
            "comcast.net", "comcast.com", "verizon.net", "verizon.com", "telekom.de",
            "t-mobile.com", "vodafone.com", "vodafone.de", "vodafone.co.uk", "orange.fr",
            "orange.com", "bt.com", "btinternet.com", "telefonica.com", "telefonica.es",
            "charter.com", "spectrum.com", "att.com", "att.net", "sbcglobal.net", "cox.net",
        ),
    ),
    # -- names --------------------------------------------------------------------------------
    Rule(
        "education",
        0.8,
        words=(
            "universit*", "universidad*", "college*", "school*", "academy", "academies", "akademie",
            "hochschule", "polytechnic", "politecnico", "institute of technology",
            "research and education",
        ),
    ),
    Rule(
        "government",
        0.8,
        words=(
            "government", "ministry", "ministerio", "ministere", "ministerium",
            "bundesministerium", "bundesamt", "federal", "city of", "county of", "municipal*",
            "parliament", "gouvernement", "gobierno", "regierung", "police",
        ),
    ),
    Rule(
        "hosting",
        0.85,
        words=(
            "amazon", "aws", "google cloud", "azure", "digitalocean", "digital ocean", "ovh",
            "hetzner", "linode", "akamai", "cloudflare", "fastly", "vultr", "leaseweb",
            "contabo", "scaleway", "rackspace", "oracle cloud", "alibaba cloud",
        ),
    ),
    Rule(
        "isp",
        0.85,
        words=(
            "comcast", "verizon", "deutsche telekom", "vodafone", "orange", "bt",
            "british telecommunications", "telefonica", "charter", "at&t", "att", "t mobile",
            "cox communications", "telstra", "swisscom", "proximus",
        ),
    ),
    Rule(
        "hosting",
        0.7,
        words=(
            "hosting", "webhost*", "cloud", "data center", "data centre", "datacenter*",
            "datacentre*", "colocation", "server*", "vps",
        ),
    ),
    Rule(
        "isp",
        0.7,
        words=(
            "telecom*", "telekom*", "broadband", "cable", "mobile", "wireless", "communications",
            "telephone", "internet service*", "fibre", "fiber", "dsl", "isp",
        ),
    ),
)


def classify_organisation(name: str, domain: str | None) -> tuple[str, float]:
    """The type of an organisation and how sure the rules are (0..1).

    Always answers: an organisation no rule recognises is a company, with low confidence.
    """
    return _classify(name, domain)


@functools.lru_cache(maxsize=8192)  # the same few thousand network owners come back all day
def _classify(name: str, domain: str | None) -> tuple[str, float]:
    host = (domain or "").strip().lower().rstrip(".")
    text = _classification_text(name)
    if host:
        for rule in RULES:
            if rule.domains and rule.matches_domain(host):
                return rule.type, rule.confidence
    for rule in RULES:
        if rule.words and rule.matches_name(text):
            return rule.type, rule.confidence
    return DEFAULT_TYPE, DEFAULT_CONFIDENCE


# Legal forms dropped from the end of a name, so "Acme Ltd" and "ACME, Inc." are one company.
_LEGAL_FORMS = frozenset(
    (
        "inc", "incorporated", "ltd", "limited", "llc", "llp", "lp", "plc", "corp",
        "corporation", "co", "company", "gmbh", "mbh", "ag", "kg", "sa", "sas", "sarl", "srl",
        "spa", "bv", "nv", "oy", "oyj", "ab", "as", "asa", "aps", "pty", "pte", "kk", "sl", "sau",
    )
)


def name_key(name: str) -> str:
    """The normalised form of an organisation name, for matching names from different sources.

    Case, accents, punctuation, a leading "the" and trailing legal forms do not count:
    "The ACME Company, Inc." and "Acme" give the same key. An empty string means the name
    has nothing to match on.
    """
    words = _plain(_ABBREVIATION.sub(_undot, name)).replace("&", " and ").split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    while len(words) > 1 and words[-1] in _LEGAL_FORMS:
        words.pop()
    return " ".join(words)


_ABBREVIATION = re.compile(r"(?<![^\W_])(?:[^\W\d_]\.)+[^\W\d_]\b\.?")


def _undot(match: re.Match[str]) -> str:
    """Drop the dots of an abbreviation ("S.A." -> "SA"): dotted legal forms read as plain ones."""
    return match.group(0).replace(".", "")


_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")


def domain_key(text: str | None) -> str | None:
    """The bare domain of a domain or web address: "https://www.Acme.com/about" -> "acme.com".

    None for a blank value; ValueError, saying what is wrong, for anything not a domain name.
    """
    domain = (text or "").strip().lower()
    if not domain:
        return None
    domain = domain.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].rstrip(".")
    domain = domain.removeprefix("www.")
    if len(domain) > 253 or not _DOMAIN.match(domain):
        raise ValueError(f"{text!r} is not a domain name such as acme.com")
    return domain


_ASCII_PUNCTUATION = re.compile(r"[^a-z0-9&]")


def _plain(text: str) -> str:
    """Lower case, without accents, other punctuation turned to spaces."""
    if text.isascii():
        return _ASCII_PUNCTUATION.sub(" ", text.lower())
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return "".join(ch if ch.isalnum() or ch == "&" else " " for ch in bare)


def _classification_text(name: str) -> str:
    return " ".join(_plain(name).split())
