"""The deployment of deploy/ built and run, not only read: the image of deploy/Dockerfile (podman, as
../shared/reference/containers.md shows) runs the code server, dagster-daemon and dagster-webserver as three
containers on the host network against a throwaway PostgreSQL 15, with the VTEX and icomm simulators on the
host. The schedule and the sensor are switched on inside the daemon container, as deploy/README.md says.

What it proves, timed (printed at the end, `-s` shows it):
- the image builds from the checkout (base image by debootstrap, cached; the wheel built inside);
- schedule `vtex_raw_sync_every_4h` (every minute here) runs a sync that succeeds, from the code container;
- sensor `vtex_profile_after_sync` (every 15 s) requests the profile of every complete day; they succeed;
- the icomm simulator holds exactly the deliverable contacts of customer_profile, each with the values the
  export formats from its row (the DuckDB file written by the code container, read afterwards);
- the webserver answers GraphQL and lists those runs;
- `podman stop` ends each container within seconds (SIGTERM honoured), not after podman's 10 s and a SIGKILL;
  the code container's even with a sync in progress, and that run ends FAILED (interrupted), not STARTED.

Marked `container` (and `daemon`, `postgres`): skips without podman, runc and debootstrap, unless CI is set
(`.ci/run` installs them). `make deploy-test` runs it alone.

The fault rows (the code container stopped, or killed, and started again 60 s into the first sync) are a
separate test, run only with VTEX_PIPELINE_CONTAINER_FAULTS=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from vtex_pipeline_tests.deploy import containers as ct
from vtex_pipeline_tests.deploy.daemon_stack import (
    BIN,
    ROOT,
    Processes,
    free_port,
    port_open,
    run_errors,
    wait,
    write_instance,
)
from vtex_pipeline_tests.postgres import running_in_ci

SCHEDULE = "vtex_raw_sync_every_4h"
SENSOR = "vtex_profile_after_sync"
RAW_JOB = "vtex_raw_sync"
PROFILE_JOB = "vtex_profile_export"
ICOMM_PROFILE = "demo-profile"
ICOMM_KEY = "icomm-container-key-not-a-secret"
VTEX_KEY, VTEX_TOKEN = "vtexappkey-demo-LOCAL", "container-token-not-a-secret"
IMAGE_HOME = "/opt/dagster/dagster_home"  # DAGSTER_HOME in the image
WORKSPACE = f"{IMAGE_HOME}/workspace.yaml"
CODE_PORT = 4000  # deploy/workspace.yaml's port
STOP_LIMIT_SECONDS = 5.0  # podman's grace period is 10 s: a SIGTERM honoured ends well before
# a code server with a run in progress: the worker records the interruption, then the servers shut down
# (2-6 s measured; without dumb-init 10 s and a SIGKILL)
MID_RUN_STOP_LIMIT_SECONDS = 8.0
FAULTS_ENV = "VTEX_PIPELINE_CONTAINER_FAULTS"

pytestmark = [pytest.mark.container, pytest.mark.daemon, pytest.mark.postgres, pytest.mark.timeout(2400)]


def _require_tools() -> None:
    missing = ct.missing_tools()
    if missing:
        why = f"{', '.join(missing)} not installed (apt-get install -y podman runc debootstrap)"
        if running_in_ci():
            pytest.fail(f"CI is set and {why}", pytrace=False)
        pytest.skip(why)


@dataclass
class Chain:
    """The running deployment: containers, host processes, and where to read what they wrote."""

    tmp: Path
    containers: ct.Containers
    procs: Processes
    home: Path  # a DAGSTER_HOME on the host reading the same PostgreSQL instance
    data: Path  # bind-mounted at /data in the containers
    contacts: Path  # the icomm simulator's request log (JSON lines)
    icomm_url: str
    web_port: int
    start_date: date  # VTEX_PIPELINE_START_DATE
    today: date
    started: float  # monotonic clock when the code container was started
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int | str] = field(default_factory=dict)

    def report(self) -> str:
        times = ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        return f"container chain: {times}" + (f"; {counts}" if counts else "")


@contextlib.contextmanager
def container_chain(
    postgres_cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    vtex_faults: str = "",
    **extra_env: str,
) -> Iterator[Chain]:
    """Images built, simulators and the three containers started; everything removed afterwards.
    `vtex_faults` goes to the VTEX simulator (`--faults`), `extra_env` into the containers' env file."""
    _require_tools()
    logs = tmp_path / "logs"
    logs.mkdir()
    t0 = time.monotonic()
    images = ct.build_images(logs)
    timings = {"base image": images.base_seconds, "image build": images.build_seconds}

    today = datetime.now(UTC).date()
    start = today - timedelta(days=3)
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 1000, 1000)  # the image's user `dagster` writes the DuckDB file there
    contacts = tmp_path / "contacts.jsonl"
    vtex_port, icomm_port, web_port = free_port(), free_port(), free_port()
    # deploy/workspace.yaml names code:4000; another port (and a workspace saying so) when 4000 is taken
    code_port = CODE_PORT if not port_open(CODE_PORT) else free_port()
    mounts = [f"{data}:/data"]
    if code_port != CODE_PORT:
        ws = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text(encoding="utf-8"))
        ws["load_from"][0]["grpc_server"]["port"] = code_port
        (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(ws), encoding="utf-8")
        mounts.append(f"{tmp_path / 'workspace.yaml'}:{WORKSPACE}:ro")

    pg_env = postgres_cluster.env(postgres_cluster.create_database(f"containers_{uuid.uuid4().hex[:8]}"))
    env = {
        **pg_env,
        "VTEX_ACCOUNT": "demostore",
        "VTEX_BASE_URL": f"http://127.0.0.1:{vtex_port}",
        "VTEX_APP_KEY": VTEX_KEY,
        "VTEX_APP_TOKEN": VTEX_TOKEN,
        "VTEX_REQUESTS_PER_SECOND": "200",
        "ICOMM_BASE_URL": f"http://127.0.0.1:{icomm_port}",
        "ICOMM_API_KEY": ICOMM_KEY,
        "ICOMM_PROFILE_KEY": ICOMM_PROFILE,
        "ICOMM_REQUESTS_PER_SECOND": "50",
        "VTEX_PIPELINE_START_DATE": start.isoformat(),
        "VTEX_PIPELINE_SYNC_CRON": "* * * * *",
        "VTEX_PIPELINE_SENSOR_INTERVAL_SECONDS": "15",
        **extra_env,
    }
    env_file = ct.write_env_file(tmp_path / "deploy.env", env)
    for k, v in pg_env.items():  # this process reads the same instance
        monkeypatch.setenv(k, v)
    home = tmp_path / "dagster_home"
    write_instance(home, max_concurrent_runs=4)

    sim_env = {k: v for k, v in os.environ.items() if not k.startswith(("VTEX_", "ICOMM_", "DAGSTER_"))}
    sim_env["VTEX_TEST_MARKER"] = str(tmp_path)
    procs = Processes(logs, marker=f"VTEX_TEST_MARKER={tmp_path}")
    suffix = uuid.uuid4().hex[:8]
    cont = ct.Containers(images.image, env_file, logs, suffix, mounts=mounts)
    chain = Chain(tmp_path, cont, procs, home, data, contacts, f"http://127.0.0.1:{icomm_port}", web_port,
                  start, today, 0.0, timings)  # fmt: skip
    cli = str(BIN / "vtex-pipeline")
    try:
        procs.start(
            "vtex_simulator",
            [cli, "simulate", "vtex", "--port", str(vtex_port), "--customers", "300", "--orders", "900",
             "--seed", "7", "--app-key", VTEX_KEY, "--app-token", VTEX_TOKEN,
             *(["--faults", vtex_faults] if vtex_faults else [])],
            sim_env, tmp_path,
        )  # fmt: skip
        procs.start(
            "icomm_simulator",
            [cli, "simulate", "icomm", "--port", str(icomm_port), "--api-key", ICOMM_KEY,
             "--profile", ICOMM_PROFILE, "--out", str(contacts)],
            sim_env, tmp_path,
        )  # fmt: skip
        for port in (vtex_port, icomm_port):
            wait(f"simulator on port {port}", lambda p=port: procs.check_alive() or port_open(p), 60)

        started = chain.started = time.monotonic()
        code_cmd = None
        if code_port != CODE_PORT:
            code_cmd = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(code_port),
                        "-m", "vtex_pipeline.definitions", "--location-name", "vtex_pipeline"]  # fmt: skip
        cont.run("code", code_cmd)  # the image's CMD: the code location's gRPC server
        health = ["dagster", "api", "grpc-health-check", "-p", str(code_port)]  # compose's healthcheck
        wait("code container healthy", lambda: cont.check_running() or cont.exec("code", health, 60) is not None,
             300, 2)  # fmt: skip
        timings["code server healthy"] = time.monotonic() - started
        cont.run("daemon", ["dagster-daemon", "run", "-w", WORKSPACE])
        cont.run("web", ["dagster-webserver", "-h", "127.0.0.1", "-p", str(web_port), "-w", WORKSPACE])
        # switched on inside the daemon container, as deploy/README.md does with `compose exec daemon`
        cont.exec("daemon", ["dagster", "schedule", "start", SCHEDULE, "-w", WORKSPACE])
        cont.exec("daemon", ["dagster", "sensor", "start", SENSOR, "-w", WORKSPACE])
        timings["containers up"] = time.monotonic() - started
        yield chain
    except BaseException:
        with contextlib.suppress(Exception):
            print(cont.dump())
            print(procs.dump())
            print(f"===== postgres (last lines) =====\n{postgres_cluster.server_log()}")
        raise
    finally:
        cont.remove_all()
        procs.stop_all()
        timings["total"] = time.monotonic() - t0
        with capsys.disabled():  # the timings in CI's log too, not only with -s
            print(f"\n{chain.report()}")


