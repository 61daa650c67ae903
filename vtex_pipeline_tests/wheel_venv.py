"""A wheel of a source tree installed (not editable) into a fresh virtual environment: how users get the
pipeline. Its dependencies come from this test's environment through a plain path entry (not a site dir,
so the checkout's editable-install hook is not loaded there): what is under test is the wheel's content."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path


def wheel_venv(src: Path, root: Path) -> Path:
    """bin/ of `root/venv`, holding the wheel built from `src` (a checkout or a worktree of a release)."""
    root.mkdir(parents=True, exist_ok=True)
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                   check=True, cwd=root, timeout=600)  # fmt: skip
    (wheel,) = dist.glob("vtex_pipeline-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = subprocess.check_output(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True,
    ).strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "--no-deps", "-q", str(wheel)], check=True, timeout=300)  # fmt: skip
    _dependency_scripts(venv / "bin")
    return venv / "bin"


def _dependency_scripts(bin_dir: Path) -> None:
    """`dagster`, `dagster-daemon`, `dagster-webserver`: the console scripts pip would have installed with
    the dependencies, run by this venv's python (so they import the wheel, not the checkout)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="console_scripts"):
        if ep.name not in ("dagster", "dagster-daemon", "dagster-webserver") or (bin_dir / ep.name).exists():
            continue
        module, _, attr = ep.value.partition(":")
        script = bin_dir / ep.name
        script.write_text(
            f"#!{bin_dir / 'python'}\nimport sys\nfrom {module} import {attr.split('.')[0]}\n"
            f"sys.exit({attr}())\n",
            encoding="utf-8",
        )
        script.chmod(0o755)
