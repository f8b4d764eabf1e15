# syntax=docker/dockerfile:1
# aws-replicator as a service: `serve` with the config mounted as a file and secrets from the
# environment (the config imports them with `env:NAME as Text`).
#
#   docker build -t aws-replicator .
#   docker run -p 8080:8080 --read-only --tmpfs /tmp \
#     -v $PWD/my-config.dhall:/etc/aws-replicator/config.dhall:ro \
#     -e MESHFED_ACCESS_KEY_ID -e MESHFED_SECRET_ACCESS_KEY -e MESHFED_EXTERNAL_ID \
#     -e AWS_SSO_SCIM_TOKEN -e MESHSTACK_CLIENT_ID -e MESHSTACK_CLIENT_SECRET \
#     aws-replicator
#
# The names are those config/example.dhall imports; `aws-replicator config check` lists the ones
# a config needs. Its `./types/package.dhall` import resolves to the types shipped in the image.
# The image carries the config deploy/kubernetes ships (leader election on a Lease in the pod's
# namespace, the webhook token from the variable WEBHOOK_TOKEN, which it needs too) at that
# path; mount yours over it.
#
# Without a registry, `scripts/image` builds the same runtime layout with buildah FROM scratch
# from this machine's files (tests/image.rs builds and runs it).
#
# Base images are fully qualified and pinned by the digest of their multi-platform index. The
# digests were not resolved against the registries from where this file was written (no registry
# is reachable there): rust's is the one public `docker build` logs show for the tag, distroless's
# the one public Dockerfiles pin for it. Check and refresh them with
#   skopeo inspect --format '{{.Digest}}' docker://docker.io/library/rust:1.95-bookworm
#   skopeo inspect --format '{{.Digest}}' docker://gcr.io/distroless/cc-debian12:nonroot

FROM docker.io/library/rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
WORKDIR /src
COPY . .
# The release profile keeps line tables (284 MB) for local backtraces; the image gets the
# binary stripped (35 MB).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin aws-replicator \
    && strip -o /aws-replicator target/release/aws-replicator

# glibc, libgcc, CA certificates for TLS, /tmp, no shell; runs as uid 65532 (numeric, so that
# Kubernetes' runAsNonRoot can check it). With a read-only root, mount a volume at /tmp.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
COPY --from=build /aws-replicator /usr/local/bin/aws-replicator
COPY config/types /etc/aws-replicator/types
COPY deploy/kubernetes/config/config.dhall /etc/aws-replicator/config.dhall
COPY LICENSE /usr/share/doc/aws-replicator/LICENSE
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/aws-replicator"]
CMD ["serve", "--config", "/etc/aws-replicator/config.dhall", "--listen", "0.0.0.0:8080"]