def _days(first, last) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _graphql(port: int, query: str) -> dict:
    resp = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30)
    resp.raise_for_status()
    body = resp.json()
    assert "errors" not in body, body
    return body["data"]


def _expected_contacts(duckdb_path: Path) -> dict[str, dict[str, str]]:
    """Per deliverable e-mail of customer_profile, the custom fields the export formats from its row (one
    contact per e-mail: the latest buyer, then the smallest customer id, as the export plans it)."""
    import duckdb

    from vtex_pipeline.icomm.delta import deliverable_sql
    from vtex_pipeline.icomm.fields import contact_payload, load_mapping

    mapping = load_mapping()
    email = f"lower(trim(CAST({mapping.email_column} AS VARCHAR)))"
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        cur = conn.execute(
            f"SELECT * FROM customer_profile WHERE {deliverable_sql(email)} "
            "ORDER BY last_purchase_date DESC NULLS LAST, CAST(customer_id AS VARCHAR)"
        )
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        payload = contact_payload(row, mapping)
        out.setdefault(payload["Email"], {f["Key"]: f["Value"] for f in payload["CustomFields"]})
    return out


def _sim_contacts(url: str) -> dict[str, dict[str, str]]:
    rows = requests.get(f"{url}/_sim/contacts", params={"profile": ICOMM_PROFILE}, timeout=30).json()
    return {r["Email"]: {f["Key"]: f["Value"] for f in r["CustomFields"]} for r in rows}


