# syntax=docker/dockerfile:1
# slack-audit-source: a static-enough Rust binary on distroless (glibc, CA roots, no shell),
# running as the unprivileged uid 65532 with a read-only root filesystem in mind.
#   docker build -t slack-audit-source:0.1.0 .
#   docker run --rm -e SLACK_AUDIT_TOKEN=xoxp-… -v sas-state:/var/lib/slack-audit-source slack-audit-source:0.1.0

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and dependency builds between image builds; the binary is
# copied out because the target dir is not part of the layer. Built without the `simulator`
# feature, the only default one (so `simulate` and `demo` exit 2 in the image): if Cargo.toml
# gains another default feature, list it here with `--features`.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin slack-audit-source \
    && install -D -m 0755 target/release/slack-audit-source /out/slack-audit-source \
    && install -d -m 0750 /out/state

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/slack-audit-source /usr/local/bin/slack-audit-source
# The state dir exists and belongs to the runtime user, so a plain `docker run` works; in
# Kubernetes a PersistentVolumeClaim is mounted over it.
COPY --from=builder --chown=65532:65532 /out/state /var/lib/slack-audit-source
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    SLACK_AUDIT_STATE_DIR=/var/lib/slack-audit-source \
    SLACK_AUDIT_LOG_FORMAT=json
USER 65532:65532
# /metrics, /healthz and /readyz when --metrics-listen 0.0.0.0:9090 is given.
EXPOSE 9090
# SIGTERM (Kubernetes' stop signal): finish the page in hand, checkpoint, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["slack-audit-source"]
CMD ["run"]
