"""The production chain, for real: PostgreSQL storage, a gRPC code server, dagster-daemon, the schedule
and the sensor switched on as an operator would without the UI, the VTEX and icomm simulators as HTTP
servers. Every piece is its own process; nothing is called in-process except reading the results.

What it proves:
- schedule `vtex_raw_sync_every_4h` (cron from VTEX_PIPELINE_SYNC_CRON, every minute here) launches a
  `vtex_raw_sync` run through the run queue (QUEUED -> DEQUEUED -> STARTING -> STARTED -> SUCCESS) over
  the days from the start date to the day of the 4-hour window that just closed;
- the raw day partitions from the start date on are materialized in the PostgreSQL instance;
- sensor `vtex_profile_after_sync` (VTEX_PIPELINE_SENSOR_INTERVAL_SECONDS=15) then requests
  `vtex_profile_export` for each complete day D (partition D, run key profile-D) and those runs succeed;
- the icomm simulator received exactly the deliverable e-mails of customer_profile.

Minutes long: marked `daemon` (`pytest -m "not daemon"` leaves it out). Needs PostgreSQL's server
binaries (skips without them, fails when CI is set).
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from vtex_pipeline_tests.deploy.daemon_stack import (
    BIN,
    Processes,
    base_env,
    drain_runs,
    free_port,
    run_cli,
    run_errors,
    start_code_server_and_daemon,
    wait,
    write_instance,
    write_workspace,
)

SCHEDULE = "vtex_raw_sync_every_4h"
SENSOR = "vtex_profile_after_sync"
RAW_JOB = "vtex_raw_sync"
PROFILE_JOB = "vtex_profile_export"
ICOMM_PROFILE = "demo-profile"
WAIT_FOR_RUNS_SECONDS = 360  # schedule tick, raw run, sensor, profile runs
DRAIN_SECONDS = 180  # runs already requested when the schedule and sensor are switched off
# A run submitted to the queue, taken off it by the daemon and launched (Dagster 1.13 records no
# PIPELINE_DEQUEUED event: the daemon's launch is PIPELINE_STARTING).
LIFECYCLE = ("PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_START", "PIPELINE_SUCCESS")

pytestmark = [pytest.mark.daemon, pytest.mark.postgres, pytest.mark.timeout(1200)]


def _lifecycle(instance, run_id: str) -> list[str]:
    """The run's status events in order (DEQUEUED kept, should a Dagster version record it)."""
    kept = (*LIFECYCLE, "PIPELINE_DEQUEUED")
    seen = [
        e.dagster_event.event_type_value
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None and e.dagster_event.event_type_value in kept
    ]
    return [t for t in seen if t != "PIPELINE_DEQUEUED"]


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _closed_window_day(tick: datetime) -> date:
    """Day of the 4-hour UTC window that closed last at `tick` (the schedule's range end)."""
    tick = tick.astimezone(UTC)
    window = tick.replace(hour=tick.hour - tick.hour % 4, minute=0, second=0, microsecond=0)
    return (window - timedelta(hours=4)).date()


