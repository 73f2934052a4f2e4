# syntax=docker/dockerfile:1
# MyAshes community backend image. Build: docker build -t myashes-backend:<version> .
# Linted offline with hadolint (make deploy-check). Runs as uid 10001 on a read-only root
# filesystem in k8s; writable paths are /tmp and $PROMETHEUS_MULTIPROC_DIR (emptyDirs).

# Base image pinned by digest (a tag can be re-pointed): the python:3.11-slim index digest
# below, the same in both stages. Bump it with the tag's current digest
# (`docker buildx imagetools inspect python:3.11-slim`), then run `make deploy-check`.

# ---- build: every wheel the runtime needs, each checked against requirements.lock ----
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: this layer only changes with requirements.lock (`make lock` writes it
# from pyproject.toml and constraints.txt, with the sha256 of every file PyPI has for each
# pinned version). --require-hashes: a file whose hash is not in the lock fails the build;
# wheels only (all dependencies ship them), so no sdist build runs unverified code.
COPY pyproject.toml requirements.lock README.md ./
RUN pip download --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
        --dest /wheels -r requirements.lock
# Then the application code as its own wheel, built with the hash-checked setuptools from
# /wheels (no build-isolation download of an unpinned one).
COPY service ./service
COPY models ./models
COPY aggregators ./aggregators
RUN pip install --no-cache-dir --no-index --no-deps /wheels/setuptools-*.whl \
    && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .

# ---- runtime: slim Python, our wheels, no build tools, non-root ----
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=2 \
    PROMETHEUS_MULTIPROC_DIR=/run/prometheus
RUN groupadd --system --gid 10001 myashes \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /app \
        --no-create-home --shell /usr/sbin/nologin myashes \
    && mkdir -p /run/prometheus \
    && chown 10001:10001 /run/prometheus
WORKDIR /app
# Dependency layer (cached across code changes); wheels and lock are bind-mounted, never
# copied in. The hashes are checked again on install (--require-hashes).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/src/requirements.lock,target=/tmp/requirements.lock \
    pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes --no-deps \
        -r /tmp/requirements.lock
# Code layer. Files stay root-owned: the service user can read, not modify them.
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    pip install --no-cache-dir --no-index --no-deps /dist/*.whl
# aerich reads ./migrations and [tool.aerich] in ./pyproject.toml (WORKDIR /app).
COPY pyproject.toml ./
COPY migrations ./migrations
USER 10001:10001
EXPOSE 8000
# Sanic drains for GRACEFUL_SHUTDOWN_S, then each worker flushes its aggregators.
STOPSIGNAL SIGTERM
# For docker/compose; k8s ignores this and uses /health/live, /health/ready probes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-m", "service.runtime.entrypoint", "healthcheck"]
# Waits for PostgreSQL (bounded), then execs `python -m service run` (PID 1 gets SIGTERM).
# Migrations: `docker run … migrate` / the k8s Job; never on every pod start.
ENTRYPOINT ["python", "-m", "service.runtime.entrypoint"]
CMD ["run"]
