"""`vtex-pipeline`: verify credentials, run a complete pass, serve the simulators, run the demo. What is
checked before a run and reported by `verify` lives in readiness.py, `doctor`'s checks in doctor.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from vtex_pipeline.config import ConfigError, IntegrationConfig, load_integrations

console = Console(stderr=False, soft_wrap=True)  # log lines stay whole, greppable
err_console = Console(stderr=True, soft_wrap=True)

DEMO_APP_KEY = "vtexappkey-demo-LOCAL"
DEMO_APP_TOKEN = "demo-token-not-a-secret"
DEMO_ICOMM_KEY = "icomm-demo-key-not-a-secret"
DEMO_ICOMM_PROFILE = "demo-profile"


def _fail(message: str) -> None:
    # Validation errors span several lines; one line is what a log search or a cron mail shows best.
    parts = [p.strip() for p in message.splitlines() if p.strip() and "errors.pydantic.dev" not in p]
    message = ": ".join(parts)
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)  # one line, greppable
    sys.exit(2)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug lines of the VTEX client.")
def main(verbose: bool) -> None:
    """Sync a VTEX store into DuckDB and keep icomm contact profiles up to date."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


# --------------------------------------------------------------------------------------------- verify
@main.command()
@click.option(
    "--all", "all_", is_flag=True, help="Every configured integration (the default; explicit for scripts)."
)
@click.option("--integration", "only", metavar="NAME", help="Only the integration of this name.")
def verify(all_: bool, only: str | None) -> None:
    """Check the VTEX key's permissions and list the sales channels (the seed's "Verificar" step), per
    account; one summary line per account at the end, exit 1 when any failed."""
    if all_ and only:
        _fail("--all and --integration NAME exclude each other")
    try:
        integrations = load_integrations()
    except ConfigError as exc:
        _fail(str(exc))
    if only:
        integrations = [c for c in integrations if c.name == only]
        if not integrations:
            names = ", ".join(c.name for c in load_integrations())
            _fail(f"no integration named {only!r} (configured: {names})")
    from vtex_pipeline.readiness import verify_account

    results: list[tuple[str, str | None]] = []
    for cfg in integrations:
        try:  # one account's failure (unreachable, 401, a bug) never stops checking the others
            why = verify_account(cfg, console, err_console)
        except Exception as exc:  # noqa: BLE001 - reported on the account's line
            why = f"{type(exc).__name__}: {exc}"
        results.append((cfg.name, why))
    console.print("")
    for name, why in results:
        if why is None:
            console.print(f"{name}: OK", highlight=False)
        else:
            console.print(f"{name}: FAILED ({why})", highlight=False, markup=False)
    sys.exit(1 if any(why is not None for _, why in results) else 0)


# --------------------------------------------------------------------------------------------- doctor
@main.command()
def doctor() -> None:
    """Check the deployment: instance storage, pools and run monitoring, DuckDB files, disk, package data."""
    import dagster as dg

    from vtex_pipeline.doctor import run_checks
    from vtex_pipeline.instance import PLANNED_EVENTS_ENV, prepare_dagster_home

    try:
        integrations = load_integrations()
    except ConfigError as exc:
        _fail(str(exc))
    planned = os.environ.get(PLANNED_EVENTS_ENV)  # as given, before this command sets its own
    prepare_dagster_home()
    with dg.DagsterInstance.get() as instance:
        checks = run_checks(integrations, instance, planned)
    for c in checks:  # one line per check: greppable in a log or a cron mail
        mark = "[green]OK    [/]" if c.ok else "[red]FAILED[/]"
        console.print(f"{mark} {c.name}: {c.detail}", soft_wrap=True, highlight=False)
    sys.exit(0 if all(c.ok for c in checks) else 1)


# ------------------------------------------------------------------------------------------------ run
def _instance(stack: ExitStack):
    """The persistent instance (`DAGSTER_HOME`, else `<pipeline home>/.dagster_home`), so these runs
    show in the UI afterwards."""
    import dagster as dg

    from vtex_pipeline.instance import describe_storage, prepare_dagster_home

    home = prepare_dagster_home()
    instance = stack.enter_context(dg.DagsterInstance.get())
    console.print(f"Dagster instance: {home} ({describe_storage(instance)})")
    return instance


