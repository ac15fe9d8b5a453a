"""Settings: `LEADBRIDGE_*` environment variables over an optional `leadbridge.toml`.

Nested settings use `__` in the environment: `LEADBRIDGE_PRIVACY__IP_MASK_BYTES=3`.
The TOML file is `./leadbridge.toml`, or the path in `LEADBRIDGE_CONFIG`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from leadbridge.errors import ConfigError

DEFAULT_BANDS = {"cold": 0.0, "warm": 20.0, "hot": 50.0}


class PageRuleConfig(BaseModel):
    """URL pattern -> friendly name, category, score. `re:` prefix means a regex."""

    model_config = {"extra": "forbid"}
    pattern: str = Field(min_length=1)
    name: str = ""
    category: str = ""
    score: float = 0.0


class EventRuleConfig(BaseModel):
    """Tracked event (category/action/name globs) -> label and score."""

    model_config = {"extra": "forbid"}
    category: str = "*"
    action: str = "*"
    name: str = "*"
    label: str = ""
    score: float = 0.0


class ScoringSettings(BaseModel):
    model_config = {"extra": "forbid"}
    half_life_days: float = Field(default=30.0, ge=1.0, le=3650.0)
    default_page_score: float = 1.0
    bands: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_BANDS))
    page_rules: list[PageRuleConfig] = Field(default_factory=list)
    event_rules: list[EventRuleConfig] = Field(default_factory=list)

    @field_validator("bands")
    @classmethod
    def _bands_not_empty(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one band is needed, e.g. {cold = 0, warm = 20, hot = 50}")
        return v


class TrackingSettings(BaseModel):
    model_config = {"extra": "forbid"}
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="peers whose X-Forwarded-For is believed (IPs or CIDR networks)",
    )
    max_body_bytes: int = Field(default=512 * 1024, ge=1024)
    max_bulk_requests: int = Field(default=1000, ge=1)
    store_bots: bool = True
    batch_max: int = Field(default=5000, ge=1)
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    writer: Literal["process", "event_loop"] = Field(
        default="process",
        description="where `leadbridge serve` writes batches of hits: a writer process "
                    "beside the event loop (faster with two cores or more) or the event loop "
                    "itself",
    )


class PrivacySettings(BaseModel):
    model_config = {"extra": "forbid"}
    ip_mask_bytes: int = Field(default=2, ge=0, le=3)
    honour_dnt: bool = True
    raw_hit_retention_days: int | None = Field(default=395, ge=1)


class IdentifySettings(BaseModel):
    model_config = {"extra": "forbid"}
    mmdb: list[Path] = Field(default_factory=list, description="MaxMind-format databases")
    ip_ranges_csv: Path | None = None
    companies_csv: Path | None = None
    cache_size: int = Field(default=200_000, ge=0)


class BudgetSettings(BaseModel):
    """A connection's API budget: calls per UTC day and per window of `window_seconds`
    (None: no limit of the hub's own; the CRM's rate headers still apply)."""

    model_config = {"extra": "forbid"}
    calls_per_day: int | None = Field(default=None, ge=1)
    calls_per_window: int | None = Field(default=None, ge=1)
    window_seconds: int = Field(default=60, ge=1, le=86_400)


class JobsSettings(BaseModel):
    model_config = {"extra": "forbid"}
    # `serve` runs jobs itself; false when `leadbridge worker` processes do (PostgreSQL)
    run_in_serve: bool = True
    concurrency: int = Field(default=2, ge=1, le=64)


class SyncSettings(BaseModel):
    model_config = {"extra": "forbid"}
    interval_minutes: float = Field(default=5.0, gt=0)
    # a new Website Visitor or a band change syncs every connection this soon (a burst of
    # events within it becomes one cycle per connection)
    push_delay_seconds: float = Field(default=3.0, ge=0, le=3600)
    # the field-change log keeps a change at most this long, even when a connection that has
    # not synced since (disabled, failing) has not considered it yet
    change_log_days: float = Field(default=90.0, gt=0)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    # per connection name: overrides of `budget`, setting by setting
    budgets: dict[str, BudgetSettings] = Field(default_factory=dict)
    # mapping manuals by connection name; a connection without one uses its connector's default
    mappings: dict[str, Any] = Field(default_factory=dict)


class DropFolderSettings(BaseModel):
    """A folder of conversion CSV files the hub polls: local, or on an SFTP or FTP server.

    A file is taken once its size and modification time stayed the same for
    `settle_seconds` (or upload it as NAME.csv.part and rename it when complete); processed
    files move to done/ or failed/ beside it, each with NAME.report.json.
    """

    model_config = {"extra": "forbid"}
    location: str = Field(default="", description="a folder path, sftp://user@host[:port]/path "
                                                  "or ftp://user@host[:port]/path; empty: off")
    poll_seconds: float = Field(default=300.0, ge=1.0)
    settle_seconds: float = Field(default=5.0, ge=0.0)
    password: str = Field(default="", description="SFTP/FTP password (prefer key_file for SFTP)")
    key_file: Path | None = Field(default=None, description="SFTP client private key")
    known_hosts: Path | None = Field(
        default=None, description="SFTP known_hosts file; the server's key must be listed")


class GoalSettings(BaseModel):
    """A CRM stage that is a conversion: a record reaching it is recorded once, matched through
    its visitor id or call reference, and attributed. The key is the stage as the CRM names it
    (compared ignoring case, spaces and underscores: CLOSED_WON matches "Closed Won")."""

    model_config = {"extra": "forbid"}
    action: str = Field(default="sale", min_length=1, max_length=100)
    object: str = Field(default="opportunities", min_length=1,
                        description="the CRM object whose stage is watched")
    stage_field: str = Field(default="stage", min_length=1)
    value: float | None = Field(default=None, ge=0,
                                description="a fixed value; none: the record's amount_field")
    amount_field: str = "amount"
    currency_field: str = "currency"
    currency: str | None = Field(default=None, min_length=3, max_length=3,
                                 description="ISO 4217, when the record has no currency")


class ConversionsSettings(BaseModel):
    model_config = {"extra": "forbid"}
    goals: dict[str, GoalSettings] = Field(
        default_factory=dict, description="CRM stage -> conversion ([conversions.goals.STAGE])")
    writeback_model: Literal["first_touch", "last_touch", "linear", "position_based"] = Field(
        default="last_touch", description="whose channel, source and campaign are written to "
                                          "the CRM record a conversion matched")
    crm: bool = Field(default=True, description="read visitor ids and call references on CRM "
                                                "records, record goals, write attribution back")
    dedupe: Literal["transaction_ref", "action_ref_window"] = Field(
        default="transaction_ref",
        description="a second conversion with the same transaction reference is a duplicate; "
                    "or only with the same action and reference within dedupe_window_minutes",
    )
    dedupe_window_minutes: float = Field(default=1440.0, ge=0.0)
    batch_size: int = Field(default=5000, ge=1, le=20_000)
    max_csv_bytes: int = Field(default=512 * 1024 * 1024, ge=1024,
                               description="largest CSV accepted by the import endpoint")
    max_json_items: int = Field(default=1000, ge=1,
                                description="conversions in one POST /api/v1/conversions")
    drop: DropFolderSettings = Field(default_factory=DropFolderSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEADBRIDGE_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = "sqlite:///./var/leadbridge.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = ""
    data_dir: Path = Path("./var")
    secret_key: str = ""
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    identify: IdentifySettings = Field(default_factory=IdentifySettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    conversions: ConversionsSettings = Field(default_factory=ConversionsSettings)

    @model_validator(mode="after")
    def _public_url(self) -> Settings:
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        self.public_url = self.public_url.rstrip("/")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment overrides the TOML file, which arrives as init values
        return (env_settings, init_settings)


def config_path() -> Path:
    return Path(os.environ.get("LEADBRIDGE_CONFIG", "leadbridge.toml"))


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings; a bad file or value raises ConfigError naming the field."""
    path = path or config_path()
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    elif "LEADBRIDGE_CONFIG" in os.environ:
        raise ConfigError(f"LEADBRIDGE_CONFIG names {path}, which does not exist")
    data.update(overrides)
    try:
        return Settings(**data)
    except SettingsError as exc:
        raise ConfigError(
            f"a LEADBRIDGE_* variable could not be read ({exc}); list and table values must "
            'be JSON, e.g. LEADBRIDGE_TRACKING__TRUSTED_PROXIES=\'["10.0.0.1"]\''
        ) from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(
            f"invalid settings ({path} or LEADBRIDGE_* variables): {problems}"
        ) from exc
