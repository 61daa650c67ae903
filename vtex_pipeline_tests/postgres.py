"""A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` into a temp folder, `pg_ctl start` on
a free port on 127.0.0.1, one database, and everything stopped and deleted afterwards.

    with throwaway_postgres() as pg:            # plain helper (benchmarks, scripts)
        pg.dagster_storage()                    # {"postgres": {"postgres_db": {...}}} for dagster.yaml
        pg.create_database("other")             # more databases in the same cluster

    def test_x(postgres_cluster): ...           # session-scoped pytest fixture (see deploy/conftest.py)

PostgreSQL refuses to run as root: as root every server binary runs as the `postgres` user
(`runuser -u postgres --`) in a folder that user owns; any other user runs them directly. The
binaries are found on PATH or in Debian's /usr/lib/postgresql/<version>/bin. Without them the fixture
skips, saying why, unless the environment variable CI is set: then it fails (CI must run it; `.ci/run`
installs Debian's `postgresql`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # the plain helper also serves the benchmarks, which need no pytest
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

HOST = "127.0.0.1"
SUPERUSER = "postgres"
DEFAULT_DB = "dagster"
SERVER_OPTIONS = (
    # A test cluster: durability off (nothing here outlives the session), room for Dagster's daemon,
    # code server and run workers, each opening its own connections.
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed (or cannot be run here); the message says why."""


def find_pg_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: PATH first, then the newest Debian version."""
    on_path = shutil.which("initdb")
    if on_path:
        folder = Path(on_path).resolve().parent
        if (folder / "pg_ctl").exists() and (folder / "postgres").exists():
            return folder
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        folder = Path(initdb).parent
        version = folder.parent.name
        if (folder / "pg_ctl").exists() and (folder / "postgres").exists():
            candidates.append((int(version) if version.isdigit() else 0, folder))
    return max(candidates)[1] if candidates else None


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_server_user(cmd: list[str]) -> list[str]:
    """`cmd` as the user PostgreSQL runs as: `postgres` when we are root, else ourselves."""
    if not _is_root():
        return cmd
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    if not Path(runuser).exists():
        raise PostgresUnavailable("running as root and `runuser` (util-linux) is missing")
    return [runuser, "-u", SUPERUSER, "--", *cmd]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@dataclass
class PostgresCluster:
    """A running cluster; trust authentication on 127.0.0.1, superuser `postgres`, no password."""

    bin_dir: Path
    base_dir: Path
    port: int
    dbname: str = DEFAULT_DB
    host: str = HOST
    user: str = SUPERUSER
    password: str = ""
    databases: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def params(self, dbname: str | None = None) -> dict[str, Any]:
        """psycopg2 / libpq keyword arguments."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname or self.dbname,
        }

    def url(self, dbname: str | None = None) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{dbname or self.dbname}"

    def env(self, dbname: str | None = None) -> dict[str, str]:
        """The variables `deploy/dagster.yaml` reads its storage settings from."""
        return {
            "DAGSTER_POSTGRES_HOST": self.host,
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_USER": self.user,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_DB": dbname or self.dbname,
        }

    def dagster_storage(self, dbname: str | None = None) -> dict[str, Any]:
        """The `storage:` section of a dagster.yaml pointing at this cluster (literal values)."""
        return {
            "postgres": {
                "postgres_db": {
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.user,
                    "password": self.password,
                    "db_name": dbname or self.dbname,
                    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; dagster-postgres ships psycopg2
                    "scheme": "postgresql+psycopg2",
                }
            }
        }

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (a fresh, empty one per caller keeps tests independent)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and _ only")
        psql = [str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host,
                "-p", str(self.port), "-U", self.user, "-d", "postgres", "-c", f'CREATE DATABASE "{name}"']  # fmt: skip
        _run(psql, timeout=60, what=f"CREATE DATABASE {name}")
        self.databases.append(name)
        return name

    def restart(self, mode: str = "fast", timeout: float = 120) -> None:
        """`pg_ctl restart`: the server stops (`fast`: every connection is cut) and starts again on the
        same port with the same options (kept in postmaster.opts), its output in the same log."""
        _run(
            _as_server_user(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-l", str(self.log_file),
                 "-w", "-t", str(int(timeout)), "restart"]
            ),
            timeout=timeout + 30, what="pg_ctl restart",
        )  # fmt: skip

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """`pg_ctl stop`: the server is down (connections refused) until `start`."""
        _run(
            _as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w",
                             "-t", str(int(timeout)), "stop"]),
            timeout=timeout + 30, what="pg_ctl stop",
        )  # fmt: skip

    def start(self, timeout: float = 120) -> None:
        """Start a stopped cluster again on its port, with the options it was first started with."""
        options = f"-p {self.port} -k {self.base_dir} -c listen_addresses={self.host} {SERVER_OPTIONS}"
        _run(
            _as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", options, "-l",
                             str(self.log_file), "-w", "-t", str(int(timeout)), "start"]),
            timeout=timeout + 30, what="pg_ctl start",
        )  # fmt: skip

    def server_log(self, tail: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-tail:])
        return ""


