# The one image every chart runs (charts/*: `observer up`, `observer agent`, `observer collect`,
# `observer controlplane`). Two stages: the build stage installs the package and its dependencies into a virtual
# environment; the final stage gets that environment alone (no compiler, no pip), runs as uid 65532, and works with
# a read-only root filesystem: it writes only to /tmp and /data, which the charts mount as volumes.
#
#   docker build -t ghcr.io/openchoreo/observer-plane:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/observer
WORKDIR /src
# Dependencies first (their layer survives source edits), at the versions the tests passed with
# (constraints.txt), then the package itself, not editable.
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir -p domain && touch domain/__init__.py \
 && /opt/observer/bin/pip install -c constraints.txt . \
 && /opt/observer/bin/pip uninstall -y observer-plane
COPY domain ./domain
COPY serving ./serving
COPY access ./access
COPY audit ./audit
COPY tunnel ./tunnel
COPY adapters ./adapters
COPY collectors ./collectors
COPY alert_rules ./alert_rules
COPY observer ./observer
COPY controlplane ./controlplane
COPY agents ./agents
# Bytecode now: with a read-only root filesystem, Python could not write it at run time. Then the installers
# leave: the final stage carries no build or install tools.
RUN /opt/observer/bin/pip install --no-deps . \
 && /opt/observer/bin/python -m compileall -q /opt/observer/lib
RUN /opt/observer/bin/python -m pip uninstall -y pip setuptools wheel

FROM ${PYTHON_IMAGE} AS final
# The base image's installers go too (pip, setuptools, wheel, and ensurepip, which could bring pip back).
RUN rm -rf /usr/local/lib/python3.11/site-packages/pip* /usr/local/lib/python3.11/site-packages/setuptools* \
      /usr/local/lib/python3.11/site-packages/wheel* /usr/local/lib/python3.11/ensurepip /usr/local/bin/pip* \
 && groupadd --system --gid 65532 observer \
 && useradd --system --uid 65532 --gid 65532 --home-dir /data --no-create-home --shell /usr/sbin/nologin observer \
 && mkdir -p /data /tmp && chown 65532:65532 /data && chmod 1777 /tmp
COPY --from=build /opt/observer /opt/observer
ENV PATH=/opt/observer/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OBSERVER_DATA_DIR=/data \
    OBSERVER_HOST=0.0.0.0
WORKDIR /data
VOLUME ["/data", "/tmp"]
USER 65532:65532
EXPOSE 8080 8081 4318
ENTRYPOINT ["observer"]
CMD ["up"]
