# speedy: one runtime image with every daemon (chunkmaster, spy_server,
# imageserver) and chunktool; docker-compose.yml picks one per container.
# See docs/deploy.md. Builds with the classic builder and with BuildKit.

# ---- build: compilers and -dev packages, scripts/build release -------------
FROM debian:bookworm-slim AS build
# The label marks this stage's images as speedy's (tests/e2e/compose.sh
# removes the stale ones by it).
LABEL io.speedy.image=build
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libh2o-evloop-dev libmariadb-dev libssl-dev libjansson-dev libcmocka-dev; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN set -eux; \
    scripts/build release; \
    install -d /out; \
    install -m 0755 build/chunkmaster/chunkmaster build/chunkserver/spy_server \
      build/chunkserver/chunktool build/registry/imageserver /out/; \
    strip /out/*

# ---- runtime: only the shared libraries the daemons link, and curl ---------
FROM debian:bookworm-slim
LABEL io.speedy.image=runtime
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libh2o-evloop0.13 libjansson4 libmariadb3 libssl3 zlib1g curl; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --system --uid 10001 --user-group --home-dir /var/lib/speedy \
      --shell /usr/sbin/nologin speedy; \
    install -d -o speedy -g speedy /var/lib/speedy /var/lib/speedy/data
COPY --from=build /out/ /usr/local/bin/
COPY docker/speedy-healthcheck /usr/local/bin/speedy-healthcheck

USER speedy
WORKDIR /var/lib/speedy
# chunkserver data goes in /var/lib/speedy/data (mount a volume); ports:
# spy_server 8000, chunkmaster 8099, imageserver 5000 (as CMD sets it).
EXPOSE 8000 8099 5000
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
  CMD ["speedy-healthcheck"]
CMD ["imageserver", "-h=0.0.0.0", "-p=5000"]
