"""Send the planned contacts to icomm in batches, recording each confirmed send as soon as it is known.

After every batch, in one transaction: contacts icomm accepted go to `icomm_sent` (and leave the dead
letter), contacts it refused go to `icomm_dead_letter` with the error. A crash mid-export therefore loses
nothing and re-sends nothing icomm already confirmed. The batch in flight is written to `icomm_in_flight`
before its request: if the process dies while icomm has it, the next export asks icomm which of those
contacts it already holds with the values sent and records them instead of sending them again. A batch that fails as a whole after the client's
retries dead-letters its contacts and the export goes on; after `max_failed_batches` such batches in a
row icomm is taken to be down and the rest waits for the next run (it is still planned then).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from vtex_pipeline.icomm.client import ContactResult, IcommAuthError, IcommClient, IcommError, encode_body
from vtex_pipeline.icomm.delta import ExportPlan, ensure_tables, plan_export
from vtex_pipeline.icomm.fields import FieldMapping
from vtex_pipeline.icomm.settings import IcommSettings
from vtex_pipeline.interrupts import deferred_interrupts
from vtex_pipeline.paths import resolve_path
from vtex_pipeline.warehouse.connection import transaction

log = logging.getLogger("vtex_pipeline.icomm")

MAX_FAILED_BATCHES_IN_A_ROW = 3


@dataclass
class ExportReport:
    """What one export did; `metadata()` is what the Dagster asset shows."""

    new: int = 0
    changed: int = 0
    retried_dead_letter: int = 0
    unchanged: int = 0
    skipped_no_email: int = 0
    skipped_duplicate_email: int = 0
    planned: int = 0
    sent: int = 0
    failed: int = 0
    failed_batches: int = 0
    not_attempted: int = 0
    in_flight_confirmed: int = 0
    in_flight_resent: int = 0
    batches: int = 0
    dead_letter: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    timeouts: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    dry_run_dir: str | None = None
    errors: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in asdict(self).items() if k not in ("errors", "dry_run_dir")}
        out["seconds"] = round(self.seconds, 3)
        if self.dry_run_dir:
            out["dry_run_dir"] = self.dry_run_dir
        if self.errors:
            out["errors"] = "; ".join(self.errors[:5])
        return out


def _now() -> datetime:
    return datetime.now(UTC)


def _planned_rows(rows: list[dict[str, Any]], *, payload: bool = False) -> pa.Table:
    """Plan rows as an Arrow table to register: e-mail, customer, hash, as_of (and the contact's JSON)."""
    columns: dict[str, Any] = {
        "email": [r["email"] for r in rows],
        "customer_id": [r["customer_id"] for r in rows],
        "hash": [r["hash"] for r in rows],
        "as_of": pa.array([r["as_of"] for r in rows], type=pa.date32()),
    }
    if payload:
        columns["payload"] = [json.dumps(r["contact"], ensure_ascii=False) for r in rows]
    return pa.table(columns)


def _record_batch(
    conn: duckdb.DuckDBPyConnection,
    batch: list[dict[str, Any]],
    results: list[ContactResult] | None,
    error: str | None,
) -> tuple[int, int]:
    """Store one batch's outcome in one transaction; returns (sent, failed)."""
    now = _now()
    ok_rows: list[dict[str, Any]] = []
    bad_rows: list[dict[str, Any]] = []
    for i, row in enumerate(batch):
        result = results[i] if results is not None else None
        if result is not None and result.ok:
            ok_rows.append(row)
        else:
            reason = error or (
                f"StatusCode {result.status_code}: {result.message}" if result else "no result"
            )
            bad_rows.append({**row, "error": reason[:1000]})
    with transaction(conn):
        conn.execute("DELETE FROM icomm_in_flight")
        if ok_rows:
            conn.register("_icomm_ok", _planned_rows(ok_rows))
            conn.execute(
                """INSERT INTO icomm_sent SELECT email, customer_id, hash, ?, as_of FROM _icomm_ok
                   ON CONFLICT (email) DO UPDATE SET customer_id = excluded.customer_id, hash = excluded.hash,
                       sent_at = excluded.sent_at, as_of = excluded.as_of""",
                [now],
            )
            conn.execute("DELETE FROM icomm_dead_letter WHERE email IN (SELECT email FROM _icomm_ok)")
            conn.unregister("_icomm_ok")
        if bad_rows:
            conn.register(
                "_icomm_bad",
                pa.table(
                    {
                        "email": [r["email"] for r in bad_rows],
                        "customer_id": [r["customer_id"] for r in bad_rows],
                        "payload": [json.dumps(r["contact"], ensure_ascii=False) for r in bad_rows],
                        "error": [r["error"] for r in bad_rows],
                    }
                ),
            )
            conn.execute(
                """INSERT INTO icomm_dead_letter
                   SELECT email, customer_id, payload, error, 1, ?, ? FROM _icomm_bad
                   ON CONFLICT (email) DO UPDATE SET customer_id = excluded.customer_id,
                       payload = excluded.payload, error = excluded.error,
                       attempts = icomm_dead_letter.attempts + 1, last_failed_at = excluded.last_failed_at""",
                [now, now],
            )
            conn.unregister("_icomm_bad")
    return len(ok_rows), len(bad_rows)


def _journal(conn: duckdb.DuckDBPyConnection, batch: list[dict[str, Any]], profile_key: str) -> None:
    """Write the batch about to be sent to `icomm_in_flight` (replacing any other), in one transaction."""
    conn.register("_icomm_flight", _planned_rows(batch, payload=True))
    try:
        with transaction(conn):
            conn.execute("DELETE FROM icomm_in_flight")
            conn.execute(
                """INSERT INTO icomm_in_flight
                   SELECT email, customer_id, hash, as_of, ?, payload, ? FROM _icomm_flight""",
                [profile_key, _now()],
            )
    finally:
        conn.unregister("_icomm_flight")


def _held_by_icomm(client: IcommClient, contact: dict[str, Any]) -> bool:
    """Whether icomm holds `contact` with every field value it was sent (icomm updates only the fields
    a request names, so the others do not matter)."""
    stored = client.list_full(str(contact.get("Email", "")))
    if not stored:
        return False
    values = {
        f.get("Key"): f.get("Value") for f in stored[0].get("CustomFields") or [] if isinstance(f, dict)
    }
    return all(values.get(f["Key"]) == f["Value"] for f in contact.get("CustomFields") or [])


def reconcile_in_flight(
    conn: duckdb.DuckDBPyConnection, client: IcommClient, profile_key: str, report: ExportReport
) -> None:
    """Settle a batch an earlier export left in flight (its process died waiting for icomm's answer):
    the contacts icomm already holds with the values sent are recorded as sent; the others are left to
    the plan, which sends them (they are not in `icomm_sent` with that hash). One ListFull per contact,
    only after such a death; if icomm cannot answer, everything is sent again (at least once, as before)."""
    rows = conn.execute(
        "SELECT email, customer_id, hash, as_of, profile_key, payload FROM icomm_in_flight"
    ).fetchall()
    if not rows:
        return
    batch = [
        {"email": e, "customer_id": c, "hash": h, "as_of": a, "contact": json.loads(p)}
        for e, c, h, a, k, p in rows
        if k == profile_key
    ]
    held: list[dict[str, Any]] = []
    try:
        held = [r for r in batch if _held_by_icomm(client, r["contact"])]
    except IcommAuthError:
        raise
    except IcommError as exc:
        log.warning(
            "icomm: cannot check the batch left in flight (%s); its contacts are sent again",
            client.scrub(str(exc)),
        )
        held = []
    results = [ContactResult(r["email"], True, 1, "held by icomm (checked with ListFull)") for r in held]
    _record_batch(conn, held, results, None)  # also empties icomm_in_flight
    report.in_flight_confirmed, report.in_flight_resent = len(held), len(rows) - len(held)
    log.warning(
        "icomm: the last export died with a batch of %d contacts in flight; icomm already held %d of them "
        "with the values sent (recorded, not sent again); %d are sent again",
        len(rows),
        len(held),
        len(rows) - len(held),
    )


def _write_dry_run(
    plan: ExportPlan, conn: duckdb.DuckDBPyConnection, settings: IcommSettings, out: Path
) -> int:
    """Write `batches-NNNN.json` (the exact request bodies) and return the number of batches."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("batches-*.json"):
        old.unlink()
    n = 0
    for batch in plan.batches(conn, settings.batch_size):
        n += 1
        body = {"ProfileKey": settings.profile_key, "ContactList": [r["contact"] for r in batch]}
        (out / f"batches-{n:04d}.json").write_bytes(encode_body(body))
    return n


def run_export(
    conn: duckdb.DuckDBPyConnection,
    client: IcommClient | None,
    mapping: FieldMapping,
    settings: IcommSettings,
    *,
    dry_run: bool = False,
    dry_run_dir: str | Path | None = None,
    table: str = "customer_profile",
    max_failed_batches: int = MAX_FAILED_BATCHES_IN_A_ROW,
) -> ExportReport:
    """Plan (delta against `icomm_sent`), then send or, in a dry run, write what would be sent."""
    started = time.monotonic()
    ensure_tables(conn)
    if not settings.export_days_since:
        mapping = mapping.without_days_since()
    report = ExportReport(dry_run=dry_run)
    if not dry_run and client is not None:
        reconcile_in_flight(conn, client, settings.profile_key, report)
    plan = plan_export(conn, mapping, profile_key=settings.profile_key, table=table)
    c = plan.counts
    report.new, report.changed, report.unchanged = c["new"], c["changed"], c["unchanged"]
    report.retried_dead_letter = plan.dead_letter_replanned
    report.skipped_no_email, report.skipped_duplicate_email = (
        c["skipped_no_email"],
        c["skipped_duplicate_email"],
    )
    report.planned = plan.to_send
    log.info(
        "icomm export plan: %d to send (%d new, %d changed, %d dead-letter retries), %d unchanged, "
        "%d without a deliverable e-mail",
        plan.to_send,
        c["new"],
        c["changed"],
        c["retry"],
        c["unchanged"],
        c["skipped_no_email"],
    )
    if dry_run:
        out = resolve_path(dry_run_dir or settings.dry_run_dir)
        report.batches = _write_dry_run(plan, conn, settings, out)
        report.dry_run_dir = str(out)
        summary = {
            "generated_at": _now().isoformat(),
            "profile_key": settings.profile_key,
            "batch_size": settings.batch_size,
            "batches": report.batches,
            "fields": plan.keys,
            **{k: v for k, v in c.items()},
            "to_send": plan.to_send,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    else:
        if client is None:
            raise ValueError("run_export needs a client unless dry_run=True")
        failed_in_a_row = 0
        done = 0
        for batch in plan.batches(conn, settings.batch_size):
            report.batches += 1
            # a safe point for a cancel: a batch icomm accepted is recorded before the run stops, so the
            # next run does not send it again
            with deferred_interrupts():
                _journal(conn, batch, settings.profile_key)
                try:
                    results: list[ContactResult] | None = client.save_multi_contact(
                        [r["contact"] for r in batch]
                    )
                    error = None
                    failed_in_a_row = 0
                except IcommAuthError:
                    raise
                except IcommError as exc:
                    results, error = None, client.scrub(str(exc))
                    report.failed_batches += 1
                    failed_in_a_row += 1
                    if len(report.errors) < 20:
                        report.errors.append(error)
                    log.warning(
                        "icomm batch %d failed (%s); its contacts go to the dead letter",
                        report.batches,
                        error,
                    )
                sent, failed = _record_batch(conn, batch, results, error)
            report.sent += sent
            report.failed += failed
            done += len(batch)
            if failed_in_a_row >= max_failed_batches and done < plan.to_send:
                report.not_attempted = plan.to_send - done
                log.error(
                    "icomm failed %d batches in a row; stopping, %d contacts wait for the next run",
                    failed_in_a_row,
                    report.not_attempted,
                )
                break
        stats = client.stats.snapshot()
        report.requests, report.retries = stats["requests"], stats["retries"]
        report.throttled, report.timeouts = stats["throttled"], stats["timeouts"]
    conn.execute(f"DROP TABLE IF EXISTS {plan.table}")
    report.dead_letter = int(conn.execute("SELECT count(*) FROM icomm_dead_letter").fetchone()[0])
    report.seconds = time.monotonic() - started
    log.info(
        "icomm export done: %d sent, %d failed, %d batches (%d failed), dead letter %d, %.1fs",
        report.sent,
        report.failed,
        report.batches,
        report.failed_batches,
        report.dead_letter,
        report.seconds,
    )
    return report
