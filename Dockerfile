# meshd container image: a Debian 12 build stage, and a small Debian 12 runtime stage with
# only the runtime libraries, running as an unprivileged user (uid 10001).
#
#   docker build -t meshd:0.1.0 .
#   docker run -d --name meshd -p 7070:7070 -v meshd-data:/var/lib/meshd \
#       -v /secure/meshd-kek:/run/secrets/meshd/kek:ro -e MESHD_KEK_FILE=/run/secrets/meshd/kek \
#       meshd:0.1.0
#
# The key-encryption key comes from outside the image and the data volume (a mounted secret
# file, MESHD_KEK_FILE; or MESHD_KEK): without one, the first start generates it BESIDE the
# data and warns. docs/operations.md has the details; deploy/kubernetes/ uses this image.

FROM debian:12 AS build
# the project's own setup script installs the build dependencies from Debian
COPY scripts/setup.sh /src/scripts/setup.sh
RUN /src/scripts/setup.sh && rm -rf /var/lib/apt/lists/*
COPY . /src
WORKDIR /src
RUN cmake --preset release -DMESH_TESTS=OFF \
    && cmake --build build/release -j"$(nproc)" --target meshd meshctl man \
    && strip build/release/meshd build/release/meshctl

FROM debian:12-slim AS runtime
# the libraries meshd and meshctl link (the Debian package's Depends), curl for the
# HEALTHCHECK, CA certificates for meshctl
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libsqlite3-0 libssl3 libevent-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7 \
        libjansson4 libyaml-0-2 libcurl4 libmosquitto1 libnats3.4 libzstd1 zlib1g ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 meshd \
    && useradd --system --uid 10001 --gid meshd --home-dir /var/lib/meshd \
        --shell /usr/sbin/nologin meshd \
    && install -d -o meshd -g meshd -m 0700 /var/lib/meshd
COPY --from=build /src/build/release/meshd /src/build/release/meshctl /usr/bin/
COPY --from=build /src/build/release/man/meshd.8.gz /usr/share/man/man8/
COPY --from=build /src/build/release/man/meshctl.1.gz /usr/share/man/man1/
COPY deploy/docker/meshd.conf /etc/meshd/meshd.conf
USER 10001:10001
WORKDIR /var/lib/meshd
VOLUME /var/lib/meshd
EXPOSE 7070
# /healthz needs no token; -k: the node's certificate may be its own self-signed one
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsSk https://127.0.0.1:7070/healthz || exit 1
# SIGTERM (docker stop) is a clean stop; give it time: docker stop -t 60
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/meshd", "--config", "/etc/meshd/meshd.conf"]
