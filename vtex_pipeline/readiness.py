"""Is an account ready to run: `preflight` before `vtex-pipeline run` writes anything, `verify_account` for
the report of `vtex-pipeline verify`, and the probes they share with `doctor` (the DuckDB file, the sales
channels), so that each question is asked in one place. No Dagster: VTEX and icomm are asked through their
own clients."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.feed.settings import verify_feed
from vtex_pipeline.icomm.client import verify_icomm
from vtex_pipeline.vtex.errors import VtexAuthError, VtexError, VtexRequestFailed
from vtex_pipeline.vtex.http import VtexClient
from vtex_pipeline.vtex.verify import probe_settings, verify_vtex


def first_line(exc: BaseException) -> str:
    """The error's first line, else its type: a problem is reported in one greppable line."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# ------------------------------------------------------------------------------------------ the probes
@dataclass(frozen=True)
class DuckDBFileProbe:
    """What writing an account's DuckDB file would meet; each caller words it its own way."""

    path: Path
    folder: Path | None  # the nearest existing folder when the file is not there yet, else None
    open_error: duckdb.Error | None = None  # the file is there but does not open (held, damaged)
    create_error: OSError | None = None  # the file is not there and cannot be created in `folder`

    @property
    def exists(self) -> bool:
        return self.folder is None


def probe_duckdb_file(path: str | Path) -> DuckDBFileProbe:
    """Open the file (another process holding it fails here), or create and drop a temporary file in the
    nearest existing folder: a real probe, since os.access says yes to root even where nothing can be
    created (/proc)."""
    path = Path(path)
    if path.exists():
        try:
            duckdb.connect(str(path)).close()
        except duckdb.Error as exc:
            return DuckDBFileProbe(path, None, open_error=exc)
        return DuckDBFileProbe(path, None)
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    try:
        if not folder.is_dir():  # a file where the folder should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        return DuckDBFileProbe(path, folder, create_error=exc)
    return DuckDBFileProbe(path, folder)


def unknown_sales_channels(cfg: IntegrationConfig, known: Iterable[str]) -> list[str]:
    """The ids of VTEX_SALES_CHANNELS the account does not have, in their configured order: a typo there
    would quietly keep no orders of that channel."""
    have = set(known)
    return [c for c in cfg.sales_channels or [] if c not in have]


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """Retry warnings would bury the one line that says what is wrong."""
    log = logging.getLogger("vtex_pipeline")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


# ------------------------------------------------------------------------------------------ preflight
def preflight(cfg: IntegrationConfig) -> str | None:
    """Why `run` cannot start, found before anything is written (no DuckDB file, no Dagster run):
    a locked or unwritable DuckDB file, VTEX unreachable or refusing the key, an unknown sales channel,
    an icomm key or profile icomm refuses. None when the run can start."""
    probe = probe_duckdb_file(cfg.duckdb_path)
    if probe.open_error is not None:
        return f"cannot open DuckDB file {probe.path}: {first_line(probe.open_error)}"
    if probe.create_error is not None:
        return f"cannot create DuckDB file {probe.path}: {probe.folder} is not a writable directory"
    if probe.exists and not os.access(probe.path, os.W_OK):
        return f"DuckDB file {probe.path} is not writable"
    settings = probe_settings(cfg, timeout=min(cfg.request_timeout, 30.0))
    try:
        with _quiet_logs(), VtexClient(settings) as client:
            channels = client.get_json("/api/catalog_system/pvt/saleschannel/list", call="preflight")
    except VtexAuthError:
        return (
            f"VTEX account {cfg.account or cfg.vtex_base_url} rejected the app key or token (401): "
            f"check {cfg.app_key_env} / {cfg.app_token_env}"
        )
    except VtexRequestFailed as exc:
        why = f"HTTP {exc.last_status}" if exc.last_status else (exc.last_error or "").split(":")[0]
        return f"cannot reach VTEX at {cfg.vtex_base_url} (wrong VTEX_ACCOUNT?): {why}"
    except VtexError as exc:
        return f"VTEX at {cfg.vtex_base_url} refused the check: {first_line(exc)}"
    known = {str(c.get("Id")) for c in channels or [] if isinstance(c, dict)}
    unknown = unknown_sales_channels(cfg, known)
    if unknown:
        return (
            f"unknown sales channel id(s) in VTEX_SALES_CHANNELS: {', '.join(unknown)} "
            f"(the account has {', '.join(sorted(known)) or 'none'})"
        )
    if cfg.icomm is not None:
        with _quiet_logs():
            ok, message = verify_icomm(cfg.icomm, os.environ.get(cfg.icomm.api_key_env))
        if not ok:
            return message
    return None


