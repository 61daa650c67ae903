"""What every warehouse asset check shares (the SQL models' in `models.py`, the profile's in
`profile_checks.py`), so a check's code is its query and its verdict: it queues on the account's pool
like the assets (one writer per DuckDB file) and reads through a prepared connection."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import duckdb

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.warehouse.connection import prepare

CheckFunction = Callable[[dg.AssetCheckExecutionContext], dg.AssetCheckResult]


def check(
    cfg: IntegrationConfig, table: str, name: str, description: str | None = None, *, blocking: bool = False
) -> Callable[[CheckFunction], dg.AssetChecksDefinition]:
    """Decorator: the check `name` of the account's asset `table`, with its DuckDB resource and pool;
    no `description` = the function's docstring (Dagster's default)."""
    return dg.asset_check(
        asset=dg.AssetKey([cfg.name, table]),
        name=name,
        pool=cfg.pool,
        required_resource_keys={cfg.resource_key("duckdb")},
        blocking=blocking,
        description=description,
    )


@contextmanager
def connection(
    cfg: IntegrationConfig, context: dg.AssetCheckExecutionContext
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The account's DuckDB, prepared like the assets' (`warehouse.connection.prepare`)."""
    with getattr(context.resources, cfg.resource_key("duckdb")).get_connection() as conn:
        prepare(conn)
        yield conn


def scalar(
    cfg: IntegrationConfig, context: dg.AssetCheckExecutionContext, sql: str, params: list | None = None
) -> Any:
    """The first row of one query (None if it has none): most checks are one aggregate."""
    with connection(cfg, context) as conn:
        return conn.execute(sql, params or []).fetchone()


def none_counted(
    cfg: IntegrationConfig, context: dg.AssetCheckExecutionContext, sql: str, label: str
) -> dg.AssetCheckResult:
    """Passes when `sql` (a `count(*)` of the rows that break a rule) counts none; the count is
    reported as `label`."""
    (n,) = scalar(cfg, context, sql)
    return dg.AssetCheckResult(passed=n == 0, metadata={label: n})
