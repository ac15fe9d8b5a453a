"""Company profiles: what the customer knows about companies (size, industry, address, phone).

A reverse-IP lookup gives a name and perhaps a domain; a salesperson wants more. The customer
imports a CSV of companies, keyed by domain or by name; its rows are kept in
`company_profiles` and copied onto organisations that match, now and when they are created
later (see `profile_for`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, func, insert, select, update

from leadbridge.errors import InputError
from leadbridge.identify.classify import domain_key, name_key
from leadbridge.identify.csvfile import named, open_table
from leadbridge.store.state import bump_config_version
from leadbridge.store.tables import company_profiles, organisations

PROFILE_FIELDS = ("employees", "industry", "address", "phone", "website")
COMPANY_COLUMNS = ("domain", "name", *PROFILE_FIELDS)
_MAX_LENGTH = {"name": 300, "industry": 200, "phone": 50, "website": 300}
_MAX_EMPLOYEES = 2**31 - 1
_GROUPED_NUMBER = re.compile(r"\d{1,3}([,. '_])\d{3}(?:\1\d{3})*", re.ASCII)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that was not imported, and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)
class ImportReport:
    """What an import did. `created + updated + rejected == rows_read`.

    A row for a company already known (from an earlier import or an earlier row of the same
    file) counts as updated.
    """

    path: Path
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    organisations_updated: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    errors: list[RowProblem] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people: what was read, kept, skipped and applied."""
        text = (
            f"{self.path.name}: {self.rows_read} rows read, {self.created} companies added, "
            f"{self.updated} updated, {self.rejected} skipped; "
            f"{self.organisations_updated} organisations updated"
        )
        if self.ignored_columns:
            text += f" (columns ignored: {', '.join(self.ignored_columns)})"
        return text


@dataclass(slots=True)
class _Profile:
    """One company of the file: the values its rows give, later rows over earlier ones."""

    domain: str | None
    name: str | None
    values: dict[str, Any]
    profile_id: int | None = None

    @property
    def identity(self) -> tuple[str, str]:
        if self.domain:
            return ("domain", self.domain)
        return ("name", name_key(self.name or ""))


def import_companies(
    conn: Connection, path: Path | str, now: datetime | None = None
) -> ImportReport:
    """Upsert a company CSV into the profiles, then onto the organisations that match.

    Columns among domain, name, employees, industry, address, phone, website (domain or name
    required); UTF-8 with or without BOM; comma or semicolon separated. Blank values never
    erase known ones. Bad rows are reported per line and the good ones are kept; a file that
    cannot be read at all raises InputError.
    """
    report = ImportReport(Path(path))
    profiles: dict[tuple[str, str], _Profile] = {}
    repeats = 0
    for line, row in _read_companies(report):
        report.rows_read += 1
        try:
            profile = _parse_row(row)
        except ValueError as exc:
            report.rejected += 1
            report.errors.append(RowProblem(line, str(exc)))
            continue
        known = profiles.get(profile.identity)
        if known is None:
            profiles[profile.identity] = profile
        else:
            repeats += 1
            known.name = profile.name or known.name
            known.values.update(profile.values)
    _find_existing(conn, list(profiles.values()))
    report.created = sum(1 for p in profiles.values() if p.profile_id is None)
    report.updated = repeats + len(profiles) - report.created
    _write_profiles(conn, list(profiles.values()))
    report.organisations_updated = _apply_to_organisations(
        conn, list(profiles.values()), now or datetime.now(UTC)
    )
    if report.organisations_updated:
        bump_config_version(conn)
    return report


