# syntax=docker/dockerfile:1
#
# eid-gateway container image.
#   docker build -t eid-gateway:0.1.0 .
#   docker run --rm -p 8080:8080 --stop-timeout 20 -e GW_SESSION_SECRET \
#     -v "$PWD/gateway-config:/etc/eid-gateway:ro" eid-gateway:0.1.0
# where gateway-config/ holds config.yaml and keys/ (readable by uid 10001).
# The config is read from /etc/eid-gateway/config.yaml (mount it); key files are paths relative to
# that file (e.g. keys/assertion-key.pem) or absolute; secrets come from the environment (${VAR} in
# the config) or from mounted files. The config must listen on 0.0.0.0:8080 (the default,
# 127.0.0.1:8080, is unreachable from outside the container) and, for metrics, 0.0.0.0:9090.
#
# Both stages use the same base, so the virtual environment built in the first one runs unchanged
# in the second. Pin a digest as well in production: PYTHON_IMAGE=python:3.11.14-slim-trixie@sha256:...
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# ---- builder: wheels for the project and every dependency, installed into /opt/eid-gateway ----
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY requirements/runtime.txt requirements/build.txt requirements/
COPY pyproject.toml README.md ./
COPY gateway gateway

# Every dependency at the version and hash in the lock (requirements/*.txt, exported from uv.lock by
# scripts/lock.sh), as binary wheels only (--only-binary): no compiler is needed, and aiohttp always
# comes with its C HTTP parser, which the gateway requires (it refuses to start without it).
# /opt/build holds the locked build backend; the project's wheel is built with it (no build
# isolation, which would fetch the newest setuptools), and installed without resolving anything
# (--no-deps: the lock is the complete set) into /opt/eid-gateway, a venv without pip. The last line
# fails the build if the C parser or uvloop is missing from the result.
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
        -r requirements/build.txt \
 && /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/eid-gateway \
 && /opt/build/bin/pip --python /opt/eid-gateway/bin/python install --no-cache-dir --require-hashes \
        --no-deps --only-binary=:all: -r requirements/runtime.txt \
 && /opt/build/bin/pip --python /opt/eid-gateway/bin/python install --no-cache-dir --no-index --no-deps \
        /wheels/eid_gateway-*.whl \
 && /opt/eid-gateway/bin/python -c "import uvloop; from gateway.server import c_parser_active; assert c_parser_active()"

# ---- runtime: the slim base, the virtual environment, a non-root user; no build tools, no pip in the venv ----
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="eid-gateway" \
      org.opencontainers.image.description="Reverse-proxy authentication gateway for Nordic eID and any OpenID Provider" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 eid \
 && useradd --system --uid 10001 --gid eid --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin eid

COPY --from=builder /opt/eid-gateway /opt/eid-gateway

ENV PATH=/opt/eid-gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EID_GATEWAY_HEALTHCHECK_URL=http://127.0.0.1:8080/_auth/healthz

# Numeric, so that Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001

EXPOSE 8080 9090

# SIGTERM: readiness turns 503, the listener closes after min(2 s, shutdown_grace/2), in-flight
# requests get shutdown_grace (default 10 s). Give `docker stop` more than that: --stop-timeout 20.
STOPSIGNAL SIGTERM

# Liveness only (/_auth/readyz is for load balancers). slim has no curl: the standard library does it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen(os.environ['EID_GATEWAY_HEALTHCHECK_URL'], timeout=3); sys.exit(0 if r.status == 200 else 1)"]

ENTRYPOINT ["eid-gateway"]
CMD ["run", "--config", "/etc/eid-gateway/config.yaml"]
