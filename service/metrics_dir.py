"""PROMETHEUS_MULTIPROC_DIR for `python -m service run`, set up before anything imports
prometheus_client (it picks its storage at import, and the workers inherit the environment).

Must not import prometheus_client (or service.metrics) itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.config import Settings
from service.entrypoint import reset_metrics_dir

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "myashes-metrics-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def sweep_stale_temp_dirs(root: Path | None = None) -> None:
    """Remove the temporary directories of earlier runners that were killed (pid in the name)."""
    for path in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
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
