# The helper image of `kubectl mtlscope sniff`: the mtlscope binary and libpcap, nothing else
# that the helper uses (`sleep` from coreutils keeps the helper pod alive until the plugin's
# exec). Published as ghcr.io/mtlscope/mtlscope:v<version>, the plugin's default --image.
#   docker build -t mtlscope:dev .
#   kind load docker-image mtlscope:dev       # then: kubectl mtlscope sniff ... --image mtlscope:dev
FROM docker.io/library/rust:1-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libpcap-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin mtlscope --bin kubectl-mtlscope

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libpcap0.8 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/mtlscope /usr/local/bin/mtlscope
# The helper runs as root with only NET_RAW, SYS_ADMIN and SYS_PTRACE (see docs/kubernetes.md);
# the pod spec, not the image, sets that.
ENTRYPOINT []
CMD ["mtlscope", "--help"]
