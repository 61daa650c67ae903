"""Several VTEX accounts under the real dagster-daemon: one integrations file with three accounts, each
served by its own simulator process, one of them configured with a wrong token; PostgreSQL storage,
QueuedRunCoordinator, `pools: default_limit: 1`, DefaultRunLauncher through a gRPC code server (the
deploy/dagster.yaml of production), the three `<name>_raw_sync_every_4h` schedules switched on with
`dagster schedule start` and ticking each minute.

What it proves:
- the two good accounts' scheduled raw syncs succeed; the bad account's run fails saying 401 / key or
  token, and no run of any other account fails;
- accounts run side by side: the good accounts' runs of one schedule tick overlap in time (run start/end
  from the instance; the schedules are switched on one after the other, so their first ticks can fall in
  different minutes: the test compares runs of the same `.dagster/scheduled_execution_time` tag);
- one writer per DuckDB file: for each account, the steps of its runs in pool `duckdb_<name>` (from the
  execution plans) never overlap (STEP_START .. STEP_SUCCESS/STEP_FAILURE in the event log);
- each account's data landed in its own file only.

Minutes long: marked `daemon`. Needs PostgreSQL's server binaries (skips without them, fails with CI set).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from vtex_pipeline_tests.deploy.daemon_stack import (
    BIN,
    Processes,
    base_env,
    drain_runs,
    free_port,
    pool_overlaps,
    port_open,
    run_cli,
    run_errors,
    run_span,
    start_code_server_and_daemon,
    step_windows,
    wait,
    write_instance,
    write_workspace,
)

pytestmark = [pytest.mark.daemon, pytest.mark.postgres, pytest.mark.timeout(1200)]

GOOD = ("brand_a", "brand_b")
BAD = "brand_bad"
ACCOUNTS = (*GOOD, BAD)
APP_KEY, APP_TOKEN = "vtexappkey-demo-LOCAL", "demo-token-not-a-secret"
# Every answer takes 0.5 s, as a far-away API does: a sync lasts tens of seconds, long enough to see
# whether accounts run side by side (an unthrottled simulator answers a 3-day sync in ~5 s, less than
# the daemon takes to launch the next queued run on 2 cores).
FAULTS = "latency=0.5"
WAIT_SECONDS = 420
DRAIN_SECONDS = 240


def _integrations(tmp_path: Path, ports: dict[str, int], start: str) -> Path:
    items = []
    for name in ACCOUNTS:
        env_prefix = name.upper()
        items.append(
            {
                "name": name,
                "account": name.replace("_", ""),
                "base_url": f"http://127.0.0.1:{ports[name]}",
                "duckdb_path": f"data/{name}.duckdb",
                "app_key_env": f"{env_prefix}_VTEX_APP_KEY",
                "app_token_env": f"{env_prefix}_VTEX_APP_TOKEN",
                "requests_per_second": 200,
                "concurrency": 4,
                "start_date": start,
                "request_timeout": 10,
            }
        )
    path = tmp_path / "integrations.yaml"
    path.write_text(yaml.safe_dump({"integrations": items}), encoding="utf-8")
    return path


def test_three_accounts_under_dagster_daemon(
    postgres_cluster, stack: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg
    import duckdb
    from dagster._core.storage.tags import SCHEDULE_NAME_TAG, SCHEDULED_EXECUTION_TIME_TAG

    start = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    home = tmp_path / "dagster_home"
    (tmp_path / "data").mkdir()
    ports = {name: free_port() for name in ACCOUNTS}
    grpc_port = free_port()
    write_instance(home, max_concurrent_runs=4)
    workspace = write_workspace(tmp_path / "workspace.yaml", grpc_port)
    integrations = _integrations(tmp_path, ports, start)

    pg_env = postgres_cluster.env(postgres_cluster.create_database("many_accounts"))
    env = base_env(tmp_path, pg_env, home)
    env.update(
        {
            "VTEX_PIPELINE_INTEGRATIONS": str(integrations),
            "VTEX_PIPELINE_SYNC_CRON": "* * * * *",
            "VTEX_PIPELINE_START_DATE": start,
        }
    )
    for name in ACCOUNTS:  # each account reads its own secret variables
        env[f"{name.upper()}_VTEX_APP_KEY"] = APP_KEY
        env[f"{name.upper()}_VTEX_APP_TOKEN"] = "wrong-token-for-this-key" if name == BAD else APP_TOKEN
    for k, v in pg_env.items():  # this process reads the same instance
        monkeypatch.setenv(k, v)
    cli = str(BIN / "vtex-pipeline")
    schedules = {name: f"{name}_raw_sync_every_4h" for name in ACCOUNTS}
    jobs = {name: f"{name}_raw_sync" for name in ACCOUNTS}

    try:
        for seed, name in enumerate(ACCOUNTS, start=11):
            stack.start(
                f"sim_{name}",
                [cli, "simulate", "vtex", "--port", str(ports[name]), "--customers", "100", "--orders", "300",
                 "--seed", str(seed), "--app-key", APP_KEY, "--app-token", APP_TOKEN, "--faults", FAULTS],
                env, tmp_path,
            )  # fmt: skip
        for name in ACCOUNTS:
            wait(f"simulator of {name}", lambda p=ports[name]: stack.check_alive() or port_open(p), 90)
        start_code_server_and_daemon(stack, env, tmp_path, grpc_port, workspace)
        dagster = str(BIN / "dagster")
        for name in ACCOUNTS:  # switched on as an operator would, without the UI
            run_cli([dagster, "schedule", "start", schedules[name], "-w", str(workspace)], env, tmp_path)

        with dg.DagsterInstance.from_config(str(home)) as instance:

            def runs(name: str) -> list:
                return list(instance.get_runs(filters=dg.RunsFilter(job_name=jobs[name])))

            def succeeded_ticks(name: str) -> dict[str, object]:
                return {
                    r.tags[SCHEDULED_EXECUTION_TIME_TAG]: r
                    for r in runs(name)
                    if r.status == dg.DagsterRunStatus.SUCCESS and SCHEDULED_EXECUTION_TIME_TAG in r.tags
                }

            def common_ticks() -> list[str]:
                ticks = [set(succeeded_ticks(name)) for name in GOOD]
                return sorted(set.intersection(*ticks))

            def done() -> bool:
                stack.check_alive()
                for name in GOOD:
                    bad_runs = [r for r in runs(name) if r.status == dg.DagsterRunStatus.FAILURE]
                    if bad_runs:  # a good account failed: no point waiting
                        raise AssertionError(run_errors(instance, bad_runs[0]))
                # both good accounts synced at one same tick (their schedules' first ticks may differ)
                bad_failed = any(r.status == dg.DagsterRunStatus.FAILURE for r in runs(BAD))
                return bool(common_ticks()) and bad_failed

            try:
                wait("both good accounts synced and the bad one failed", done, WAIT_SECONDS, 3)
            finally:
                with contextlib.suppress(Exception):
                    for name in ACCOUNTS:
                        run_cli([dagster, "schedule", "stop", schedules[name], "-w", str(workspace)], env, tmp_path)  # fmt: skip
            drain_runs(instance, DRAIN_SECONDS, 2)
            stack.stop("daemon")
            stack.stop("code_server")

            every = list(instance.get_runs())
            by_account = {name: runs(name) for name in ACCOUNTS}
            assert sum(len(v) for v in by_account.values()) == len(every), (
                f"unexpected jobs: {sorted({r.job_name for r in every})}"
            )
            for name, account_runs in by_account.items():
                assert account_runs, f"no run of {jobs[name]}"
                assert all(r.tags.get(SCHEDULE_NAME_TAG) == schedules[name] for r in account_runs)

            # -- only the bad account fails, and it says why
            for name in GOOD:
                for r in by_account[name]:
                    assert r.status == dg.DagsterRunStatus.SUCCESS, run_errors(instance, r)
            failed = [r for r in every if r.status == dg.DagsterRunStatus.FAILURE]
            assert failed and {r.job_name for r in failed} == {jobs[BAD]}
            assert all(r.status == dg.DagsterRunStatus.FAILURE for r in by_account[BAD])
            why = run_errors(instance, failed[0])
            assert "401" in why and "token" in why.lower(), why
            own_vars = f"{BAD.upper()}_VTEX_APP_KEY / {BAD.upper()}_VTEX_APP_TOKEN"
            assert own_vars in why, why  # the account's own variables, not VTEX_APP_KEY
            assert "wrong-token-for-this-key" not in why  # the secret is never printed

            # -- accounts side by side: the good accounts' runs of one tick overlap in time
            tick = common_ticks()[0]
            spans = {name: run_span(instance, succeeded_ticks(name)[tick].run_id) for name in GOOD}
            latest_start = max(s for s, _ in spans.values())
            earliest_end = min(e for _, e in spans.values())
            assert latest_start < earliest_end, (
                f"the good accounts' runs of tick {tick} ran one after the other: {spans}"
            )

            # -- one writer per DuckDB file: an account's steps in its pool never overlap, across runs
            for name in ACCOUNTS:
                windows = [w for r in by_account[name] for w in step_windows(instance, r)]
                in_pool = [w for w in windows if w.pool == f"duckdb_{name}"]
                assert {w.pool for w in windows} <= {f"duckdb_{name}"}, {w.step: w.pool for w in windows}
                if name in GOOD:
                    assert in_pool, f"{name}: no step in pool duckdb_{name}"
                overlaps = pool_overlaps(in_pool)
                assert not overlaps, f"{name}: steps writing one DuckDB file at once: {overlaps}"

        # -- each account's orders are in its own file
        for name in GOOD:
            with duckdb.connect(str(tmp_path / "data" / f"{name}.duckdb"), read_only=True) as conn:
                assert conn.execute("SELECT count(*) FROM raw_customers").fetchone()[0] == 100
        for name in ACCOUNTS:
            stack.stop(f"sim_{name}")
    except BaseException:
        print(stack.dump())
        print(f"===== postgres (last lines) =====\n{postgres_cluster.server_log()}")
        raise
