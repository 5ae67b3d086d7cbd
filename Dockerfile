# The wattlens metering gateway (`wattlens serve`) as a container: docs/deploy.md.
#
#   docker build -t wattlens .
#   docker run -p 8787:8787 -v ./gateway.toml:/etc/wattlens/gateway.toml:ro \
#              -v ./keys.toml:/etc/wattlens/keys.toml:ro -e OPENAI_API_KEY wattlens
#
# Beyond loopback the gateway refuses to start without API keys: the config's [server] keys_file
# must name a mounted keys file (`docker run --rm --entrypoint wattlens wattlens keys new`).

# A pinned release of the slim Debian image; pin its digest too where builds must be reproducible.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/wattlens
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# postgres: the PostgreSQL ledger; the OpenTelemetry SDK, distro and OTLP exporter let
# `opentelemetry-instrument wattlens serve` export the energy metrics (compose.yaml does).
RUN /opt/wattlens/bin/pip install ".[postgres]" opentelemetry-sdk opentelemetry-distro opentelemetry-exporter-otlp-proto-http

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/wattlens /opt/wattlens
# XDG_DATA_HOME: the default SQLite ledger and PostgreSQL spill files go to the writable volume.
ENV PATH=/opt/wattlens/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 XDG_DATA_HOME=/var/lib/wattlens
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/wattlens --shell /usr/sbin/nologin wattlens \
    && mkdir -p /var/lib/wattlens /etc/wattlens \
    && chown wattlens:wattlens /var/lib/wattlens
# A numeric user, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /var/lib/wattlens
VOLUME ["/var/lib/wattlens"]
EXPOSE 8787
# /healthz answers 503 when the ledger is degraded; urlopen raises on it, so the check fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=4)"]
ENTRYPOINT ["wattlens", "serve", "--host", "0.0.0.0"]
CMD ["--config", "/etc/wattlens/gateway.toml"]