@contextmanager
def _progress_bar():
    """A rich progress bar fed by the sync passes' progress reports."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def listener(label: str, done: int, total: int | None, fraction: float | None) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=1000, count="")
        share = fraction if fraction is not None else (done / total if total else None)
        count = f"{done:,}" + (f"/{total:,}" if total else "")
        if share is None:
            progress.update(tasks[label], count=count)
        else:
            progress.update(tasks[label], completed=int(1000 * min(share, 1.0)), count=count)

    with progress:
        yield listener
        for task in tasks.values():  # the run is over: every bar ends full
            progress.update(task, completed=1000)


def run_pass(integrations: list[IntegrationConfig], as_of: date) -> int:
    from vtex_pipeline.assets.progress import add_listener, remove_listener
    from vtex_pipeline.runner import run_integration

    failures = 0
    with ExitStack() as stack:
        instance = _instance(stack)
        for cfg in integrations:
            console.print(f"[bold]{cfg.name}[/]: syncing up to the end of {as_of} ({cfg.timezone})")

            def say(msg: str, name: str = cfg.name) -> None:
                err_console.print(f"[yellow]{name}: {msg}[/]", soft_wrap=True)

            if console.is_terminal:  # a progress bar; Dagster's own lines only for warnings
                with _progress_bar() as listener:
                    add_listener(listener)
                    try:
                        outcome = run_integration(cfg, as_of, instance=instance, log_level="WARNING", say=say)
                    finally:
                        remove_listener(listener)
            else:  # plain progress lines (logs, CI)
                outcome = run_integration(cfg, as_of, instance=instance, log_level="INFO", say=say)
            if not outcome.success:
                failures += 1
                err_console.print(f"[bold red]{cfg.name}: failed:[/] {outcome.error}")
                continue
            if outcome.partition_range is None:
                console.print(f"{cfg.name}: raw data already synced up to {as_of}; nothing to fetch")
            else:
                a, b = outcome.partition_range
                since = outcome.metadata.get("raw_orders", {}).get("synced_from", "")
                console.print(
                    f"{cfg.name}: synced days {a} .. {b} (UTC; orders from {since}; run {outcome.run_id})"
                )
            profile = outcome.metadata.get("customer_profile", {})
            if profile:
                console.print(
                    f"{cfg.name}: profile as of {as_of}: {profile.get('dagster/row_count', 0):,} customers"
                )
            export = outcome.metadata.get("icomm_contacts")
            if export:
                console.print(
                    f"{cfg.name}: icomm: {export.get('sent', 0):,} contacts sent "
                    f"({export.get('new', 0):,} new, {export.get('changed', 0):,} changed, "
                    f"{export.get('unchanged', 0):,} unchanged, {export.get('skipped_no_email', 0):,} without e-mail)"
                )
            elif cfg.icomm is None:
                console.print(f"{cfg.name}: icomm export not configured (ICOMM_PROFILE_KEY unset)")
            console.print(f"{cfg.name}: DuckDB file {cfg.duckdb_path}")
            page = Path(cfg.duckdb_path).with_suffix(".dashboard.html")
            if page.exists():
                console.print(f"{cfg.name}: dashboard page {page}")
    return failures


@main.command()
@click.option(
    "--as-of",
    "as_of",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Day D (store time zone).",
)
def run(as_of: datetime) -> None:
    """Sync everything up to the end of day D (idempotent: a second run has nothing to do)."""
    try:
        integrations = load_integrations()
    except ConfigError as exc:
        _fail(str(exc))
    for cfg in integrations:
        if not cfg.vtex_base_url:
            _fail(f"{cfg.name}: VTEX_ACCOUNT (or VTEX_BASE_URL) is not set")
        needed = [cfg.app_key_env, cfg.app_token_env] + ([cfg.icomm.api_key_env] if cfg.icomm else [])
        for var in needed:
            if not os.environ.get(var):
                _fail(f"{cfg.name}: {var} is not set")
    from vtex_pipeline.readiness import preflight

    # An integration that cannot start is reported in one line and skipped, before anything of it is
    # written; the others still run.
    ready, failures = [], 0
    for cfg in integrations:
        problem = preflight(cfg)
        if problem:
            failures += 1
            err_console.print(
                f"[bold red]error:[/] {cfg.name}: failed before writing anything: {problem}", soft_wrap=True
            )
        else:
            ready.append(cfg)
    if not ready:
        sys.exit(2)
    from vtex_pipeline.slots import Interrupted

    try:
        failures += run_pass(ready, as_of.date())
    except Interrupted as exc:
        err_console.print(f"[bold red]stopped:[/] {exc}", soft_wrap=True)
        sys.exit(130)
    sys.exit(1 if failures else 0)


# ------------------------------------------------------------------------------------------- simulate
@main.group()
def simulate() -> None:
    """Serve a simulated VTEX store (or icomm) on 127.0.0.1."""


def _store(fixture: str | None, customers: int, orders: int, seed: int, drop_out: bool = False):
    from vtex_pipeline.simulators.generator import generate_store
    from vtex_pipeline.simulators.store import load_fixture

    if fixture:
        return load_fixture(Path(fixture))
    return load_fixture(
        generate_store(
            customers=customers, orders=orders, seed=seed, now=datetime.now(UTC), drop_out=drop_out
        )
    )


@simulate.command("vtex")
@click.option("--port", type=int, default=8081, show_default=True)
@click.option(
    "--fixture", type=click.Path(exists=True, dir_okay=False), help="Fixture store JSON (interfaces.md)."
)
@click.option("--customers", type=int, default=2000, show_default=True)
@click.option("--orders", type=int, default=6000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--app-key", default=DEMO_APP_KEY, show_default=True)
@click.option("--app-token", default=DEMO_APP_TOKEN, show_default=False, help="Token the simulator accepts.")
@click.option("--faults", default="", help="e.g. 'rate429=0.05,retry_after=1,rate503=0.02,seed=7'.")
@click.option("--feed-app-key", default=None, help="A second key, with the Orders Feed permission only.")
@click.option("--feed-app-token", default=None, help="Its token.")
def simulate_vtex(
    port: int,
    fixture: str | None,
    customers: int,
    orders: int,
    seed: int,
    app_key: str,
    app_token: str,
    faults: str,
    feed_app_key: str | None,
    feed_app_token: str | None,
) -> None:
    """Serve a VTEX store with the real API's paths, paging, limits and errors."""
    from vtex_pipeline.simulators.faults import FaultSpec
    from vtex_pipeline.simulators.vtex_server import serve

    store = _store(fixture, customers, orders, seed)
    console.print(
        f"VTEX simulator on http://127.0.0.1:{port} — {len(store.clients):,} customers, {len(store.orders):,} orders"
    )
    keys = {app_key: {"token": app_token, "permissions": ["*"]}}
    if feed_app_key:  # VTEX: one feed per key, so the feed path has a key of its own
        keys[feed_app_key] = {"token": feed_app_token or app_token, "permissions": ["oms.feed"]}
    serve(
        store,
        port=port,
        app_keys=keys,
        faults=FaultSpec.parse(faults) if faults else None,
    )


