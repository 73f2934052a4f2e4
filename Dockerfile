# syntax=docker/dockerfile:1
# MyAshes community backend image. Build: docker build -t myashes-backend:<version> .
# Linted offline with hadolint (make deploy-check). Runs as uid 10001 on a read-only root
# filesystem in k8s; writable paths are /tmp and $PROMETHEUS_MULTIPROC_DIR (emptyDirs).

# ---- build: every wheel the runtime needs (no compiler needed: all deps ship wheels) ----
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: this layer only changes with pyproject.toml / constraints.txt.
# (README.md is the package readme; the wheel of our own, still empty, package is dropped.)
COPY pyproject.toml constraints.txt README.md ./
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint constraints.txt . \
    && rm -f /wheels/myashes_backend-*.whl
# Then the application code as its own wheel.
COPY service ./service
COPY models ./models
COPY aggregators ./aggregators
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# ---- runtime: slim Python, our wheels, no build tools, non-root ----
FROM python:3.11-slim AS runtime
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
# Dependency layer (cached across code changes); wheels are bind-mounted, never copied in.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl
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
