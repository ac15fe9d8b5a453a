"""The hub's tables (SQLAlchemy Core). Alembic migrations are generated from this metadata.

High-volume tables (hits, conversions) use time-ordered UUIDv7 keys; the rest use integer keys.
Scores are stored as *weights*: a hit of score s at time t adds s * 2**((t - epoch) / half_life)
(see `leadbridge.scoring.decay`), so totals are updated with one atomic addition and ordering by
weight orders by the current, decayed score.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the hub stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_day(moment: datetime) -> date:
    """The UTC date of an aware datetime (conversions.occurred_on)."""
    return moment.astimezone(UTC).date()


def _ts(name: str, nullable: bool = True) -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=nullable)


sites = Table(
    "sites",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("hosts", JSON, nullable=False),
    _ts("created_at", nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    _ts("created_at", nullable=False),
    _ts("revoked_at"),
)

organisations = Table(
    "organisations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(300), nullable=False),
    Column("domain", String(255)),
    Column("type", String(20), nullable=False),  # company, isp, hosting, education, government
    Column("type_set_by", String(10), nullable=False, default="lookup"),  # lookup | person
    Column("confidence", Float, nullable=False, default=0.0),
    Column("source", String(100), nullable=False, default=""),
    Column("asn", Integer),
    Column("country", String(2)),
    Column("blocked", Boolean, nullable=False, default=False),
    Column("merged_into_id", Integer, ForeignKey("organisations.id")),
    Column("owner", String(200)),
    Column("crm_account_id", String(100)),
    Column("employees", Integer),
    Column("industry", String(200)),
    Column("address", Text),
    Column("phone", String(50)),
    Column("website", String(300)),
    Column("permalink_token", String(43), nullable=False, unique=True),
    _ts("first_visit_at"),
    _ts("last_visit_at"),
    Column("hit_count", BigInteger, nullable=False, default=0),
    Column("score_weight", Float, nullable=False, default=0.0),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    # no index on score_weight or last_visit_at: every hit changes them (see migration 0013)
    Index("ix_organisations_domain", "domain"),
    Index("ix_organisations_domain_lower", func.lower(text("domain"))),
)

# Every key a resolver can produce for an organisation ("asn:15169", "range:acme.com").
# Merging points the merged organisation's keys at the survivor.
organisation_keys = Table(
    "organisation_keys",
    metadata,
    Column("match_key", String(300), primary_key=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
)

company_profiles = Table(
    "company_profiles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("domain", String(255), unique=True),
    Column("name_key", String(300), index=True),
    Column("name", String(300)),
    Column("employees", Integer),
    Column("industry", String(200)),
    Column("address", Text),
    Column("phone", String(50)),
    Column("website", String(300)),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), unique=True),
    Column("external_id", String(200), unique=True),
    Column("name", String(300)),
    Column("organisation_id", Integer, ForeignKey("organisations.id")),
    _ts("first_seen_at"),
    _ts("last_seen_at"),
    Column("hit_count", BigInteger, nullable=False, default=0),
    Column("score_weight", Float, nullable=False, default=0.0),  # no index (migration 0013)
    _ts("created_at", nullable=False),
    _ts("updated_at"),
    Index("ix_contacts_email_lower", func.lower(text("email"))),
)

browser_visitors = Table(
    "browser_visitors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", Integer, ForeignKey("sites.id"), nullable=False),
    Column("visitor_key", String(64), nullable=False),
    Column("contact_id", Integer, ForeignKey("contacts.id")),
    _ts("first_seen_at"),
    _ts("last_seen_at"),
    UniqueConstraint("site_id", "visitor_key"),
    Index("ix_browser_visitors_contact_id", "contact_id"),
    # conversions name a visitor id without its site
    Index("ix_browser_visitors_visitor_key", "visitor_key"),
)

hits = Table(
    "hits",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("site_id", Integer, nullable=False),
    _ts("occurred_at", nullable=False),
    Column("kind", String(12), nullable=False),  # pageview, event, email_open, form
    Column("browser_visitor_id", Integer, nullable=False),
    Column("contact_id", Integer),
    Column("organisation_id", Integer),
    Column("url", Text, nullable=False),
    Column("page_title", Text),
    Column("page_name", String(300)),
    Column("category", String(100)),
    Column("score", Float, nullable=False, default=0.0),
    Column("is_bot", Boolean, nullable=False, default=False),
    Column("ip_masked", String(45)),
    Column("referrer", Text),
    Column("channel", String(20)),
    Column("campaign_name", String(300)),
    Column("campaign_source", String(300)),
    Column("campaign_medium", String(300)),
    Column("campaign_keyword", String(300)),
    Column("campaign_content", String(300)),
    Column("event_category", String(300)),
    Column("event_action", String(300)),
    Column("event_name", String(300)),
    Column("event_value", Float),
    Column("device", String(20)),
    Column("browser", String(100)),
    Column("os", String(100)),
    Column("country", String(2)),
    Column("lang", String(100)),
    Column("resolution", String(20)),
    Column("time_on_page", Integer),
    Index("ix_hits_organisation_id_occurred_at", "organisation_id", "occurred_at"),
    Index("ix_hits_browser_visitor_id_occurred_at", "browser_visitor_id", "occurred_at"),
    Index("ix_hits_contact_id", "contact_id", sqlite_where=text("contact_id IS NOT NULL"),
          postgresql_where=text("contact_id IS NOT NULL")),
    Index("ix_hits_occurred_at", "occurred_at"),
)

page_rules = Table(
    "page_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("position", Integer, nullable=False, default=0),
    Column("pattern", Text, nullable=False),
    Column("name", String(300), nullable=False, default=""),
    Column("category", String(100), nullable=False, default=""),
    Column("score", Float, nullable=False, default=0.0),
)

event_rules = Table(
    "event_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("position", Integer, nullable=False, default=0),
    Column("category", String(300), nullable=False, default="*"),
    Column("action", String(300), nullable=False, default="*"),
    Column("name", String(300), nullable=False, default="*"),
    Column("label", String(300), nullable=False, default=""),
    Column("score", Float, nullable=False, default=0.0),
)

# Requests refused at intake, counted per day, site and reason; never stored as hits.
intake_rejections = Table(
    "intake_rejections",
    metadata,
    Column("day", Date, primary_key=True),
    Column("site_id", Integer, primary_key=True),
    Column("reason", String(40), primary_key=True),
    Column("count", BigInteger, nullable=False, default=0),
)

erasures = Table(
    "erasures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject", String(20), nullable=False),  # contact | browser
    Column("subject_hash", String(64), nullable=False),
    Column("hits_deleted", BigInteger, nullable=False, default=0),
    _ts("erased_at", nullable=False),
)

# Small key/value state: the decay epoch, the scoring rules' fingerprint, the config version.
hub_state = Table(
    "hub_state",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)


# -- CRM sync ------------------------------------------------------------------------------

connections = Table(
    "connections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(30), nullable=False),  # bottlecrm, dynamics, salesforce, hubspot
    Column("settings", JSON, nullable=False),  # non-secret settings (URL, options)
    Column("secret", Text),  # encrypted credentials (leadbridge.secrets), never clear text
    Column("key_version", Integer),
    Column("enabled", Boolean, nullable=False, default=True),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
)

# hub object <-> CRM object, one row per pair and connection
object_links = Table(
    "object_links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connection_id", Integer, ForeignKey("connections.id", ondelete="CASCADE"),
           nullable=False),
    Column("hub_object", String(40), nullable=False),
    Column("hub_id", String(64), nullable=False),
    Column("remote_object", String(60), nullable=False),
    Column("remote_id", String(100), nullable=False),
    Column("values", JSON),  # field values as last agreed by both sides (for change detection)
    _ts("last_synced_at"),
    UniqueConstraint("connection_id", "hub_object", "hub_id"),
    UniqueConstraint("connection_id", "remote_object", "remote_id"),
)

# hub-side changes waiting to be pushed; read per connection from a cursor, pruned behind
# the slowest connection
field_changes = Table(
    "field_changes",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("hub_object", String(40), nullable=False),
    Column("hub_id", String(64), nullable=False),
    Column("field", String(100), nullable=False),
    Column("value", JSON),
    Column("origin", String(100)),  # connection name when pulled from a CRM (echo suppression)
    _ts("changed_at", nullable=False),
    Index("ix_field_changes_hub_object_hub_id", "hub_object", "hub_id"),
    Index("ix_field_changes_hub_object_changed_at", "hub_object", "changed_at"),  # pruning
)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("connection_id", Integer, ForeignKey("connections.id", ondelete="CASCADE"),
           primary_key=True),
    Column("stream", String(100), primary_key=True),  # "pull:contact", "push"
    Column("value", Text, nullable=False),
    _ts("updated_at", nullable=False),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connection_id", Integer, ForeignKey("connections.id", ondelete="CASCADE"),
           nullable=False),
    _ts("started_at", nullable=False),
    _ts("finished_at"),
    Column("status", String(20), nullable=False),  # running, ok, partial, failed
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("counts", JSON, nullable=False),  # {"push:contact": {"created": 3, ...}, ...}
    Column("api_calls", Integer, nullable=False, default=0),
    Column("message", Text),
)

sync_errors = Table(
    "sync_errors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connection_id", Integer, ForeignKey("connections.id", ondelete="CASCADE"),
           nullable=False),
    Column("level", String(10), nullable=False),  # record | job
    Column("direction", String(10), nullable=False),  # push | pull
    Column("object", String(60), nullable=False),
    Column("record_key", String(100), nullable=False),  # hub id (push) or remote id (pull)
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    _ts("next_retry_at"),
    Column("status", String(12), nullable=False),  # open, dismissed, resolved
    _ts("first_failed_at", nullable=False),
    _ts("last_failed_at", nullable=False),
    UniqueConstraint("connection_id", "direction", "object", "record_key"),
)

# per connection: API calls spent today and in the current window, and what the CRM last said
# about its own limits (`leadbridge.sync.budget`); shared by every process and worker
api_budgets = Table(
    "api_budgets",
    metadata,
    Column("connection_id", Integer, ForeignKey("connections.id", ondelete="CASCADE"),
           primary_key=True, autoincrement=False),
    Column("day", Date, nullable=False),  # the UTC day `day_calls` counts
    Column("day_calls", Integer, nullable=False, default=0),
    _ts("window_start", nullable=False),  # the window `window_calls` counts
    Column("window_calls", Integer, nullable=False, default=0),
    _ts("blocked_until"),  # the CRM said no more calls before then (0 left, Retry-After)
    Column("blocked_reason", Text),
    Column("crm_window", String(60)),  # the CRM's tightest limit as last reported
    Column("crm_remaining", Float),
    Column("crm_limit", Float),
    _ts("crm_seen_at"),
    _ts("updated_at", nullable=False),
)


# -- jobs ----------------------------------------------------------------------------------

# the in-process runner's queue (`leadbridge.jobs.inprocess`); with procrastinate, the reason
# a procrastinate job failed, which procrastinate itself does not keep (`procrastinate_id`)
jobs = Table(
    "jobs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("kind", String(100), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("key", String(200)),  # idempotency key: at most one waiting job per key
    Column("lock", String(200)),  # at most one running job per lock (one sync per connection)
    Column("status", String(10), nullable=False),  # waiting, running, done, failed
    Column("attempts", Integer, nullable=False, default=0),  # runs started so far
    Column("max_attempts", Integer, nullable=False),
    _ts("run_at", nullable=False),
    _ts("created_at", nullable=False),
    _ts("started_at"),
    _ts("finished_at"),
    _ts("lease_until"),  # a running job past its lease was left by a process that stopped
    Column("worker", String(100)),
    Column("error", Text),
    Column("procrastinate_id", BigInteger, unique=True),
    Index("ix_jobs_status_run_at", "status", "run_at"),
    Index("uq_jobs_waiting_key", "key", unique=True, sqlite_where=text("status = 'waiting'"),
          postgresql_where=text("status = 'waiting'")),
    Index("uq_jobs_running_lock", "lock", unique=True, sqlite_where=text("status = 'running'"),
          postgresql_where=text("status = 'running'")),
)


# -- calls and conversions -----------------------------------------------------------------

# Where a call or a conversion came from when no web session tells: the marketing source a
# tracking number (or a campaign) was bought for. `channel` uses the tracking channel names.
marketing_sources = Table(
    "marketing_sources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("channel", String(20)),
    Column("source", String(300)),
    Column("campaign", String(300)),
    _ts("created_at", nullable=False),
)

# A phone number printed in one marketing source; a call to it is credited to that source.
tracking_numbers = Table(
    "tracking_numbers",
    metadata,
    Column("number", String(20), primary_key=True),  # E.164, e.g. +442071838750
    Column("marketing_source_id", Integer,
           ForeignKey("marketing_sources.id", ondelete="CASCADE"), nullable=False),
    _ts("created_at", nullable=False),
)

# A tracked phone call. `call_ref` is the call-tracking system's reference, the key operators
# type into the CRM and conversion files carry; `browser_visitor_id` is set when the call came
# from a tracked web session (the visitor id was sent with the call).
calls = Table(
    "calls",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("call_ref", String(100), nullable=False, unique=True),
    Column("tracking_number", String(20), nullable=False),  # E.164, the number dialled
    Column("caller_number", String(20)),  # E.164; NULL when the caller withheld it
    _ts("started_at", nullable=False),
    Column("duration_s", Integer, nullable=False, default=0),
    Column("browser_visitor_id", Integer),
    Column("site_id", Integer),
    Column("marketing_source_id", Integer),  # from the tracking number, at intake
    _ts("created_at", nullable=False),
)

# One offline conversion (a sale, a signed quote, a qualified call...). `visitor_key` and
# `call_ref` are kept as sent; `browser_visitor_id`, `call_id` and `contact_id` are what they
# matched. `dedupe_key` makes a second copy of a conversion a "merged" duplicate, never a second
# row: "tx:<transaction_ref>" under the transaction-reference rule, "aw:<action>:<ref>:<time>"
# under the action-and-reference-within-a-window rule (the window itself is checked on
# transaction_ref), and "row:<digest of every field>" for rows without a transaction reference.
conversions = Table(
    "conversions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("action", String(100), nullable=False),
    Column("title", String(300)),
    _ts("occurred_at", nullable=False),
    Column("transaction_ref", String(200)),
    Column("amount", Numeric(18, 4)),
    Column("currency", String(3)),  # ISO 4217, upper case; NULL only without amount and margin
    Column("margin", Numeric(18, 4)),
    Column("visitor_key", String(64)),
    Column("call_ref", String(100)),
    Column("browser_visitor_id", Integer),
    Column("call_id", BigInteger),
    Column("contact_id", Integer),
    Column("source", String(12), nullable=False),  # api, csv, dropfolder, crm
    Column("import_id", Integer),
    Column("dedupe_key", String(300), nullable=False, unique=True),
    _ts("created_at", nullable=False),
    Column("path_id", String(32)),  # its attribution path; NULL until it is credited
    # occurred_at's UTC day: periods are found through this index. Its entries for one day
    # are in insertion order, so an import spread over a month adds to a few dozen index
    # pages, where an index on the exact time takes a random page for every row.
    Column("occurred_on", Date, nullable=False, default=lambda context: utc_day(
        context.get_current_parameters()["occurred_at"])),
    Index("ix_conversions_occurred_on", "occurred_on"),
    Index("ix_conversions_transaction_ref", "transaction_ref",
          sqlite_where=text("transaction_ref IS NOT NULL"),
          postgresql_where=text("transaction_ref IS NOT NULL")),
)

# One file (or API body) of conversions. rows_read = accepted + merged + rejected, always.
# A dry run validates without writing anything, so it has no row here.
conversion_imports = Table(
    "conversion_imports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(12), nullable=False),  # cli, api, dropfolder
    Column("filename", String(500)),
    Column("sha256", String(64)),
    _ts("started_at", nullable=False),
    _ts("finished_at"),
    Column("rows_read", BigInteger, nullable=False, default=0),
    Column("accepted", BigInteger, nullable=False, default=0),
    Column("merged", BigInteger, nullable=False, default=0),
    Column("rejected", BigInteger, nullable=False, default=0),
    Column("status", String(10), nullable=False),  # running, done, failed
    Column("message", Text),  # why a whole file failed (encoding, header)
)

# Why a row was rejected, with its raw line (cut at 1,000 characters, `truncated` says so).
conversion_rejections = Table(
    "conversion_rejections",
    metadata,
    Column("import_id", Integer, ForeignKey("conversion_imports.id", ondelete="CASCADE"),
           nullable=False),
    Column("row_number", BigInteger, nullable=False),  # line in the file; the header is line 1
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("truncated", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("import_id", "row_number"),
)


# -- attribution and CRM goals --------------------------------------------------------------

# How conversions are credited: each distinct conversion path (the touches that led to a
# conversion, oldest first: web sessions, or the call's marketing source, or "direct" when
# nothing is known), one row per touch, with that touch's weight under each model (first touch,
# last touch, linear, position-based 40/20/40). A conversion names its path
# (`conversions.path_id`); many conversions share one, so crediting a conversion writes one
# column, not a row per touch. A model's amount share is the conversion's amount times the
# weight; a path's weights add up to 1 under every model. `path_id` is a digest of the touches,
# so every writer names the same path the same way and paths are only ever added.
attribution_paths = Table(
    "attribution_paths",
    metadata,
    Column("path_id", String(32), nullable=False),
    Column("touch", Integer, nullable=False),  # 0 = first touch
    Column("touches", Integer, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("source", String(300), nullable=False),
    Column("campaign", String(300), nullable=False),
    Column("w_first", Float, nullable=False),
    Column("w_last", Float, nullable=False),
    Column("w_linear", Float, nullable=False),
    Column("w_position", Float, nullable=False),
    PrimaryKeyConstraint("path_id", "touch"),
)

# CRM records seen (by a sync cycle) carrying a visitor id or a call reference; the latest
# conversion they match, whether its attribution is due to be written back to the record, and
# what was written last (`written`: the CRM field values) or why the CRM refused it.
crm_marketing_refs = Table(
    "crm_marketing_refs",
    metadata,
    Column("connection_id", Integer, ForeignKey("connections.id", ondelete="CASCADE"),
           nullable=False),
    Column("remote_object", String(60), nullable=False),
    Column("remote_id", String(100), nullable=False),
    Column("visitor_key", String(64)),
    Column("call_ref", String(100)),
    _ts("seen_at", nullable=False),
    Column("conversion_id", Uuid),
    _ts("conversion_at"),
    Column("due", Boolean, nullable=False, default=False),
    Column("written", JSON),
    _ts("written_at"),
    Column("write_error", Text),
    PrimaryKeyConstraint("connection_id", "remote_object", "remote_id"),
    Index("ix_crm_marketing_refs_visitor_key", "visitor_key"),
    Index("ix_crm_marketing_refs_call_ref", "call_ref"),
    Index("ix_crm_marketing_refs_conversion_id", "conversion_id"),
)

# A CRM record reaching a goal stage, recorded once per connection, record and stage.
crm_goal_events = Table(
    "crm_goal_events",
    metadata,
    Column("connection_id", Integer, ForeignKey("connections.id", ondelete="CASCADE"),
           nullable=False),
    Column("remote_object", String(60), nullable=False),
    Column("remote_id", String(100), nullable=False),
    Column("stage", String(100), nullable=False),
    Column("conversion_id", Uuid),  # NULL: not recorded (reason says why)
    Column("reason", Text),
    _ts("recorded_at", nullable=False),
    PrimaryKeyConstraint("connection_id", "remote_object", "remote_id", "stage"),
)
