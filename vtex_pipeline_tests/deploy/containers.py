"""The image of deploy/Dockerfile, built and run with podman as ../shared/reference/containers.md shows:
runc (crun refuses this kernel's cgroup layout), the file-descriptor and process ulimits the machine's hard
limits allow, host networking (`--add-host code:127.0.0.1` for the workspace's `code`), and a base image
made with debootstrap from Debian's packages because no container registry can be reached.

    images = build_images(log_dir)              # base image (cached) + the project's image
    with Containers(images.image, env, log_dir, suffix="abc") as c:
        c.run("code", [...]); c.run("daemon", [...]); c.stop("code") -> seconds

No pytest here: `python -m vtex_pipeline_tests.deploy.containers` builds the images alone (and prints the
durations), which is what a developer runs to warm the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/python:3.11-slim"  # the name deploy/Dockerfile's PYTHON_IMAGE takes here
IMAGE_REPO = "localhost/vtex-pipeline"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"  # python3 is 3.11 there, as in python:3.11-slim
TOOLS = ("podman", "runc", "debootstrap")
RUNTIME = ["--runtime", "runc"]
# The machine's hard limit is below podman's default nofile; nproc bounded the same way.
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]
# What the image is built from (deploy/Dockerfile.dockerignore keeps only these in the context).
CONTEXT = ("pyproject.toml", "README.md", "vtex_pipeline", "deploy/Dockerfile", "deploy/dagster.yaml",
           "deploy/workspace.yaml")  # fmt: skip


class ContainersUnavailable(RuntimeError):
    """podman, runc or debootstrap is missing; the message says what to install."""


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]


def podman(*args: str, timeout: float = 120, check: bool = True, log: Path | None = None) -> str:
    """`podman ARGS`; output returned (or appended to `log`); a failure raises with the output."""
    cmd = ["podman", *args]
    if log is not None:
        with log.open("ab") as fh:
            fh.write(f"\n$ {' '.join(cmd)}\n".encode())
            fh.flush()
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        out = ""
        if check and proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
        return out
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (`apt-cache policy`), else deb.debian.org."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["apt-cache", "policy"], capture_output=True, text=True, timeout=60).stdout
        for line in out.splitlines():
            m = re.match(rf"\s*\d+\s+(https?://\S+)\s+{SUITE}/main\s", line)
            if m:
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def build_base_image(log: Path, *, mirror: str | None = None) -> float:
    """`localhost/python:3.11-slim` from Debian's packages (debootstrap), unless it exists. Seconds spent."""
    if image_exists(BASE_IMAGE):
        return 0.0
    started = time.monotonic()
    rootfs = Path(tempfile.mkdtemp(prefix="vtex-rootfs-"))
    try:
        with log.open("ab") as fh:
            subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip,ca-certificates",
                 SUITE, str(rootfs), mirror or debian_mirror()],
                stdout=fh, stderr=subprocess.STDOUT, timeout=1200, check=True,
            )  # fmt: skip
        # pip installs system-wide, as in python:slim; `python` is python3; the machine's CA bundle (pip
        # inside a container finds no versions without it)
        (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        python = rootfs / "usr/bin/python"
        python.unlink(missing_ok=True)
        python.symlink_to("python3")
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        with log.open("ab") as fh:
            subprocess.run(
                ["podman", "import",
                 "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                 "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                 "-", BASE_IMAGE],
                stdin=tar.stdout, stdout=fh, stderr=subprocess.STDOUT, timeout=600, check=True,
            )  # fmt: skip
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(60)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return time.monotonic() - started


def context_digest() -> str:
    """A hash of what the image is built from: the tag, so two checkouts never run each other's image."""
    h = hashlib.sha256()
    for rel in CONTEXT:
        path = ROOT / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


@dataclass
class Images:
    image: str
    base_seconds: float  # 0 when the base image was there already
    build_seconds: float


def build_images(log_dir: Path) -> Images:
    """The base image if missing, then `podman build -f deploy/Dockerfile` (layers cached by podman)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    base_seconds = build_base_image(log_dir / "base-image.log")
    image = f"{IMAGE_REPO}:deploy-test-{context_digest()}"
    started = time.monotonic()
    podman(
        "build", *RUNTIME, "--network", "host", "--ulimit", "nofile=20000:20000",
        "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}", "-f", str(ROOT / "deploy" / "Dockerfile"),
        "-t", image, str(ROOT),
        timeout=1800, log=log_dir / "image-build.log",
    )  # fmt: skip
    return Images(image=image, base_seconds=base_seconds, build_seconds=time.monotonic() - started)


@dataclass
class Containers:
    """Containers of one image on the host network, named `<name>-<suffix>`; all removed on exit."""

    image: str
    env_file: Path
    log_dir: Path
    suffix: str
    mounts: list[str] = field(default_factory=list)  # "-v" values
    names: list[str] = field(default_factory=list)

    def full(self, name: str) -> str:
        return f"vtex-{name}-{self.suffix}"

    def run(self, name: str, command: list[str] | None = None) -> str:
        args = ["run", "-d", *RUNTIME, "--network", "host", *ULIMITS, "--env-file", str(self.env_file),
                "--add-host", "code:127.0.0.1", "--name", self.full(name)]  # fmt: skip
        for m in self.mounts:
            args += ["-v", m]
        self.names.append(name)
        podman(*args, self.image, *(command or []), timeout=120)
        return self.full(name)

    def exec(self, name: str, command: list[str], timeout: float = 180) -> str:
        return podman("exec", self.full(name), *command, timeout=timeout)

    def running(self, name: str) -> bool:
        out = podman("inspect", "-f", "{{.State.Running}}", self.full(name), check=False, timeout=30)
        return out.strip() == "true"

    def check_running(self) -> None:
        for name in self.names:
            if not self.running(name):
                raise AssertionError(f"container {self.full(name)} is not running:\n{self.logs(name)}")

    def stop(self, name: str, timeout: int = 10) -> float:
        """`podman stop -t TIMEOUT`: SIGTERM, SIGKILL after TIMEOUT s. Seconds it took."""
        started = time.monotonic()
        podman("stop", "-t", str(timeout), self.full(name), timeout=timeout + 60)
        return time.monotonic() - started

    def exit_code(self, name: str) -> int:
        return int(podman("inspect", "-f", "{{.State.ExitCode}}", self.full(name), timeout=30).strip())

    def restart(self, name: str, timeout: int = 10) -> float:
        started = time.monotonic()
        podman("restart", "-t", str(timeout), self.full(name), timeout=timeout + 120)
        return time.monotonic() - started

    def top(self, name: str) -> str:
        return podman("top", self.full(name), "pid", "ppid", "pgid", "args", check=False, timeout=30)

    def logs(self, name: str, tail: int = 60) -> str:
        return podman("logs", "--tail", str(tail), self.full(name), check=False, timeout=60)

    def save_logs(self) -> None:
        for name in self.names:
            with contextlib.suppress(Exception):
                (self.log_dir / f"{name}.container.log").write_text(
                    podman("logs", self.full(name), check=False, timeout=60), encoding="utf-8"
                )

    def dump(self) -> str:
        return "\n".join(f"===== container {n} (last lines) =====\n{self.logs(n)}" for n in self.names)

    def remove_all(self) -> None:
        self.save_logs()
        for name in reversed(self.names):
            with contextlib.suppress(Exception):
                podman("rm", "-f", "-t", "2", self.full(name), check=False, timeout=60)

    def __enter__(self) -> Containers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove_all()


def write_env_file(path: Path, env: dict[str, str]) -> Path:
    """A podman --env-file (KEY=value lines, no quoting: values must not hold a newline)."""
    lines = []
    for k, v in env.items():
        if "\n" in v:
            raise ValueError(f"{k}: a newline cannot go into an env file")
        lines.append(f"{k}={v}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.monotonic()
    try:
        yield box
    finally:
        box.append(time.monotonic() - started)


if __name__ == "__main__":  # pragma: no cover - a developer's cache warm-up
    missing = missing_tools()
    if missing:
        raise SystemExit(f"missing: {' '.join(missing)} (apt-get install -y podman runc debootstrap)")
    built = build_images(Path(tempfile.mkdtemp(prefix="vtex-image-logs-")))
    print(f"{built.image}: base image {built.base_seconds:.0f} s, podman build {built.build_seconds:.0f} s")