def test_image_runs_schedule_sensor_and_export_in_containers(
    postgres_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dagster as dg
    from dagster._core.storage.tags import PARTITION_NAME_TAG, SCHEDULE_NAME_TAG, SENSOR_NAME_TAG

    with container_chain(postgres_cluster, tmp_path, monkeypatch, capsys) as chain:
        cont, t = chain.containers, chain.timings
        expected_days = _days(chain.start_date, chain.today - timedelta(days=1))
        with dg.DagsterInstance.from_config(str(chain.home)) as instance:

            def runs(job: str) -> list:
                return list(instance.get_runs(filters=dg.RunsFilter(job_name=job)))

            def failed() -> None:
                bad = [
                    r for r in runs(RAW_JOB) + runs(PROFILE_JOB)
                    if r.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
                ]  # fmt: skip
                if bad:
                    raise AssertionError("\n\n".join(run_errors(instance, r) for r in bad))

            def first_sync() -> bool:
                cont.check_running()
                failed()
                return any(
                    r.tags.get(SCHEDULE_NAME_TAG) == SCHEDULE and r.status == dg.DagsterRunStatus.SUCCESS
                    for r in runs(RAW_JOB)
                )

            def profiles_done() -> bool:
                cont.check_running()
                failed()
                done = {
                    r.tags.get(PARTITION_NAME_TAG)
                    for r in runs(PROFILE_JOB)
                    if r.tags.get(SENSOR_NAME_TAG) == SENSOR and r.status == dg.DagsterRunStatus.SUCCESS
                }
                return set(expected_days) <= done

            wait("a scheduled sync succeeding in the code container", first_sync, 600, 3)
            t["first scheduled sync"] = time.monotonic() - chain.started
            wait("the sensor's profile runs for every complete day", profiles_done, 600, 3)
            t["profiles and contacts"] = time.monotonic() - chain.started

            # the UI's API, from the webserver container, sees the same runs
            data = _graphql(
                chain.web_port,
                "{ runsOrError { ... on Runs { results { runId jobName status } } } version }",
            )
            by_job = {}
            for r in data["runsOrError"]["results"]:
                by_job.setdefault(r["jobName"], []).append(r["status"])
            assert "SUCCESS" in by_job.get(RAW_JOB, []), by_job
            assert by_job.get(PROFILE_JOB, []).count("SUCCESS") >= len(expected_days), by_job

            # off again, and what was requested already drains before the containers stop
            cont.exec("daemon", ["dagster", "schedule", "stop", SCHEDULE, "-w", WORKSPACE])
            cont.exec("daemon", ["dagster", "sensor", "stop", SENSOR, "-w", WORKSPACE])
            in_flight = [
                dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
            ]  # fmt: skip
            wait("runs in flight to finish",
                 lambda: not instance.get_runs(filters=dg.RunsFilter(statuses=in_flight)), 300, 3)  # fmt: skip
            failed()
            profile_runs = runs(PROFILE_JOB)
            assert sorted(r.tags.get(PARTITION_NAME_TAG) for r in profile_runs) == expected_days, (
                "one profile run per complete day"
            )

            # `podman stop` of the code container with a sync in progress (the schedule on again until one
            # is caught running): SIGTERM reaches the run worker through dumb-init, the run ends FAILED
            # (interrupted) instead of staying STARTED, and the container is gone well before podman's
            # 10 s grace period ends in a SIGKILL (exit code 137)
            known = {r.run_id for r in runs(RAW_JOB)}
            cont.exec("daemon", ["dagster", "schedule", "start", SCHEDULE, "-w", WORKSPACE])

            def sync_running():
                fresh = [r for r in runs(RAW_JOB) if r.run_id not in known]
                return next((r for r in fresh if r.status == dg.DagsterRunStatus.STARTED), None)

            caught = wait("a scheduled sync in progress", sync_running, 200, 0.2)
            print("code container processes:\n" + cont.top("code"))
            seconds = t["stop code mid-run"] = cont.stop("code")
            code = cont.exit_code("code")
            # (the schedule stays on: switching it off needs the code server; the daemon stops next)
            assert seconds < MID_RUN_STOP_LIMIT_SECONDS and code != 137, (
                f"podman stop of code mid-run: {seconds:.1f} s, exit code {code} (137: SIGKILL after 10 s)"
            )
            status = instance.get_run_by_id(caught.run_id).status
            assert status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS), (
                f"the sync in progress when code stopped is {status.value}: nobody ended it"
            )
            chain.counts["sync stopped mid-run"] = status.value

        # the daemon and the webserver end on SIGTERM too
        for name in ("web", "daemon"):
            seconds = cont.stop(name)
            t[f"stop {name}"] = seconds
            code = cont.exit_code(name)
            assert seconds < STOP_LIMIT_SECONDS and code != 137, (
                f"podman stop {name}: {seconds:.1f} s, exit code {code} (137: SIGKILL after the grace period)"
            )
        final = _sim_contacts(chain.icomm_url)  # what icomm holds, every writer stopped
        chain.procs.stop("icomm_simulator")
        chain.procs.stop("vtex_simulator")

        # icomm holds exactly the deliverable contacts of the profile, with the values of their rows
        sent = [json.loads(line) for line in chain.contacts.read_text(encoding="utf-8").splitlines() if line]
        assert sent, "the icomm simulator received no contact"
        assert {line["profile_key"] for line in sent} == {ICOMM_PROFILE}
        expected = _expected_contacts(chain.data / "vtex.duckdb")
        assert len(final) == len(expected) > 0, f"{len(final)} contacts in icomm, {len(expected)} deliverable"
        assert set(final) == set(expected)
        wrong = {e: (final[e], v) for e, v in expected.items() if final[e] != v}
        assert not wrong, (
            f"{len(wrong)} contacts differ from their profile row, e.g. {next(iter(wrong.items()))}"
        )
        chain.counts.update(contacts=len(final), contacts_received=len(sent), profile_runs=len(profile_runs))


