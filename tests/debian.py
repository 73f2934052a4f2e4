"""Tools from Debian packages that tests and benchmarks need, installed when missing."""

from __future__ import annotations

import os
import shutil
import subprocess


def debian_tool(binary: str, package: str) -> str | None:
    """Path of `binary`, installing Debian's `package` first when it is missing and this runs
    as root where apt-get exists (package lists are refreshed once if the install fails).
    None when it still is not there: callers fail with their own message, never skip."""
    found = shutil.which(binary)
    if found is not None or shutil.which("apt-get") is None or os.geteuid() != 0:
        return found
    # RUNLEVEL=1: maintainer scripts install services (prometheus) without starting them.
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    install = [
        "apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q",
        "--no-install-recommends", package,
    ]  # fmt: skip

    def run(command: list[str]) -> int:
        out = subprocess.DEVNULL
        return subprocess.run(command, env=env, stdout=out, stderr=out, check=False).returncode

    if run(install) != 0:
        run(["apt-get", "update", "-q"])
        run(install)
    return shutil.which(binary)