def test_schedule_and_sensor_under_dagster_daemon_on_postgres(
    postgres_cluster, stack: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg
    import duckdb
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
        PARTITION_NAME_TAG,
        RUN_KEY_TAG,
        SCHEDULE_NAME_TAG,
        SENSOR_NAME_TAG,
    )

    from vtex_pipeline.icomm.delta import deliverable_sql

    today = datetime.now(UTC).date()
    start = today - timedelta(days=3)
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    data.mkdir()
    contacts = tmp_path / "contacts.jsonl"
    duckdb_path = data / "vtex.duckdb"
    vtex_port, icomm_port, grpc_port = free_port(), free_port(), free_port()

    # The instance: deploy/dagster.yaml (DefaultRunLauncher: runs are subprocesses of the code server on
    # this host), its {env: DAGSTER_POSTGRES_*} pointed at the throwaway cluster.
    write_instance(home, max_concurrent_runs=4)
    workspace = write_workspace(tmp_path / "workspace.yaml", grpc_port)
    pg_env = postgres_cluster.env(postgres_cluster.create_database("daemon_chain"))
    env = base_env(tmp_path, pg_env, home)
    env.update(
        {
            "VTEX_BASE_URL": f"http://127.0.0.1:{vtex_port}",
            "VTEX_ACCOUNT": "demostore",
            "VTEX_APP_KEY": "vtexappkey-demo-LOCAL",
            "VTEX_APP_TOKEN": "demo-token-not-a-secret",
            "VTEX_REQUESTS_PER_SECOND": "200",
            "ICOMM_BASE_URL": f"http://127.0.0.1:{icomm_port}",
            "ICOMM_API_KEY": "icomm-demo-key-not-a-secret",
            "ICOMM_PROFILE_KEY": ICOMM_PROFILE,
            "ICOMM_REQUESTS_PER_SECOND": "50",
            "VTEX_PIPELINE_DUCKDB": str(duckdb_path),
            "VTEX_PIPELINE_START_DATE": start.isoformat(),
            "VTEX_PIPELINE_SYNC_CRON": "* * * * *",
            "VTEX_PIPELINE_SENSOR_INTERVAL_SECONDS": "15",
        }
    )
    for k, v in pg_env.items():  # this process reads the same instance
        monkeypatch.setenv(k, v)
    cli = str(BIN / "vtex-pipeline")

    try:
        stack.start(
            "vtex_simulator",
            [cli, "simulate", "vtex", "--port", str(vtex_port), "--customers", "300", "--orders", "900", "--seed", "7"],
            env, tmp_path,
        )  # fmt: skip
        stack.start(
            "icomm_simulator", [cli, "simulate", "icomm", "--port", str(icomm_port), "--out", str(contacts)],
            env, tmp_path,
        )  # fmt: skip
        stack.wait_ports("simulator", (vtex_port, icomm_port), 60)

        start_code_server_and_daemon(stack, env, tmp_path, grpc_port, workspace)

        # Switched on as an operator would, without the UI.
        dagster = str(BIN / "dagster")
        run_cli([dagster, "schedule", "start", SCHEDULE, "-w", str(workspace)], env, tmp_path)
        run_cli([dagster, "sensor", "start", SENSOR, "-w", str(workspace)], env, tmp_path)

        with dg.DagsterInstance.from_config(str(home)) as instance:
            expected_days = _days(start, today - timedelta(days=1))  # complete days from the start date

            def runs(job: str) -> list:
                return list(instance.get_runs(filters=dg.RunsFilter(job_name=job)))

            def progress() -> bool:
                stack.check_alive()
                every = runs(RAW_JOB) + runs(PROFILE_JOB)
                failed = [
                    r
                    for r in every
                    if r.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
                ]
                if failed:
                    raise AssertionError("\n\n".join(run_errors(instance, r) for r in failed))
                raw_ok = any(
                    r.tags.get(SCHEDULE_NAME_TAG) == SCHEDULE and r.status == dg.DagsterRunStatus.SUCCESS
                    for r in runs(RAW_JOB)
                )
                profiled = {
                    r.tags.get(PARTITION_NAME_TAG)
                    for r in runs(PROFILE_JOB)
                    if r.tags.get(SENSOR_NAME_TAG) == SENSOR and r.status == dg.DagsterRunStatus.SUCCESS
                }
                return raw_ok and set(expected_days) <= profiled

            try:
                wait("a scheduled raw sync and the sensor's profile runs for every complete day",
                      progress, WAIT_FOR_RUNS_SECONDS, 5)  # fmt: skip
            finally:
                # Off again, then let what was already requested finish before the processes go.
                with contextlib.suppress(Exception):
                    run_cli([dagster, "schedule", "stop", SCHEDULE, "-w", str(workspace)], env, tmp_path)
                    run_cli([dagster, "sensor", "stop", SENSOR, "-w", str(workspace)], env, tmp_path)
            drain_runs(instance, DRAIN_SECONDS, 3)
            stack.stop("daemon")
            stack.stop("code_server")
            stack.stop("icomm_simulator")
            stack.stop("vtex_simulator")

            # -- the schedule's run: through the queue, over the days from the start date
            scheduled = sorted(
                (r for r in runs(RAW_JOB) if r.tags.get(SCHEDULE_NAME_TAG) == SCHEDULE),
                key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp,
            )
            assert scheduled, "no vtex_raw_sync run carries the schedule's tag"
            first = scheduled[0]
            assert first.status == dg.DagsterRunStatus.SUCCESS, run_errors(instance, first)
            assert _lifecycle(instance, first.run_id) == list(LIFECYCLE), "not launched through the queue"
            created = instance.get_run_record_by_id(first.run_id).create_timestamp
            if PARTITION_NAME_TAG in first.tags:
                rng = (first.tags[PARTITION_NAME_TAG],) * 2
            else:
                rng = (first.tags[ASSET_PARTITION_RANGE_START_TAG], first.tags[ASSET_PARTITION_RANGE_END_TAG])
            # the tick is at most a minute (cron) plus the daemon's loop before the run's creation
            possible_ends = {_closed_window_day(created - timedelta(seconds=s)).isoformat() for s in (0, 150)}
            assert rng[0] == start.isoformat(), f"first tick must start at the start date, got {rng}"
            assert rng[1] in possible_ends, (
                f"range {rng}: must end at the closed window's day {possible_ends}"
            )

            # -- the raw partitions in the instance cover the days from the start date
            synced = _days(start, date.fromisoformat(rng[1]))
            done = instance.get_materialized_partitions(dg.AssetKey(["vtex", "raw_orders"]))
            missing = sorted(set(synced) - set(done))
            assert not missing, f"raw_orders: days not materialized: {missing} (have {sorted(done)})"
            # customers are a current-state table (not partitioned): synced past the last complete day
            latest = instance.get_latest_materialization_event(dg.AssetKey(["vtex", "raw_customers"]))
            until = latest.asset_materialization.metadata["synced_until"].value
            assert datetime.fromisoformat(until) >= datetime.combine(
                date.fromisoformat(expected_days[-1]) + timedelta(days=1), datetime.min.time(), tzinfo=UTC
            )

            # -- the sensor's runs: one per complete day, partition D, run key profile-D, via the queue
            by_day: dict[str, list] = {}
            for r in runs(PROFILE_JOB):
                assert r.tags.get(SENSOR_NAME_TAG) == SENSOR, f"profile run not from the sensor: {r.tags}"
                by_day.setdefault(r.tags.get(PARTITION_NAME_TAG), []).append(r)
            assert set(by_day) == set(expected_days), (
                f"profile runs for {sorted(by_day)}, expected {expected_days}"
            )
            for day, day_runs in by_day.items():
                assert len(day_runs) == 1, f"day {day} was requested {len(day_runs)} times"
                run = day_runs[0]
                assert run.status == dg.DagsterRunStatus.SUCCESS, run_errors(instance, run)
                assert run.tags.get(RUN_KEY_TAG) == f"profile-{day}"
                assert _lifecycle(instance, run.run_id) == list(LIFECYCLE)

        # -- icomm got exactly the deliverable e-mails of the profile (read-only, every process gone)
        lines = [
            json.loads(line) for line in contacts.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        sent = {c["Email"].strip().lower() for c in lines if c.get("profile_key") == ICOMM_PROFILE}
        assert len(sent) > 0, "the icomm simulator received no contact"
        email = "lower(trim(CAST(email AS VARCHAR)))"
        with duckdb.connect(str(duckdb_path), read_only=True) as conn:
            expected = {
                row[0]
                for row in conn.execute(
                    f"SELECT DISTINCT {email} FROM customer_profile WHERE {deliverable_sql(email)}"
                ).fetchall()
            }
        assert len(sent) == len(expected), (
            f"{len(sent)} e-mails sent, {len(expected)} deliverable in the profile"
        )
        assert sent == expected
    except BaseException:
        print(stack.dump())
        print(f"===== postgres (last lines) =====\n{postgres_cluster.server_log()}")
        raise
