# syntax=docker/dockerfile:1
# leak-sidecar: build a wheel in one stage, install it into a clean slim image in the next,
# with its dependencies exactly as requirements/runtime.txt pins and hashes them.
#
#   docker build -t leak-sidecar:0.1.0 \
#       --build-arg SOURCE_URL="$(git remote get-url origin)" --build-arg REVISION="$(git rev-parse HEAD)" .
#   docker run --rm -e LEAK_SIDECAR_TOKEN=... -p 9120:9120 leak-sidecar:0.1.0
#   docker run --rm leak-sidecar:0.1.0 demo-app --listen 0.0.0.0:8080

ARG PYTHON_VERSION=3.11

# The build stage is the full image: it has the C compiler for the range kernels
# (sidecar/rules/promql/_kernels.c), which the slim image that runs them does not need.
FROM python:${PYTHON_VERSION} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar/ sidecar/
# The rule pack ships inside the package too (sidecar.pack), for `leak-sidecar demo`.
COPY rules/ rules/
# The package alone: its dependencies come from the lock, in the final stage.
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
# The package's version (tests keep it equal to pyproject.toml's); where and from which
# commit the image was built, given at build time:
#   --build-arg SOURCE_URL="$(git remote get-url origin)" --build-arg REVISION="$(git rev-parse HEAD)"
ARG VERSION=0.1.0
ARG SOURCE_URL=""
ARG REVISION=""
LABEL org.opencontainers.image.title="leak-sidecar" \
      org.opencontainers.image.description="Stops a Go service's memory and resource leaks before they take it down." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_VERSION}-slim"
# No allocator variables (MALLOC_ARENA_MAX, MALLOC_TRIM_THRESHOLD_, PYTHONMALLOC): measured
# side by side (bench/bench_memory.py), none lowers the steady RSS, and PYTHONMALLOC=malloc
# raises it; `run` itself hands freed heap back to the kernel once it has started.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The lock and the wheel are bind-mounted, not copied: they never become a layer of the image.
# Every pinned release has a wheel for CPython 3.11 on glibc x86_64 and arm64, so binaries
# only: nothing is compiled, and a missing wheel fails the build instead of building from source.
RUN --mount=type=bind,source=requirements/runtime.txt,target=/tmp/runtime.txt \
    --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --require-hashes --only-binary :all: -r /tmp/runtime.txt \
    && pip install --no-deps --no-index /wheels/leak_sidecar-*.whl \
    && python -c "import sidecar.rules.promql._kernels" \
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