def profile_for(conn: Connection, domain: str | None, name: str) -> dict[str, Any]:
    """The known profile values for an organisation: by domain, else by normalised name.

    A name match is skipped when both sides have different domains (two companies can share
    a name). Returns only the values that are set, including `domain` when the organisation
    has none; an empty dict when nothing is known.
    """
    columns = [company_profiles.c.domain, *(company_profiles.c[f] for f in PROFILE_FIELDS)]
    row = None
    if domain:
        row = conn.execute(select(*columns).where(company_profiles.c.domain == domain)).first()
    key = name_key(name)
    if row is None and key:
        query = select(*columns).where(company_profiles.c.name_key == key)
        if domain:
            query = query.where(company_profiles.c.domain.is_(None))
        row = conn.execute(query.order_by(company_profiles.c.id).limit(1)).first()
    if row is None:
        return {}
    found = {k: v for k, v in row._mapping.items() if v is not None}
    if domain:
        found.pop("domain", None)
    return found


def profiles_for(
    conn: Connection, organisations: Sequence[tuple[str | None, str]]
) -> list[dict[str, Any]]:
    """`profile_for` for many (domain, name) pairs with two queries in all."""
    columns = [company_profiles.c.id, company_profiles.c.domain, company_profiles.c.name_key,
               *(company_profiles.c[f] for f in PROFILE_FIELDS)]
    domains = sorted({d for d, _ in organisations if d})
    keys = sorted({k for _, n in organisations if (k := name_key(n))})
    by_domain: dict[str, Any] = {}
    by_name: dict[tuple[str, bool], Any] = {}
    for start in range(0, max(len(domains), len(keys)), 500):
        if domains[start : start + 500]:
            for row in conn.execute(select(*columns).where(
                    company_profiles.c.domain.in_(domains[start : start + 500]))):
                by_domain[row.domain] = row
        if keys[start : start + 500]:
            for row in conn.execute(select(*columns).where(
                    company_profiles.c.name_key.in_(keys[start : start + 500]))
                    .order_by(company_profiles.c.id)):
                if row.domain is None:  # may stand for an organisation with its own domain
                    by_name.setdefault((row.name_key, True), row)
                by_name.setdefault((row.name_key, False), row)
    found: list[dict[str, Any]] = []
    for domain, name in organisations:
        profile: Any = by_domain.get(domain) if domain else None
        if profile is None:
            key = name_key(name)
            profile = by_name.get((key, bool(domain))) if key else None
        if profile is None:
            found.append({})
            continue
        values = {k: v for k, v in profile._mapping.items()
                  if v is not None and k not in ("id", "name_key")}
        if domain:
            values.pop("domain", None)
        found.append(values)
    return found


