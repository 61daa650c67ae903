"""The icomm export asset: sends each customer's profile to icomm when its exported values changed.

Unpartitioned on purpose: `customer_profile` holds the current profile (as of the latest day), icomm
keeps one current state per contact, and the delta is against what icomm last confirmed. A daily
partition would invite backfilling an old day, which would push stale values over newer ones.
"""

import dagster as dg
import duckdb

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.icomm.client import IcommError
from vtex_pipeline.icomm.delta import MappingError
from vtex_pipeline.icomm.export import ExportReport, run_export
from vtex_pipeline.icomm.fields import load_mapping
from vtex_pipeline.icomm.settings import IcommSettings
from vtex_pipeline.warehouse.connection import prepare


class IcommExportConfig(dg.Config):
    """Run config: `dry_run` writes the request bodies and a summary to `dry_run_dir` instead of sending."""

    dry_run: bool = False
    dry_run_dir: str = ""


def build_export_assets(cfg: IntegrationConfig, settings: IcommSettings) -> list[dg.AssetsDefinition]:
    duck_key, icomm_key = cfg.resource_key("duckdb"), cfg.resource_key("icomm")

    @dg.asset(
        key=dg.AssetKey([cfg.name, "icomm_contacts"]),
        deps=[dg.AssetKey([cfg.name, "customer_profile"])],
        group_name=f"{cfg.name}_export",
        kinds={"icomm", "duckdb"},
        pool=cfg.pool,
        required_resource_keys={duck_key, icomm_key},
        description=(
            "Contacts in the icomm profile: every customer with a deliverable e-mail whose exported values "
            "changed since icomm last confirmed them (tables icomm_sent, icomm_dead_letter)."
        ),
    )
    def icomm_contacts(context: dg.AssetExecutionContext, config: IcommExportConfig) -> dg.MaterializeResult:
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            report = send_contacts(
                context, settings, icomm_key, conn, dry_run=config.dry_run, dry_run_dir=config.dry_run_dir
            )
        meta = report.metadata()
        if report.failed_batches:
            # progress is already recorded; the run goes red so the operator sees icomm was failing
            raise dg.Failure(failed_batches_message(report), metadata=meta)
        return dg.MaterializeResult(metadata=meta)

    return [icomm_contacts]


def failed_batches_message(report: ExportReport) -> str:
    return (
        f"icomm refused or failed {report.failed_batches} batch(es); "
        f"{report.failed} contacts are in the dead letter and will be retried on the next run"
    )


def send_contacts(
    context: dg.AssetExecutionContext,
    settings: IcommSettings,
    icomm_key: str,
    conn: duckdb.DuckDBPyConnection,
    *,
    table: str = "customer_profile",
    dry_run: bool = False,
    dry_run_dir: str = "",
) -> ExportReport:
    """`run_export` of `table` with the account's icomm resource: the daily export and the feed's."""
    try:
        mapping = load_mapping(settings.fields_file)
    except MappingError as exc:
        raise dg.Failure(str(exc)) from None
    icomm = getattr(context.resources, icomm_key)
    client = None if dry_run else icomm.make_client()
    try:
        return run_export(
            conn,
            client,
            mapping,
            settings.model_copy(update={"profile_key": icomm.profile_key or settings.profile_key}),
            dry_run=dry_run,
            dry_run_dir=dry_run_dir or None,
            table=table,
        )
    except (MappingError, IcommError) as exc:  # messages never hold the key
        raise dg.Failure(str(exc)) from None
    finally:
        if client is not None:
            client.close()
