# syntax=docker/dockerfile:1
# The prebuilt image for `kubectl mtlscope sniff --image` (air-gapped clusters, a registry
# mirror) and for a DaemonSet: the static `mtlscope` agent and a `sleep`; no shell, no libc, no
# package manager. The plugin's default needs no image of ours at all (it uploads the agent
# into a stock busybox helper; docs/kubernetes.md); this one is for clusters that cannot pull
# that or where exec uploads are not wanted.
#
#   docker build -t mtlscope:dev .                      # builds the agent with .ci/build-agent
#   kind load docker-image mtlscope:dev
#   kubectl mtlscope sniff POD --image mtlscope:dev --image-pull-policy Never
#
# The release (.github/workflows/release.yml) builds with --build-arg AGENT_SOURCE=prebuilt
# and --platform linux/amd64,linux/arm64: the final stage then copies
# dist/mtlscope-agent-linux-$TARGETARCH, the agents of the release archives, byte for byte.
ARG AGENT_SOURCE=build

# The agent, built by the same command as in CI and the release, on the image's platform.
FROM docker.io/library/rust:1-bookworm AS agent-build
ARG TARGETARCH
WORKDIR /src
COPY . .
RUN case "${TARGETARCH:-$(dpkg --print-architecture)}" in \
        amd64) target=x86_64-unknown-linux-musl ;; \
        arm64) target=aarch64-unknown-linux-musl ;; \
        *) echo "no agent for linux/${TARGETARCH}: mtlscope builds linux/amd64 and linux/arm64" >&2; exit 1 ;; \
    esac \
    && rustup target add "$target" \
    && bin=$(.ci/build-agent --target "$target" | tail -n 1) \
    && install -D -m 0755 "$bin" /out/mtlscope

# The release's agents, built once for the archives and the image.
FROM scratch AS agent-prebuilt
ARG TARGETARCH
COPY --chmod=0755 dist/mtlscope-agent-linux-${TARGETARCH} /out/mtlscope

FROM agent-${AGENT_SOURCE} AS agent

FROM scratch
COPY --from=agent /out/mtlscope /usr/local/bin/mtlscope
# The helper pod waits for the plugin's exec with `sleep <deadline>` (src/kube/helper_pod.rs),
# whatever its image: busybox's static musl build under the name `sleep` runs only that applet
# (there is no `sh` to run the others by). The same tag as the default helper image.
COPY --from=docker.io/library/busybox:1.37-musl /bin/busybox /usr/local/bin/sleep
ENV PATH=/usr/local/bin
# The helper runs as root with only NET_RAW, SYS_ADMIN and SYS_PTRACE and a read-only root
# filesystem (docs/kubernetes.md); the pod spec, not the image, sets that.
ENTRYPOINT ["/usr/local/bin/mtlscope"]
CMD ["--help"]
