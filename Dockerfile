# syntax=docker/dockerfile:1
#
# Kelpie in a container: `kelpie runtime` as PID 1 (Kelpie's pm2-runtime).
#
#   docker build -t kelpie-example .                  # the example Node.js app image (last stage)
#   docker run --rm -p 3000:3000 kelpie-example
#   docker exec <container> kelpie list               # or logs, reload web, describe web...
#   docker build --target kelpie -t kelpie .          # the static binary alone (FROM scratch)
#
# Stages:
#   build   compiles a static (musl) kelpie with Rust's Alpine image;
#   kelpie  that binary alone, at /kelpie: `COPY --from=kelpie /kelpie /usr/local/bin/kelpie` in
#           your own Dockerfile, on any base image (Node, Python, Debian, distroless...);
#   app     the example: examples/docker (a Node.js HTTP app, two instances) on node:20-alpine.
#
# crates/kelpie-cli/tests/cli/image.rs reads the `app` stage's WORKDIR, ENV, USER, COPY,
# HEALTHCHECK and CMD from this file and runs them, without Docker, in an empty root with a
# static kelpie as PID 1 of a new pid namespace. Keep the `app` stage to those instructions
# (the test refuses others, e.g. RUN) or extend the test with it.

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-alpine AS build
# musl-dev: the C runtime objects the linker needs; the result links nothing at run time.
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
# The registry and target/ are cache mounts (BuildKit): a rebuild after a source change only
# recompiles Kelpie's crates. The binary is copied out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
 && cargo build --release --locked -p kelpie-cli --target "$target" \
 && mkdir -p /out \
 && cp "target/$target/release/kelpie" /out/kelpie \
 && strip /out/kelpie \
 && /out/kelpie --version

FROM scratch AS kelpie
COPY --from=build /out/kelpie /kelpie
ENTRYPOINT ["/kelpie"]

FROM node:20-alpine AS app
COPY --from=build /out/kelpie /usr/local/bin/kelpie
WORKDIR /app
# Owned by root and read-only for the app. A real app copies its package.json and
# node_modules (installed in an earlier stage) here too.
COPY examples/docker/ ./
# The base image's `node` user (uid 1000) owns /home/node; Kelpie creates its home there (the
# control socket, the Node.js shim for cluster mode; no log files: output goes to stdout).
# `docker exec` gets the same ENV and USER, so `kelpie list` finds the runtime with no flag.
ENV NODE_ENV=production KELPIE_HOME=/home/node/.kelpie
USER 1000:1000
EXPOSE 3000
# `kelpie ping` answers once the runtime serves its control socket, and fails (exit 1) when the
# runtime does not answer within 3 s. It does not look at the apps: the runtime restarts them
# itself (and its own health check, in ecosystem.config.js, restarts an unhealthy instance).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["kelpie", "ping"]
# SIGTERM (`docker stop`) stops the apps gracefully and exits 0; orphans are reaped (no --init).
CMD ["kelpie", "runtime", "ecosystem.config.js", "--env", "production"]
