"""The rooms of service/ stay rooms: lint-imports (contracts in pyproject.toml) passes on the
tree and fails when a lower layer imports a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("service", "aggregators", "models")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        # The old circle: the metrics exporter reaching back into the context.
        ("service/telemetry/worker_metrics.py", "from service.ctx import Ctx", "service layers"),
        # The domain reaching up into the edge.
        ("service/builds/store.py", "from service.http import sessions", "service layers"),
        # The contract importing the domain.
        ("service/contract/schemas.py", "from service.builds import store", "service layers"),
        # Plumbing reaching the edge.
        ("service/runtime/db.py", "from service.http import responses", "only app.py"),
        ("aggregators/base.py", "import service.config", "aggregators never"),
        ("models/builds.py", "import aggregators.keys", "models import nothing"),
    ],
)
def test_an_upward_import_breaks_a_contract(
    tmp_path: Path, module: str, statement: str, broken: str
) -> None:
    root = copy_tree(tmp_path)
    with (root / module).open("a") as source:
        source.write(f"\n{statement}  # noqa\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert " 0 broken" not in result.stdout
    assert broken in result.stdout.split("Broken contracts", 1)[1]
    assert statement.split()[1] in result.stdout  # the report names the offending import
