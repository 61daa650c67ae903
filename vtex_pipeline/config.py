"""Integration settings: one VTEX account, where its data lives and how politely it is synced.

Read from the environment (and a `.env` file) for a single integration, or from a YAML file listing
several (`VTEX_PIPELINE_INTEGRATIONS`). Secrets are never held here: only the *names* of the environment
variables that hold them, so nothing secret reaches Dagster's run config, metadata or logs.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from dotenv import load_dotenv
from pydantic import BaseModel, Field, field_validator, model_validator

from vtex_pipeline.bounds import AtLeastOne, Positive
from vtex_pipeline.icomm.settings import IcommSettings, icomm_settings_from_env
from vtex_pipeline.paths import resolve_path

DEFAULT_REQUESTS_PER_SECOND = 10.0
DEFAULT_CONCURRENCY = 4
ORDER_HORIZON_DAYS = 730  # VTEX serves orders created in the last two years only


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it."""


def default_start_date(today: date | None = None) -> date:
    """Two years back (VTEX's order horizon), floored to the month so the partition set is stable."""
    today = today or datetime.now(UTC).date()
    back = today - timedelta(days=ORDER_HORIZON_DAYS)
    return back.replace(day=1)


class IntegrationConfig(BaseModel):
    """One VTEX account synced into one DuckDB file."""

    name: str = Field(default="vtex", description="asset key prefix; lowercase letters, digits, _")
    account: str | None = None
    environment: str = "vtexcommercestable"
    base_url: str | None = None
    app_key_env: str = "VTEX_APP_KEY"
    app_token_env: str = "VTEX_APP_TOKEN"
    feed_app_key_env: str = Field(
        default="VTEX_FEED_APP_KEY",
        description="variable holding the Orders Feed's own app key; set (with the token) = feed path on",
    )
    feed_app_token_env: str = "VTEX_FEED_APP_TOKEN"
    sales_channels: list[str] | None = None
    requests_per_second: Positive = DEFAULT_REQUESTS_PER_SECOND
    concurrency: AtLeastOne = DEFAULT_CONCURRENCY
    request_timeout: float = 30.0
    ecommerce_url: str | None = None
    duckdb_path: str = Field(
        default="data/vtex.duckdb", description="relative paths: against the pipeline home (paths.py)"
    )
    timezone: str = "UTC"
    start_date: date = Field(default_factory=default_start_date)
    order_lookback_days: int = 30
    customer_overlap_minutes: int = 60
    catalog_stale_days: int = 7
    sync_chunk_days: int = 7
    icomm: IcommSettings | None = Field(default=None, description="None: the icomm export is not configured")
    k8s_volume_claim: str | None = Field(
        default=None,
        description=(
            "Kubernetes: the ReadWriteOnce PersistentVolumeClaim holding this account's DuckDB file; "
            "the account's jobs carry a `dagster-k8s/config` tag mounting it in the run pod"
        ),
    )
    k8s_mount_path: str | None = Field(
        default=None, description="where the claim is mounted in the run pod; default: duckdb_path's folder"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", v):
            raise ValueError(
                f"integration name {v!r} must be lowercase letters, digits and _ (it prefixes asset keys)"
            )
        return v

    @field_validator("duckdb_path")
    @classmethod
    def _duckdb_path(cls, v: str) -> str:
        return str(resolve_path(v))

    @field_validator("k8s_volume_claim")
    @classmethod
    def _claim(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", v):
            raise ValueError(
                f"k8s_volume_claim {v!r} must be lowercase letters, digits and -, at most 63 (a Kubernetes "
                "name that is also a label value: the run pods of the claim are labelled with it)"
            )
        return v

    @model_validator(mode="after")
    def _k8s_mount(self) -> IntegrationConfig:
        """With a claim: the mount path is absolute, not `/`, and holds the DuckDB file (the run pod
        writes nothing of this account outside its volume)."""
        if self.k8s_volume_claim is None:
            if self.k8s_mount_path is not None:
                raise ValueError("k8s_mount_path is set without k8s_volume_claim")
            return self
        mount = self.k8s_mount_path or posixpath.dirname(self.duckdb_path)
        if not posixpath.isabs(mount):
            raise ValueError(f"k8s_mount_path {mount!r} must be an absolute path in the run pod")
        mount = posixpath.normpath(mount)
        if mount == "/":
            raise ValueError("k8s_mount_path must not be / (the volume would hide the image)")
        path = posixpath.normpath(self.duckdb_path)
        if path == mount or posixpath.commonpath([mount, path]) != mount:
            raise ValueError(
                f"duckdb_path {self.duckdb_path} is outside k8s_mount_path {mount}: the file would not be "
                f"on PersistentVolumeClaim {self.k8s_volume_claim}"
            )
        self.k8s_mount_path = mount
        return self

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as America/Sao_Paulo)") from exc
        return v

    @property
    def vtex_base_url(self) -> str | None:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.account:
            return f"https://{self.account}.{self.environment}.com.br"
        return None

    @property
    def sales_channel_set(self) -> set[str] | None:
        return set(self.sales_channels) if self.sales_channels else None

    @property
    def pool(self) -> str:
        """Dagster concurrency pool of every asset and check that opens this integration's DuckDB file.
        With `pools.default_limit: 1` one step writes a file at a time, while other accounts (other
        files, other pools) run side by side up to the instance's run limit."""
        return f"duckdb_{self.name}"

    def feed_enabled(self, environ: Mapping[str, str] | None = None) -> bool:
        """The Orders Feed path is on when both of its variables are set (vtex_pipeline/feed/)."""
        env = os.environ if environ is None else environ
        return bool(
            (env.get(self.feed_app_key_env) or "").strip()
            and (env.get(self.feed_app_token_env) or "").strip()
        )

    def resource_key(self, kind: str) -> str:
        """Dagster resource key of this integration's `kind` ("duckdb", "vtex", ...)."""
        return f"{self.name}_{kind}"


def _split_list(value: str | None) -> list[str] | None:
    if not value or not value.strip() or value.strip().lower() == "all":
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def integration_from_env(environ: Mapping[str, str] | None = None) -> IntegrationConfig:
    """The single integration described by the `VTEX_*` / `VTEX_PIPELINE_*` variables."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {
        "account": env.get("VTEX_ACCOUNT") or None,
        "environment": env.get("VTEX_ENVIRONMENT") or "vtexcommercestable",
        "base_url": env.get("VTEX_BASE_URL") or None,
        "sales_channels": _split_list(env.get("VTEX_SALES_CHANNELS")),
        "ecommerce_url": env.get("VTEX_ECOMMERCE_URL") or None,
        "duckdb_path": env.get("VTEX_PIPELINE_DUCKDB") or "data/vtex.duckdb",
        "timezone": env.get("VTEX_PIPELINE_TIMEZONE") or "UTC",
    }
    optional = {
        "requests_per_second": "VTEX_REQUESTS_PER_SECOND",
        "concurrency": "VTEX_CONCURRENCY",
        "start_date": "VTEX_PIPELINE_START_DATE",
        "order_lookback_days": "VTEX_PIPELINE_ORDER_LOOKBACK_DAYS",
        "name": "VTEX_PIPELINE_INTEGRATION_NAME",
    }
    for field, var in optional.items():
        if env.get(var):
            raw[field] = env[var]
    if env.get("ICOMM_PROFILE_KEY"):
        raw["icomm"] = icomm_settings_from_env(env)
    try:
        return IntegrationConfig.model_validate(raw)
    except Exception as exc:  # pydantic.ValidationError: re-worded to name the variables
        raise ConfigError(f"invalid VTEX configuration from the environment: {exc}") from exc


def _relative_to(item: object, base: Path) -> object:
    """Relative file paths in an integrations file are relative to that file's folder."""
    if not isinstance(item, dict):
        return item
    item = dict(item)
    if item.get("duckdb_path"):
        item["duckdb_path"] = str(resolve_path(str(item["duckdb_path"]), base))
    icomm = item.get("icomm")
    if isinstance(icomm, dict):
        icomm = dict(icomm)
        for key in ("fields_file", "dry_run_dir"):
            if icomm.get(key):
                icomm[key] = str(resolve_path(str(icomm[key]), base))
        item["icomm"] = icomm
    return item


def load_integrations(
    environ: Mapping[str, str] | None = None, *, dotenv: bool = True
) -> list[IntegrationConfig]:
    """Every configured integration: the YAML file in `VTEX_PIPELINE_INTEGRATIONS`, else the env's one."""
    if dotenv and environ is None:
        load_dotenv(Path.cwd() / ".env", override=False)
    env = os.environ if environ is None else environ
    path = env.get("VTEX_PIPELINE_INTEGRATIONS")
    if not path:
        return [integration_from_env(env)]
    path = resolve_path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read VTEX_PIPELINE_INTEGRATIONS file {path}: {exc}") from exc
    items = doc.get("integrations") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected a list under 'integrations'")
    configs = []
    for i, item in enumerate(items):
        try:
            configs.append(IntegrationConfig.model_validate(_relative_to(item, path.parent)))
        except Exception as exc:
            raise ConfigError(f"{path}: integration #{i + 1} is invalid: {exc}") from exc
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: integration names must be unique, got {names}")
    shared = _shared([str(Path(c.duckdb_path).resolve()) for c in configs])
    if shared:  # one pool per integration serializes one file only if no two integrations share it
        raise ConfigError(f"{path}: each integration needs its own duckdb_path; shared: {', '.join(shared)}")
    shared = _shared([c.k8s_volume_claim for c in configs if c.k8s_volume_claim])
    if shared:  # ReadWriteOnce: two accounts' runs (different pools, so at once) would fight over it
        raise ConfigError(
            f"{path}: each integration needs its own k8s_volume_claim (a ReadWriteOnce volume per "
            f"account); shared: {', '.join(shared)}"
        )
    return configs


def _shared(values: list[str]) -> list[str]:
    """The values that occur more than once."""
    return sorted({v for v in values if values.count(v) > 1})
