# syntax=docker/dockerfile:1
# aws-replicator as a service: `serve` with the config mounted as a file and secrets from the
# environment (the config imports them with `env:NAME as Text`).
#
#   docker build -t aws-replicator .
#   docker run -p 8080:8080 -v $PWD/my-config.dhall:/etc/aws-replicator/config.dhall:ro \
#     -e MESHFED_ACCESS_KEY_ID -e MESHFED_SECRET_ACCESS_KEY -e MESHFED_EXTERNAL_ID \
#     -e AWS_SSO_SCIM_TOKEN -e MESHSTACK_CLIENT_ID -e MESHSTACK_CLIENT_SECRET aws-replicator
#
# The names are those config/example.dhall imports; `aws-replicator config check` lists the
# ones a config needs.
#
# The config's `./types/package.dhall` import resolves to the types shipped in the image.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin aws-replicator \
    && cp target/release/aws-replicator /aws-replicator

# glibc, CA certificates for TLS, no shell, runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /aws-replicator /usr/local/bin/aws-replicator
COPY config/types /etc/aws-replicator/types
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/aws-replicator"]
CMD ["serve", "--config", "/etc/aws-replicator/config.dhall", "--listen", "0.0.0.0:8080"]