def _prepare_base(parent: str | os.PathLike[str] | None) -> Path:
    """A new folder the server user owns and can reach."""
    base = Path(tempfile.mkdtemp(prefix="vtex-pg-", dir=parent))
    if _is_root():
        try:
            pw = pwd.getpwnam(SUPERUSER)
        except KeyError as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise PostgresUnavailable(
                "running as root and there is no `postgres` user to run PostgreSQL as"
            ) from exc
        os.chown(base, pw.pw_uid, pw.pw_gid)
        # pytest's and mkdtemp's folders are 0700 root: the server user must reach its own folder
        probe = subprocess.run(_as_server_user(["test", "-w", str(base)]), capture_output=True, check=False)
        if probe.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            if parent is None and Path("/tmp").is_dir() and tempfile.gettempdir() != "/tmp":
                return _prepare_base("/tmp")
            raise PostgresUnavailable(
                f"the postgres user cannot write to {base} (a parent folder is private)"
            )
    return base


def _kill_postmaster(data_dir: Path) -> None:
    """Last resort when `pg_ctl stop` did not work: SIGKILL the pid in postmaster.pid."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def throwaway_postgres(
    dbname: str = DEFAULT_DB, *, parent: str | os.PathLike[str] | None = None, start_timeout: float = 60
) -> Iterator[PostgresCluster]:
    """Start a fresh cluster with database `dbname`; stop it and delete its folder on exit.

    Raises PostgresUnavailable when the server binaries are missing or cannot run as this user.
    """
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise PostgresUnavailable(
            "PostgreSQL is not installed: no initdb on PATH or in /usr/lib/postgresql/*/bin "
            "(Debian: apt-get install postgresql)"
        )
    base = _prepare_base(parent)
    cluster: PostgresCluster | None = None
    started = False
    try:
        _run(
            _as_server_user(
                [str(bin_dir / "initdb"), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C",
                 "--no-sync", "-D", str(base / "data")]
            ),
            timeout=120,
            what="initdb",
        )  # fmt: skip
        last_error = ""
        for _attempt in range(5):  # the free port may be taken between picking and binding it
            port = _free_port()
            options = f"-p {port} -k {base} -c listen_addresses={HOST} {SERVER_OPTIONS}"
            proc = subprocess.run(
                _as_server_user(
                    [str(bin_dir / "pg_ctl"), "-D", str(base / "data"), "-o", options,
                     "-l", str(base / "server.log"), "-w", "-t", str(int(start_timeout)), "start"]
                ),
                capture_output=True, text=True, timeout=start_timeout + 30, check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                cluster = PostgresCluster(bin_dir=bin_dir, base_dir=base, port=port, dbname=dbname)
                started = True
                break
            log = ""
            with contextlib.suppress(OSError):
                log = (base / "server.log").read_text(errors="replace")[-2000:]
            last_error = f"{proc.stdout}\n{proc.stderr}\n{log}"
            if "could not bind" not in log and "already in use" not in log:
                break
        if cluster is None:
            raise RuntimeError(f"PostgreSQL did not start in {base}:\n{last_error}")
        cluster.create_database(dbname)
        yield cluster
    finally:
        if started:
            stop = subprocess.run(
                _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(base / "data"), "-m", "immediate",
                                 "-w", "-t", "30", "stop"]),
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if stop.returncode != 0:
                _kill_postmaster(base / "data")
        shutil.rmtree(base, ignore_errors=True)


def postgres_or_skip(dbname: str = DEFAULT_DB) -> contextlib.AbstractContextManager[PostgresCluster]:
    """`throwaway_postgres` for pytest: skips (or, with CI set, fails) when PostgreSQL is missing."""
    bin_dir = find_pg_bin()
    if bin_dir is None or (_is_root() and not _has_user(SUPERUSER)):
        why = (
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin; "
            "Debian: apt-get install postgresql)"
            if bin_dir is None
            else "running as root and there is no `postgres` user to run PostgreSQL as"
        )
        if running_in_ci():
            pytest.fail(f"CI is set and {why}", pytrace=False)
        pytest.skip(why)
    return throwaway_postgres(dbname)


def running_in_ci() -> bool:
    """CI is set to something true (as in the dashboard's browser test): what may skip locally must run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


if pytest is not None:

    @pytest.fixture(scope="session")
    def postgres_cluster() -> Iterator[PostgresCluster]:
        """One throwaway cluster for the session; tests call `create_database` for a fresh database."""
        with postgres_or_skip() as cluster:
            yield cluster
