# syntax=docker/dockerfile:1
# The dfcsync container image: a release build without the emulator, on distroless.
#
#   docker build --platform linux/amd64 -t dfcsync .
#   docker run --rm dfcsync --help
#
# Build stage: one cargo command. The musl target is not installable on our build machines,
# so the binary is the glibc (x86_64-unknown-linux-gnu) build, which needs only libc and
# libgcc_s at run time (TLS is rustls on ring: no OpenSSL): distroless "cc" has exactly that.
# The builder is Debian bookworm, the same glibc as distroless cc-debian12.
# crates/dfcsync/tests/deploy_image.rs checks this file against Cargo.toml and the toolchain.
ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --no-default-features -p dfcsync --target x86_64-unknown-linux-gnu

# Run stage: no shell, no package manager, a non-root user (65532, "nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/dfcsync /usr/local/bin/dfcsync
USER 65532:65532
# `dfcsync run` serves /healthz, /readyz and /metrics here (its default is loopback only).
ENV DFCSYNC_LISTEN=0.0.0.0:9464
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/dfcsync"]
CMD ["--help"]
