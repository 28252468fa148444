# The cascade-janitor image: one static binary on an empty base.
#
# Build it with `cargo xtask image` (builds the static binary first, then this
# file; works with no registry). By hand:
#
#   RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked \
#       --target x86_64-unknown-linux-gnu -p cascade-janitor
#   docker build -t cascade-janitor:local .
#
# Nothing is pulled: `scratch` is not an image but the empty base. The binary
# is statically linked (glibc, rustls with ring and a built-in root store), so
# the image needs no libc, no CA bundle and no shell. See docs/deploy.md,
# which also says why this image does NOT carry `cascade.managed=true`.
FROM scratch

# Where `cargo build --target <triple>` put the static binary. .dockerignore
# lets only this file (and the sources) into the build context.
ARG BINARY=target/x86_64-unknown-linux-gnu/release/cascade-janitor
COPY ${BINARY} /usr/local/bin/cascade-janitor

LABEL org.opencontainers.image.title="cascade-janitor" \
      org.opencontainers.image.description="Removes dangling Docker images that carry the cascade label, and nothing else" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"

# A numeric non-root user (no /etc/passwd in scratch). It reaches the engine
# socket only through the socket's group, added at run time
# (`--group-add <gid>` or `--user 65532:<gid>`).
USER 65532:65532

# The janitor writes no files: run it with a read-only root file system.
ENTRYPOINT ["/usr/local/bin/cascade-janitor"]
CMD ["run"]
