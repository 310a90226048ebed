"""A copy of the project to run the CLI in, and the CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO

LSTMKIT = [sys.executable, "-m", "lstmkit.cli"]


def lstmkit(cwd: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the lstmkit CLI in a project folder (`env`: variables laid over this process's environment)."""
    proc = subprocess.run([*LSTMKIT, *args], cwd=cwd, capture_output=True, text=True, timeout=900,
                          env=None if env is None else os.environ | env)
    if check and proc.returncode != 0:
        raise AssertionError(f"lstmkit {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_project(root: Path) -> Path:
    """Copy the project's notebooks, profiles and book configuration into root."""
    for name in ("notebooks", "configs"):
        shutil.copytree(REPO / name, root / name)
    for name in ("_config.yml", "_toc.yml", "docs/favicon.svg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    return root
