# One image for every process; the command picks the service:
#   activity-platform serve activity|referral|reward --host 0.0.0.0 --port 800x
#   activity-platform worker activity|referral|reward
#   activity-platform migrate
#
# Two stages: the build stage installs the locked dependencies (requirements.lock, every
# file checked against its hash, wheels only) and the platform itself as a wheel into a
# virtualenv; the runtime stage gets that virtualenv and the migrations, nothing else (no
# compilers, no pip cache, no sources, no embedded database servers: those are the
# `embedded` extra of development and tests). Regenerate the lock with `make lock`.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/platform
WORKDIR /build
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN /opt/platform/bin/pip install --require-hashes --only-binary=:all: --no-deps \
        -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/platform/bin/pip wheel --no-deps --wheel-dir /build/dist . \
    && /opt/platform/bin/pip install --no-deps /build/dist/*.whl \
    && /opt/platform/bin/pip check

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/platform/bin:$PATH \
    MIGRATIONS_DIR=/app/migrations
RUN useradd --create-home --uid 10001 platform
COPY --from=build /opt/platform /opt/platform
WORKDIR /app
COPY migrations ./migrations

USER platform
EXPOSE 8001 8002 8003
# Checks the process this container runs: an API's /healthz, a worker's heartbeat in Redis
# (see `activity-platform healthcheck`); one-off commands have nothing to check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["activity-platform", "healthcheck"]
ENTRYPOINT ["activity-platform"]
CMD ["--help"]
