"""icomm sink settings. Like `IntegrationConfig`, they hold the *name* of the variable with the API key,
never the key, so the settings can be logged, shown in Dagster and written to run config safely."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from vtex_pipeline.bounds import AtLeastOne, Positive

DEFAULT_BASE_URL = "https://api.icommarketing.com"


class IcommSettings(BaseModel):
    """Where and how contacts are sent. Defaults follow section 1.3 of the icomm reference."""

    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = Field(default="ICOMM_API_KEY", description="name of the env var holding the key")
    profile_key: str = ""
    auth_scheme: Literal["basic", "raw"] = "basic"
    batch_size: int = 500
    timeout: Positive = 60.0
    max_attempts: AtLeastOne = 5
    requests_per_second: Positive = 2.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 300.0
    fields_file: str = Field(default="", description="empty: the mapping shipped with the package")
    dry_run_dir: str = "data/icomm-dry-run"
    export_days_since: bool = True

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, v: int) -> int:
        if not 1 <= v <= 10_000:
            raise ValueError("batch_size must be between 1 and 10000")
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return v.rstrip("/")


_ENV_FIELDS = {
    "ICOMM_BASE_URL": "base_url",
    "ICOMM_PROFILE_KEY": "profile_key",
    "ICOMM_AUTH_SCHEME": "auth_scheme",
    "ICOMM_BATCH_SIZE": "batch_size",
    "ICOMM_TIMEOUT": "timeout",
    "ICOMM_MAX_ATTEMPTS": "max_attempts",
    "ICOMM_REQUESTS_PER_SECOND": "requests_per_second",
    "ICOMM_FIELDS_FILE": "fields_file",
    "ICOMM_DRY_RUN_DIR": "dry_run_dir",
    "ICOMM_EXPORT_DAYS_SINCE": "export_days_since",
}


def icomm_settings_from_env(environ: Mapping[str, str] | None = None) -> IcommSettings:
    """Read the `ICOMM_*` variables; unset or empty ones keep the defaults. The key itself is not read."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for var, attr in _ENV_FIELDS.items():
        value = (env.get(var) or "").strip()
        if value:
            raw[attr] = value.lower() if attr == "auth_scheme" else value
    try:
        return IcommSettings.model_validate(raw)
    except Exception as exc:  # pydantic.ValidationError: name the variables
        raise ValueError(f"invalid icomm configuration from the environment: {exc}") from exc
