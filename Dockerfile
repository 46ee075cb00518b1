# Multi-stage build: compile on the Rust image, run on Debian slim as a non-root user.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY crates ./crates
COPY migrations ./migrations
COPY config ./config
COPY benches ./benches
# The production binary: without the built-in simulator (`sim`, `demo`, `bench`).
RUN cargo build --release --locked --no-default-features --bin mesolive-supervisor

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mesolive \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mesolive-supervisor --shell /usr/sbin/nologin mesolive \
 && mkdir -p /var/lib/mesolive-supervisor \
 && chown 10001:10001 /var/lib/mesolive-supervisor \
 && chmod 700 /var/lib/mesolive-supervisor
COPY --from=builder /src/target/release/mesolive-supervisor /usr/local/bin/mesolive-supervisor
USER 10001:10001
WORKDIR /var/lib/mesolive-supervisor
ENV MESOLIVE__DATABASE__PATH=/var/lib/mesolive-supervisor/state.db \
    MESOLIVE__LOG__FORMAT=json \
    MESOLIVE__OPS__LISTEN=0.0.0.0:9187
VOLUME ["/var/lib/mesolive-supervisor"]
EXPOSE 9187
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/mesolive-supervisor", "health"]
ENTRYPOINT ["/usr/local/bin/mesolive-supervisor"]
CMD ["run"]