@simulate.command("icomm")
@click.option("--port", type=int, default=8082, show_default=True)
@click.option("--api-key", default=DEMO_ICOMM_KEY, show_default=True)
@click.option("--profile", "profiles", multiple=True, default=[DEMO_ICOMM_PROFILE], show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False), help="Append every accepted contact here (JSON lines)."
)
def simulate_icomm(port: int, api_key: str, profiles: tuple[str, ...], out: str | None) -> None:
    """Serve the icomm contacts API (SaveMultiContact, SaveContact, ListFull) on 127.0.0.1."""
    from vtex_pipeline.simulators.icomm_server import serve_icomm

    console.print(f"icomm simulator on http://127.0.0.1:{port} — profiles {', '.join(profiles)}")
    serve_icomm(port, api_key=api_key, profiles=set(profiles), out_path=out)


# ----------------------------------------------------------------------------------------------- demo
def _start_demo_store(stack: ExitStack, customers: int, orders: int, seed: int) -> str:
    from vtex_pipeline.simulators.server import ServerThread
    from vtex_pipeline.simulators.vtex_server import create_app

    # buyers who stop buying and spend at levels of their own: the predictions have something to fit
    store = _store(None, customers, orders, seed, drop_out=True)
    # The store's clock stands still for the demo, so VTEX's two-year horizon does not move while the
    # sync runs and the summary can compare counts exactly.
    started = datetime.now(UTC)
    app = create_app(
        store, app_keys={DEMO_APP_KEY: {"token": DEMO_APP_TOKEN, "permissions": ["*"]}}, now=lambda: started
    )
    server = stack.enter_context(ServerThread(app))
    return server.url


def _start_demo_icomm(stack: ExitStack, out_path: str) -> str:
    from vtex_pipeline.simulators.icomm_server import create_icomm_app
    from vtex_pipeline.simulators.server import ServerThread

    app = create_icomm_app(api_keys={DEMO_ICOMM_KEY}, profiles={DEMO_ICOMM_PROFILE}, out_path=out_path)
    return stack.enter_context(ServerThread(app)).url


