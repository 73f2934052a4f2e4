"""PROMETHEUS_MULTIPROC_DIR for `python -m service run`, set up before anything imports
prometheus_client (it picks its storage at import, and the workers inherit the environment).

Must not import prometheus_client (or service.telemetry.metrics) itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.config import Settings

log = logging.getLogger("myashes.metrics")

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "myashes-metrics-"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or someone else's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def reset_metrics_dir(path: str | None) -> None:
    """Remove stale prometheus multiprocess files (an emptyDir survives container restarts)."""
    if not path:
        return
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    stale = list(directory.glob("*.db"))  # only the client's own files, never a tree
    for file in stale:
        file.unlink(missing_ok=True)
    if stale:
        log.info("removed %d stale metrics files from %s", len(stale), directory)


def sweep_stale_temp_dirs(root: Path | None = None) -> None:
    """Remove the temporary directories of earlier runners that were killed (pid in the name)."""
    for path in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def metrics_dir(settings: Settings) -> Iterator[str]:
    """Export the directory for this server start: PROMETHEUS_MULTIPROC_DIR when given (stale
    files removed), else a fresh temporary one, removed again at exit."""
    given = settings.prometheus_multiproc_dir
    if given is None:
        sweep_stale_temp_dirs()
    path = given or tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    reset_metrics_dir(path)
    os.environ[VARIABLE] = path
    try:
        yield path
    finally:
        if given is None:
            shutil.rmtree(path, ignore_errors=True)
