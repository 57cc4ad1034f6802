# syntax=docker/dockerfile:1
# One image for every role of sagastream; the command picks the role:
#
#   docker run IMAGE worker -d /app/definitions/order_orchestrated.yaml   # a coordinator replica
#   docker run IMAGE service inventory --metrics-port 8000 --metrics-host 0.0.0.0
#   docker run IMAGE bridge --config /config/bridge.yaml                  # HTTP services
#   docker run IMAGE topics init -d /app/definitions/order_orchestrated.yaml
#   docker run IMAGE load --rate 5                                        # demo orders
#
# Configuration is environment variables (KAFKA_*, SAGAS_*, SERVICES_*): see the
# "Configuration" table in README.md. The embedded broker is not in the image:
# point KAFKA_BOOTSTRAP_SERVERS at a Kafka cluster. The API listens on 0.0.0.0, so a
# worker needs its bearer token: -e SAGAS_API_TOKEN=..., or a secret file mounted and
# named by SAGAS_API_TOKEN_FILE (-e SAGAS_API_AUTH=none opts out, explicitly).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: install the package and its dependencies into a virtualenv ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY events/ events/
COPY sagas/ sagas/
COPY services/ services/
COPY bench/ bench/
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/sagas --help > /dev/null

# -- runtime: the virtualenv, the shipped saga definitions, an unprivileged user -------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="sagastream" \
      org.opencontainers.image.description="Event-driven saga engine on Kafka: coordinator, reference services, HTTP bridge" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SAGAS_WEB_HOST=0.0.0.0
RUN groupadd --system --gid 10001 sagas \
    && useradd --system --uid 10001 --gid sagas --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin sagas
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY services/definitions/*.yaml /app/definitions/
USER 10001:10001
# 6066: coordinator HTTP API and /metrics; 8000: a service's or the bridge's /metrics
EXPOSE 6066 8000
ENTRYPOINT ["sagas"]
CMD ["--help"]
