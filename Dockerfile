# syntax=docker/dockerfile:1
# leak-sidecar: build a wheel in one stage, install it into a clean slim image in the next.
#
#   docker build -t leak-sidecar:0.1.0 .
#   docker run --rm -e LEAK_SIDECAR_TOKEN=... -p 9120:9120 leak-sidecar:0.1.0
#   docker run --rm leak-sidecar:0.1.0 demo-app --listen 0.0.0.0:8080

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar/ sidecar/
# The rule pack ships inside the package too (sidecar.pack), for `leak-sidecar demo`.
COPY rules/ rules/
# Wheels for the package and every dependency, so the final stage installs offline.
RUN pip wheel --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="leak-sidecar" \
      org.opencontainers.image.description="Stops a Go service's memory and resource leaks before they take it down." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The wheels are bind-mounted, not copied: they never become a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels leak-sidecar \
    && groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin nonroot \
    && mkdir -p /var/lib/leak-sidecar \
    && chown 65532:65532 /var/lib/leak-sidecar
COPY config/sidecar.yaml /etc/leak-sidecar/sidecar.yaml
COPY rules/*.yml /etc/leak-sidecar/rules/
# The default config reads rules/*.yml relative to the working directory.
WORKDIR /etc/leak-sidecar
USER 65532:65532
EXPOSE 9120
# Journal and alert state; in Kubernetes an emptyDir, so it survives container restarts.
VOLUME ["/var/lib/leak-sidecar"]
ENTRYPOINT ["leak-sidecar"]
CMD ["run", "--config", "/etc/leak-sidecar/sidecar.yaml"]
