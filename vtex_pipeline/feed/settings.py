"""How the Orders Feed path is set up: its key, its config at VTEX, how often it is read, when lag warns."""

from __future__ import annotations

import os
from collections.abc import Mapping

from vtex_pipeline.config import ConfigError, IntegrationConfig
from vtex_pipeline.profile.settings import DEFAULT_EXCLUDED_STATUSES
from vtex_pipeline.vtex.feed import (
    DEFAULT_STATUSES,
    RETENTION_MAX,
    FeedCheck,
    FeedFilter,
    check_feed_permission,
    feed_settings,
)
from vtex_pipeline.vtex.http import VtexClient, VtexSettings
from vtex_pipeline.vtex.verify import probe_settings

INTERVAL_VAR = "VTEX_PIPELINE_FEED_INTERVAL_SECONDS"
DEFAULT_INTERVAL = 30  # the sensor daemon's own default tick
LAG_WARN_VAR = "VTEX_PIPELINE_FEED_LAG_WARN_SECONDS"
DEFAULT_LAG_WARN = 300
# Items a lot reads stay hidden this long; the sensor stores and commits them within its tick (< 60 s),
# so this only matters when a tick dies between the two: the items come back 5 minutes later.
VISIBILITY_TIMEOUT = 300
RETENTION = RETENTION_MAX  # 14 days: the longest a stopped daemon can be down without losing events
MAX_EVENTS_PER_TICK = 500  # 50 reads: well inside the sensor's 60 s evaluation limit
# Creation, payment, invoice and cancellation, plus the statuses the profile leaves out (an order
# entering or leaving one changes whether it is a purchase). Other changes do not touch the profile.
FEED_FILTER = FeedFilter.workflow(sorted({*DEFAULT_STATUSES, *DEFAULT_EXCLUDED_STATUSES}))


def _seconds(environ: Mapping[str, str], var: str, default: int, lo: int, hi: int) -> int:
    raw = (environ.get(var) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{var} must be a whole number of seconds, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{var} must be between {lo} and {hi} seconds, got {value}")
    return value


def feed_interval(environ: Mapping[str, str] | None = None) -> int:
    """Seconds between two reads of the feed (the sensor's minimum interval)."""
    return _seconds(os.environ if environ is None else environ, INTERVAL_VAR, DEFAULT_INTERVAL, 10, 600)


def lag_warn_seconds(environ: Mapping[str, str] | None = None) -> int:
    """The check on the feed asset warns when an event took longer than this to reach the profile."""
    return _seconds(os.environ if environ is None else environ, LAG_WARN_VAR, DEFAULT_LAG_WARN, 30, 86_400)


def feed_vtex_settings(
    cfg: IntegrationConfig, environ: Mapping[str, str] | None = None
) -> VtexSettings | None:
    """The account's client settings with the feed's own key (None: the feed path is off)."""
    env = os.environ if environ is None else environ
    if not cfg.vtex_base_url:
        return None
    # one connection, few attempts: a tick must stay well inside the sensor's 60 s evaluation limit
    base = probe_settings(cfg, timeout=cfg.request_timeout).replace(max_attempts=3)
    return feed_settings(base, env, key_var=cfg.feed_app_key_env, token_var=cfg.feed_app_token_env)


def verify_feed(cfg: IntegrationConfig, environ: Mapping[str, str] | None = None) -> FeedCheck | None:
    """`verify`'s line for the feed key: None when the feed path is off."""
    settings = feed_vtex_settings(cfg, environ)
    if settings is None:
        return None
    with VtexClient(settings.replace(max_attempts=2)) as client:
        return check_feed_permission(client)