@pytest.mark.skipif(
    os.environ.get(FAULTS_ENV) != "1",
    reason=f"fault rows, 7 to 8 minutes each (docs/operations.md has their figures): set {FAULTS_ENV}=1 to run them",
)
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_code_container_restarted_mid_sync(
    postgres_cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    """The code container stopped and started again 60 s into the first scheduled sync: `stop` is what
    `docker compose up -d` does to a changed `code` (SIGTERM, SIGKILL after 10 s), `kill` what an OOM kill or
    a host crash does (SIGKILL, nobody told). The run must end FAILED within 5 minutes, and a later tick must
    sync again."""
    import dagster as dg
    from dagster._core.storage.tags import SCHEDULE_NAME_TAG

    fault_at, detect_limit, recover_limit = 60.0, 300.0, 900.0
    # a slow store API (every answer 20 s late), so the first sync still runs when the code container goes
    with container_chain(postgres_cluster, tmp_path, monkeypatch, capsys, vtex_faults="latency=20") as chain:
        cont, t = chain.containers, chain.timings
        row: dict[str, object] = {
            "injected": f"podman {how} + start of the code container {fault_at:.0f} s into the first sync"
        }
        try:
            with dg.DagsterInstance.from_config(str(chain.home)) as instance:

                def scheduled() -> list:
                    rs = instance.get_runs(
                        filters=dg.RunsFilter(job_name=RAW_JOB, tags={SCHEDULE_NAME_TAG: SCHEDULE})
                    )
                    return sorted(rs, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)

                def first_started():
                    cont.check_running()
                    rs = scheduled()
                    if rs and rs[0].status != dg.DagsterRunStatus.STARTED:
                        assert rs[0].status in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
                                                dg.DagsterRunStatus.NOT_STARTED), (
                            f"first sync {rs[0].status.value} before the fault: too fast for this row"
                        )  # fmt: skip
                        return None
                    return rs[0] if rs else None

                run = wait("the first scheduled sync started", first_started, 600, 1)
                run_start = instance.get_run_record_by_id(run.run_id).start_time or time.time()
                time.sleep(max(0.0, run_start + fault_at - time.time()))
                assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED, (
                    "the sync ended before the fault"
                )
                print("code container processes at the fault:\n" + cont.top("code"))
                if how == "stop":
                    row["stop seconds"] = t["fault: stop code"] = cont.stop("code")
                else:
                    ct.podman("kill", cont.full("code"), timeout=60)
                    wait("code container gone", lambda: not cont.running("code"), 60, 0.5)
                row["code exit code"] = cont.exit_code("code")
                killed_at = time.time()
                ct.podman("start", cont.full("code"), timeout=120)

                def ended() -> bool:
                    return instance.get_run_by_id(run.run_id).status in (
                        dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.SUCCESS
                    )  # fmt: skip

                try:
                    wait("the interrupted sync marked as ended", ended, detect_limit, 5)
                except TimeoutError:
                    row["user sees"] = (
                        f"run {instance.get_run_by_id(run.run_id).status.value} after {detect_limit:.0f} s"
                    )
                    row["daemon says"] = [
                        re.sub(r"\x1b\[[0-9;]*m", "", line)
                        for line in cont.logs("daemon", 400).splitlines()
                        if "in progress" in line
                    ][-1:]
                    raise
                status = instance.get_run_by_id(run.run_id).status
                row["user sees"] = f"run {status.value}"
                row["seconds to detect"] = t["fault: detected"] = time.time() - killed_at

                def synced_again() -> bool:
                    cont.check_running()
                    return any(
                        r.status == dg.DagsterRunStatus.SUCCESS and r.run_id != run.run_id
                        for r in scheduled()
                    )

                wait("a later scheduled sync succeeding", synced_again, recover_limit, 5)
                row["seconds to recover"] = t["fault: recovered"] = time.time() - killed_at
        finally:
            with capsys.disabled():
                print("\nfault row: " + json.dumps(row, default=str))