# ------------------------------------------------------------------------------------- verify report
def verify_account(cfg: IntegrationConfig, out: Console, err: Console) -> str | None:
    """Print one account's permissions, sales channels, feed key and icomm check (to `out`, problems to
    `err`); None when fine, else why not (one line, no secret)."""
    if not cfg.vtex_base_url:
        return "account not set: VTEX_ACCOUNT / account (or VTEX_BASE_URL / base_url)"
    key, token = os.environ.get(cfg.app_key_env), os.environ.get(cfg.app_token_env)
    if not key or not token:
        return f"{cfg.app_key_env} and {cfg.app_token_env} must be set"
    settings = probe_settings(cfg, timeout=cfg.request_timeout)
    with VtexClient(settings) as client:
        report = verify_vtex(client)
    table = Table(title=f"VTEX permissions — {cfg.name} ({report.base_url})")
    table.add_column("permission")
    table.add_column("status")
    table.add_column("what to grant when missing")
    if report.auth_error:
        out.print(table)
        err.print(f"[bold red]not connected:[/] {report.auth_error}")
        return f"401: VTEX rejected the key or token; check {cfg.app_key_env} / {cfg.app_token_env}"
    if report.checks and all(c.status is None for c in report.checks):  # no answer at all
        return f"unreachable: {report.base_url} ({report.checks[0].detail})"
    for check in report.checks:
        status = "[green]OK[/]" if check.ok else f"[red]missing[/] ({check.status})"
        table.add_row(check.permission.label, status, "" if check.ok else check.grant)
    out.print(table)
    channels = Table(title="sales channels")
    channels.add_column("id")
    channels.add_column("name")
    for sc_id, name in report.sales_channels:
        channels.add_row(str(sc_id), name)
    out.print(channels)
    problems = []
    if not report.ok:
        missing = [c.permission.label for c in report.checks if not c.ok]
        problems.append("missing permission(s): " + ", ".join(missing) if missing else "incomplete check")
    unknown = unknown_sales_channels(cfg, (sc_id for sc_id, _ in report.sales_channels))
    if unknown and report.sales_channels:  # no list, nothing to compare (unreadable: a missing permission)
        err.print(f"[red]unknown sales channel id(s) in VTEX_SALES_CHANNELS:[/] {', '.join(unknown)}")
        problems.append(f"unknown sales channel id(s) {', '.join(unknown)}")
    feed = _verify_feed(cfg, out, err)
    if feed:
        problems.append(feed)
    if not _verify_icomm(cfg, out):
        problems.append("icomm key or profile rejected")
    return "; ".join(problems) or None


def _verify_feed(cfg: IntegrationConfig, out: Console, err: Console) -> str | None:
    """The Orders Feed key, when the feed path is on: a line, and why it fails (None when fine or off)."""
    check = verify_feed(cfg)
    if check is None:
        return None
    if check.ok:
        out.print(f"[green]Orders Feed key ({cfg.feed_app_key_env}):[/] {check.message}")
        return None
    err.print(f"[red]Orders Feed key ({cfg.feed_app_key_env}):[/] {check.message}")
    return f"Orders Feed key: {check.message}"


def _verify_icomm(cfg: IntegrationConfig, out: Console) -> bool:
    """The icomm key and profile, with a read-only probe; True when fine or not configured."""
    if cfg.icomm is None:
        out.print(f"icomm — {cfg.name}: not configured (set ICOMM_API_KEY and ICOMM_PROFILE_KEY to export)")
        return True
    ok, message = verify_icomm(cfg.icomm, os.environ.get(cfg.icomm.api_key_env))
    mark = "[green]OK[/]" if ok else "[red]failed[/]"
    out.print(f"icomm — {cfg.name} (profile {cfg.icomm.profile_key}): {mark} {message}")
    return ok
