# ganger's image: the delegator and the worker, one image for both roles (docs/deploying.md).
#
#   docker build -t ganger .
#   docker run --rm -p 8080:8080 ganger                              # the MCMC demo
#   docker run --rm ganger ganger-worker --connect tcp://HOST:5555    # a worker
#
# The Compose, Kubernetes and Marathon files rely on what this file promises: the binaries in
# /usr/local/bin, the demo config in /opt/ganger, user ganger (uid 10001), /data, tini as init,
# GANGER_STATUS_FILE, GANGER_HTTP, ports 5555 and 8080. delegator/tests/deployment checks those promises,
# and .ci/run builds the release binaries from the build context as this file does.

FROM rust:1.95-slim-bookworm AS build
# libzmq is compiled from source by the zmq-sys crate (through zeromq-src and cc) as C++: the
# slim image has gcc but no g++. No cmake: cc drives the compiler itself.
RUN apt-get update \
    && apt-get install -y --no-install-recommends "g++=4:12.2.0-3*" \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
# tini reaps zombies and forwards SIGTERM, so a stopped worker hands its units back at once;
# libstdc++6 is what the statically linked libzmq needs at run time (the slim image has it
# through apt; naming it keeps that from being an accident). The versions are bookworm's, with
# any Debian revision after them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends "tini=0.19.0-1*" "libstdc++6=12.2.0-14*" \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin ganger \
    && install -d -o ganger -g ganger /data
COPY --from=build /src/target/release/ganger-delegator /src/target/release/ganger-worker /usr/local/bin/
# Its outputPath is relative: the demo writes to /data/demo-output.
COPY examples/stateline-demo.json /opt/ganger/stateline-demo.json

# Workers keep a status file unless told otherwise, so `ganger-worker status` needs no flag.
ENV GANGER_STATUS_FILE=/tmp/ganger-worker.json
# The delegator's dashboard listens on loopback unless asked; a published port arrives on the
# container's bridge interface, so the image asks. Workers ignore it.
ENV GANGER_HTTP=0.0.0.0:8080
# Numeric, so that Kubernetes' runAsNonRoot can tell without reading /etc/passwd.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 5555: workers dial in (ZeroMQ); 8080: the dashboard, /healthz, /api/status, /metrics.
EXPOSE 5555 8080

# One check for both roles: a worker judges its status file; a container without one (exit 2:
# no such file) is a delegator, asked over HTTP. A worker that is not well (exit 1) fails
# without asking, so a delegator reachable on this network cannot vouch for it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "-c", "ganger-worker status || { [ $? -eq 2 ] && ganger-delegator probe; }"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["ganger-delegator", "mcmc", "--config", "/opt/ganger/stateline-demo.json", "--local-workers", "2"]