def _read_companies(report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
    path = report.path
    header, rows = open_table(path)
    if "domain" not in header and "name" not in header:
        raise InputError(
            f"{path}: the first line must name the columns, with domain or name among them "
            f"({', '.join(COMPANY_COLUMNS)}); found {', '.join(header) or 'nothing'}"
        )
    report.ignored_columns = [h for h in header if h not in COMPANY_COLUMNS]
    for line, cells in rows:
        row = named(header, cells)
        if len(cells) > len(header):
            row = {"": f"the row has {len(cells)} values but the header names {len(header)}"}
        yield line, row


def _parse_row(row: dict[str, str]) -> _Profile:
    """A valid row's profile; ValueError naming the problem for an invalid one."""
    if row.get(""):
        raise ValueError(row[""])
    try:
        domain = domain_key(row.get("domain"))
    except ValueError as exc:
        raise ValueError(f"domain {exc}") from exc
    name = row.get("name") or None
    if not domain and not name:
        raise ValueError("the row has neither a domain nor a name")
    if name and not name_key(name):
        raise ValueError(f"name {name!r} has no letters or digits")
    values: dict[str, Any] = {}
    for column in PROFILE_FIELDS:
        text = row.get(column, "")
        if text:
            values[column] = _employees(text) if column == "employees" else text
    for column, limit in _MAX_LENGTH.items():
        given = name if column == "name" else values.get(column)
        if isinstance(given, str) and len(given) > limit:
            raise ValueError(f"{column} is longer than {limit} characters")
    return _Profile(domain, name, values)


def _employees(text: str) -> int:
    """A head count: "250", or with thousands separated: "1,200", "1.200", "1 200"."""
    if re.fullmatch(r"\d+", text, re.ASCII):
        count = int(text)
    elif _GROUPED_NUMBER.fullmatch(text):
        count = int(re.sub(r"\D", "", text))
    else:
        raise ValueError(f"employees {text!r} is not a whole number")
    if count > _MAX_EMPLOYEES:
        raise ValueError(f"employees {text!r} is too large")
    return count


def _find_existing(conn: Connection, profiles: list[_Profile]) -> None:
    """Set `profile_id` on each profile already stored, by domain or, without one, by name."""
    by_domain = {p.domain: p for p in profiles if p.domain}
    by_name = {name_key(p.name or ""): p for p in profiles if not p.domain}
    table = company_profiles.c
    for chunk in _chunks(list(by_domain)):
        for row in conn.execute(select(table.id, table.domain).where(table.domain.in_(chunk))):
            by_domain[row.domain].profile_id = row.id
    for chunk in _chunks(list(by_name)):
        query = (
            select(table.name_key, func.min(table.id).label("id"))
            .where(table.name_key.in_(chunk), table.domain.is_(None))
            .group_by(table.name_key)
        )
        for row in conn.execute(query):
            by_name[row.name_key].profile_id = row.id


def _write_profiles(conn: Connection, profiles: Sequence[_Profile]) -> None:
    def params(p: _Profile) -> dict[str, Any]:
        return {
            "b_domain": p.domain,
            "b_name": p.name,
            "b_name_key": name_key(p.name) if p.name else None,
            **{f"b_{f}": p.values.get(f) for f in PROFILE_FIELDS},
        }

    columns = ("name", "name_key", *PROFILE_FIELDS)
    new = [params(p) for p in profiles if p.profile_id is None]
    if new:
        conn.execute(
            insert(company_profiles).values(
                {c: bindparam(f"b_{c}") for c in ("domain", *columns)}
            ),
            new,
        )
    known = [{**params(p), "b_id": p.profile_id} for p in profiles if p.profile_id is not None]
    if known:
        conn.execute(
            update(company_profiles)
            .where(company_profiles.c.id == bindparam("b_id"))
            .values({c: _unless_blank(company_profiles.c[c], f"b_{c}") for c in columns}),
            known,
        )


def _apply_to_organisations(conn: Connection, profiles: list[_Profile], now: datetime) -> int:
    """Copy the file's values onto matching organisations; the number of organisations changed.

    Domain matches win over name matches; a name matches only organisations without a domain
    or with the profile's own.
    """
    by_domain = {p.domain: p for p in profiles if p.domain}
    by_name = {name_key(p.name): p for p in profiles if p.name}
    if not by_domain and not by_name:
        return 0
    chosen: dict[int, _Profile] = {}
    rows = conn.execute(
        select(organisations.c.id, organisations.c.name, organisations.c.domain).where(
            organisations.c.merged_into_id.is_(None)
        )
    )
    for org_id, org_name, org_domain in rows:
        named = by_name.get(name_key(org_name))
        if org_domain in by_domain:
            chosen[org_id] = by_domain[org_domain]
        elif named and (not org_domain or named.domain in (None, org_domain)):
            chosen[org_id] = named
    updates = [
        {
            "b_id": org_id,
            "b_domain": p.domain,
            **{f"b_{f}": p.values.get(f) for f in PROFILE_FIELDS},
        }
        for org_id, p in chosen.items()
        if p.values or p.domain
    ]
    if updates:
        table = organisations.c
        conn.execute(
            update(organisations)
            .where(table.id == bindparam("b_id"))
            .values(
                {
                    **{f: _unless_blank(table[f], f"b_{f}") for f in PROFILE_FIELDS},
                    "domain": func.coalesce(table.domain, bindparam("b_domain")),
                    "updated_at": now,
                }
            ),
            updates,
        )
    return len(updates)


def _unless_blank(column: Any, name: str) -> Any:
    """The new value when given, else the column's own."""
    type_ = Integer() if name == "b_employees" else column.type
    return func.coalesce(bindparam(name, type_=type_), column)


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