def _demo_env(url: str, duckdb_path: str, icomm_url: str | None = None) -> dict[str, str]:
    icomm = {}
    if icomm_url:
        icomm = {
            "ICOMM_BASE_URL": icomm_url,
            "ICOMM_API_KEY": DEMO_ICOMM_KEY,
            "ICOMM_PROFILE_KEY": DEMO_ICOMM_PROFILE,
            "ICOMM_REQUESTS_PER_SECOND": os.environ.get("ICOMM_REQUESTS_PER_SECOND", "50"),
        }
    return {
        **icomm,
        "VTEX_ACCOUNT": "demostore",
        "VTEX_BASE_URL": url,
        "VTEX_APP_KEY": DEMO_APP_KEY,
        "VTEX_APP_TOKEN": DEMO_APP_TOKEN,
        "VTEX_REQUESTS_PER_SECOND": os.environ.get("VTEX_REQUESTS_PER_SECOND", "1000"),
        "VTEX_CONCURRENCY": os.environ.get("VTEX_CONCURRENCY", "8"),
        "VTEX_PIPELINE_DUCKDB": duckdb_path,
    }


@main.command()
@click.option("--customers", type=int, default=2000, show_default=True)
@click.option("--orders", type=int, default=6000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--duckdb",
    "duckdb_path",
    default="data/demo.duckdb",
    show_default=True,
    help="Relative to VTEX_PIPELINE_HOME.",
)
@click.option("--fresh/--keep", default=True, show_default=True, help="Start from an empty DuckDB file.")
def demo(customers: int, orders: int, seed: int, duckdb_path: str, fresh: bool) -> None:
    """Serve a generated store on a free port, run the pipeline end to end, print what it loaded."""
    from vtex_pipeline.config import integration_from_env
    from vtex_pipeline.paths import resolve_path
    from vtex_pipeline.summary import print_summary

    duckdb_path = str(resolve_path(duckdb_path))
    contacts_out = str(Path(duckdb_path).with_suffix(".icomm-contacts.jsonl"))
    if fresh:
        for path in (duckdb_path, duckdb_path + ".wal", contacts_out):
            Path(path).unlink(missing_ok=True)
    with ExitStack() as stack:
        with console.status(f"generating a store of {customers:,} customers and {orders:,} orders"):
            url = _start_demo_store(stack, customers, orders, seed)
        Path(contacts_out).parent.mkdir(parents=True, exist_ok=True)
        icomm_url = _start_demo_icomm(stack, contacts_out)
        env = _demo_env(url, duckdb_path, icomm_url)
        os.environ.update(env)
        cfg = integration_from_env(os.environ)
        console.print(f"VTEX simulator at {url}; icomm simulator at {icomm_url}; DuckDB file {duckdb_path}")
        failures = run_pass([cfg], datetime.now(UTC).date())
        print_summary(console, cfg, store_url=url, icomm_url=icomm_url)
        console.print(f"contacts received by the icomm simulator: {contacts_out}")
    sys.exit(1 if failures else 0)


@main.command()
@click.option("--customers", type=int, default=2000, show_default=True)
@click.option("--orders", type=int, default=6000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
def dev(customers: int, orders: int, seed: int) -> None:
    """`dagster dev` against the embedded demo store (when no VTEX account is configured)."""
    from vtex_pipeline.instance import prepare_dagster_home
    from vtex_pipeline.paths import pipeline_home, resolve_path

    with ExitStack() as stack:
        home = prepare_dagster_home()
        env = dict(os.environ)
        if not env.get("VTEX_ACCOUNT") and not env.get("VTEX_BASE_URL"):
            url = _start_demo_store(stack, customers, orders, seed)
            data = pipeline_home() / "data"
            data.mkdir(parents=True, exist_ok=True)
            icomm_url = _start_demo_icomm(stack, str(data / "demo.icomm-contacts.jsonl"))
            # the demo's DuckDB file: what `vtex-pipeline demo` loaded is what the UI shows
            duck = str(resolve_path(env.get("VTEX_PIPELINE_DUCKDB") or "data/demo.duckdb"))
            env.update(_demo_env(url, duck, icomm_url))
            console.print(f"embedded demo store at {url}, icomm simulator at {icomm_url}, DuckDB file {duck}")
        console.print(f"Dagster instance: {home}")
        with suppress(KeyboardInterrupt):
            subprocess.run(
                [sys.executable, "-m", "dagster", "dev", "-m", "vtex_pipeline.definitions"],
                env=env,
                check=False,
            )


if __name__ == "__main__":
    main()
